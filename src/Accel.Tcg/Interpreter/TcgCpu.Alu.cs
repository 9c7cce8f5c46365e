using Hypervisor.Accel.Tcg.State;
using Iced.Intel;
using static Hypervisor.Accel.Tcg.Alu.Alu;

namespace Hypervisor.Accel.Tcg.Interpreter;

// Arithmetic, logic, shifts, bit operations, multiply/divide, BCD, BMI: operand plumbing around the Alu library.
internal sealed partial class TcgCpu
{
    private void ExecAlu(ref Instruction ins)
    {
        ulong f = S.Rflags;
        Mnemonic m = ins.Mnemonic;
        switch (m)
        {
            case Mnemonic.Add:
            case Mnemonic.Or:
            case Mnemonic.Adc:
            case Mnemonic.Sbb:
            case Mnemonic.And:
            case Mnemonic.Sub:
            case Mnemonic.Xor:
            case Mnemonic.Cmp:
            case Mnemonic.Test:
                ExecBinary(ref ins, m, ref f);
                break;

            case Mnemonic.Inc:
            case Mnemonic.Dec:
            case Mnemonic.Neg:
            case Mnemonic.Not:
            {
                int sz = OpSize(ref ins, 0);
                ulong a = ReadOp(ref ins, 0, sz);
                ulong r = m switch
                {
                    Mnemonic.Inc => Inc(a, sz * 8, ref f),
                    Mnemonic.Dec => Dec(a, sz * 8, ref f),
                    Mnemonic.Neg => Neg(a, sz * 8, ref f),
                    _ => Not(a, sz * 8),
                };
                WriteOp(ref ins, 0, sz, r);
                break;
            }

            case Mnemonic.Rol:
            case Mnemonic.Ror:
            case Mnemonic.Rcl:
            case Mnemonic.Rcr:
            case Mnemonic.Shl:
            case Mnemonic.Sal:
            case Mnemonic.Shr:
            case Mnemonic.Sar:
            {
                int sz = OpSize(ref ins, 0);
                int bits = sz * 8;
                ulong a = ReadOp(ref ins, 0, sz);
                ulong count = ReadOp(ref ins, 1, 1);
                ulong r = m switch
                {
                    Mnemonic.Rol => Rol(a, count, bits, ref f),
                    Mnemonic.Ror => Ror(a, count, bits, ref f),
                    Mnemonic.Rcl => Rcl(a, count, bits, ref f),
                    Mnemonic.Rcr => Rcr(a, count, bits, ref f),
                    Mnemonic.Shr => Shr(a, count, bits, ref f),
                    Mnemonic.Sar => Sar(a, count, bits, ref f),
                    _ => Shl(a, count, bits, ref f),
                };
                WriteOp(ref ins, 0, sz, r);
                break;
            }

            case Mnemonic.Shld:
            case Mnemonic.Shrd:
            {
                int sz = OpSize(ref ins, 0);
                ulong a = ReadOp(ref ins, 0, sz);
                ulong b = GetReg(ins.Op1Register);
                ulong count = ReadOp(ref ins, 2, 1);
                ulong r = m == Mnemonic.Shld ? Shld(a, b, count, sz * 8, ref f) : Shrd(a, b, count, sz * 8, ref f);
                WriteOp(ref ins, 0, sz, r);
                break;
            }

            case Mnemonic.Bt:
            case Mnemonic.Bts:
            case Mnemonic.Btr:
            case Mnemonic.Btc:
                ExecBitTest(ref ins, ref f);
                break;

            case Mnemonic.Bsf:
            case Mnemonic.Bsr:
            case Mnemonic.Popcnt:
            case Mnemonic.Lzcnt:
            case Mnemonic.Tzcnt:
            {
                int sz = OpSize(ref ins, 0);
                int bits = sz * 8;
                ulong src = ReadOp(ref ins, 1, sz);
                if (m is Mnemonic.Bsf or Mnemonic.Bsr)
                {
                    // A zero source leaves the destination entirely unwritten (even the upper half of a 64-bit register).
                    bool found = m == Mnemonic.Bsf ? Bsf(src, bits, out ulong index, ref f) : Bsr(src, bits, out index, ref f);
                    if (found)
                    {
                        SetReg(ins.Op0Register, index);
                    }

                    break;
                }

                ulong r = m switch
                {
                    Mnemonic.Popcnt => Popcnt(src, bits, ref f),
                    Mnemonic.Lzcnt => Lzcnt(src, bits, ref f),
                    _ => Tzcnt(src, bits, ref f),
                };
                SetReg(ins.Op0Register, r);
                break;
            }

            case Mnemonic.Mul:
            case Mnemonic.Imul:
            case Mnemonic.Div:
            case Mnemonic.Idiv:
                ExecMulDiv(ref ins, ref f);
                break;

            case Mnemonic.Xadd:
            {
                int sz = OpSize(ref ins, 0);
                ulong a = ReadOp(ref ins, 0, sz);
                ulong b = GetReg(ins.Op1Register);
                ulong sum = Add(a, b, sz * 8, ref f);
                WriteOp(ref ins, 0, sz, sum);
                SetReg(ins.Op1Register, a);
                break;
            }

            case Mnemonic.Cmpxchg:
            {
                int sz = OpSize(ref ins, 0);
                ulong dest = ReadOp(ref ins, 0, sz);
                ulong acc = S.Gpr[0] & SizeMask(sz);
                if (CmpXchg(acc, dest, sz * 8, ref f))
                {
                    WriteOp(ref ins, 0, sz, GetReg(ins.Op1Register));
                }
                else
                {
                    // A memory destination is written back with its own value (a locked read-modify-write; SDM Vol. 2);
                    // a register destination is left untouched (its upper half too, as the host CPU shows).
                    if (ins.Op0Kind != OpKind.Register)
                    {
                        WriteOp(ref ins, 0, sz, dest);
                    }

                    SetGpr(0, sz, dest);
                }

                break;
            }

            case Mnemonic.Cmpxchg8b:
            case Mnemonic.Cmpxchg16b:
            {
                bool wide = m == Mnemonic.Cmpxchg16b;
                int half = wide ? 8 : 4;
                int seg = SegIndex(ins.MemorySegment);
                ulong ea = EffectiveAddress(ref ins);
                if (wide && (ea & 15) != 0)
                {
                    throw Gp0();
                }

                ulong mask = SizeMask(half);
                if (_locked.Active)
                {
                    // CMPXCHG8B swapped as one 8-byte word (TcgCpu.Atomic.cs).
                    ulong lo32 = _locked.Value & mask, hi32 = _locked.Value >> 32;
                    bool same = lo32 == (S.Gpr[0] & mask) && hi32 == (S.Gpr[2] & mask);
                    WriteLockable(seg, ea, 8, same ? ((S.Gpr[1] & mask) << 32) | (S.Gpr[3] & mask) : _locked.Value);
                    if (same)
                    {
                        f |= Fl.ZF;
                    }
                    else
                    {
                        SetGpr(0, half, lo32);
                        SetGpr(2, half, hi32);
                        f &= ~Fl.ZF;
                    }

                    break;
                }

                ulong lo = ReadMem(seg, ea, half), hi = ReadMem(seg, ea + (ulong)half, half);
                bool equal = lo == (S.Gpr[0] & mask) && hi == (S.Gpr[2] & mask);
                ProbeWrite(seg, ea, half * 2 > 8 ? 8 : half * 2);
                if (equal)
                {
                    WriteMem(seg, ea, half, S.Gpr[3]);
                    WriteMem(seg, ea + (ulong)half, half, S.Gpr[1]);
                    f |= Fl.ZF;
                }
                else
                {
                    WriteMem(seg, ea, half, lo);
                    WriteMem(seg, ea + (ulong)half, half, hi);
                    SetGpr(0, half, lo);
                    SetGpr(2, half, hi);
                    f &= ~Fl.ZF;
                }

                break;
            }

            case Mnemonic.Daa:
            case Mnemonic.Das:
            case Mnemonic.Aaa:
            case Mnemonic.Aas:
            case Mnemonic.Aam:
            case Mnemonic.Aad:
            {
                if (Is64)
                {
                    throw Ud();
                }

                ulong ax = S.Gpr[0] & 0xFFFF;
                switch (m)
                {
                    case Mnemonic.Daa: SetGpr(0, 1, Daa((byte)ax, ref f)); break;
                    case Mnemonic.Das: SetGpr(0, 1, Das((byte)ax, ref f)); break;
                    case Mnemonic.Aaa: SetGpr(0, 2, Aaa((ushort)ax, ref f)); break;
                    case Mnemonic.Aas: SetGpr(0, 2, Aas((ushort)ax, ref f)); break;
                    case Mnemonic.Aam:
                        if (!Aam((byte)ax, ins.Immediate8, out ushort r, ref f))
                        {
                            throw new GuestFault(Vec.DE, 0, false);
                        }

                        SetGpr(0, 2, r);
                        break;
                    default: SetGpr(0, 2, Aad((ushort)ax, ins.Immediate8, ref f)); break;
                }

                break;
            }

            default:
                ExecBmi(ref ins, ref f);
                break;
        }

        S.Rflags = f;
    }

    private void ExecBinary(ref Instruction ins, Mnemonic m, ref ulong f)
    {
        int sz = OpSize(ref ins, 0);
        int bits = sz * 8;
        ulong a = ReadOp(ref ins, 0, sz);
        ulong b = ReadOp(ref ins, 1, sz);
        ulong r;
        switch (m)
        {
            case Mnemonic.Add: r = Add(a, b, bits, ref f); break;
            case Mnemonic.Or: r = Or(a, b, bits, ref f); break;
            case Mnemonic.Adc: r = Adc(a, b, bits, ref f); break;
            case Mnemonic.Sbb: r = Sbb(a, b, bits, ref f); break;
            case Mnemonic.And: r = And(a, b, bits, ref f); break;
            case Mnemonic.Sub: r = Sub(a, b, bits, ref f); break;
            case Mnemonic.Xor: r = Xor(a, b, bits, ref f); break;
            case Mnemonic.Cmp: Cmp(a, b, bits, ref f); return;
            default: Test(a, b, bits, ref f); return;
        }

        WriteOp(ref ins, 0, sz, r);
    }

    private static ulong CmpValue(ulong a, ulong b, int bits, ref ulong f)
    {
        Cmp(a, b, bits, ref f);
        return 0;
    }

    private static ulong TestValue(ulong a, ulong b, int bits, ref ulong f)
    {
        Test(a, b, bits, ref f);
        return 0;
    }

    private void ExecBitTest(ref Instruction ins, ref ulong f)
    {
        Mnemonic m = ins.Mnemonic;
        int sz = OpSize(ref ins, 0);
        int bits = sz * 8;
        ulong offset = ReadOp(ref ins, 1, ins.Op1Kind == OpKind.Register ? sz : 1);
        if (ins.Op0Kind == OpKind.Register)
        {
            ulong v = GetReg(ins.Op0Register);
            ulong r = Apply(m, v, offset, bits, ref f);
            if (m != Mnemonic.Bt)
            {
                SetReg(ins.Op0Register, r);
            }

            return;
        }

        int seg = SegIndex(ins.MemorySegment);
        ulong ea = EffectiveAddress(ref ins);
        if (ins.Op1Kind == OpKind.Register)
        {
            ea = BitStringAddress(ref ins, ea, offset, bits);
        }

        ulong value = ReadLockable(seg, ea, sz);
        ulong res = Apply(m, value, offset, bits, ref f);
        if (m != Mnemonic.Bt)
        {
            WriteLockable(seg, ea, sz, res);
        }

        static ulong Apply(Mnemonic m, ulong v, ulong off, int bits, ref ulong f) => m switch
        {
            Mnemonic.Bt => BtValue(v, off, bits, ref f),
            Mnemonic.Bts => Bts(v, off, bits, ref f),
            Mnemonic.Btr => Btr(v, off, bits, ref f),
            _ => Btc(v, off, bits, ref f),
        };
    }

    private static ulong BtValue(ulong v, ulong off, int bits, ref ulong f)
    {
        Bt(v, off, bits, ref f);
        return v;
    }

    /// <summary>
    /// The address of the operand-sized piece of a bit string that holds bit <paramref name="offset"/> (a register bit
    /// offset may reach outside the operand at <paramref name="ea"/>: SDM Vol. 2, BT).
    /// </summary>
    private ulong BitStringAddress(ref Instruction ins, ulong ea, ulong offset, int bits) =>
        MaskAddress(ref ins, ea + (ulong)BitStringByteOffset(offset, bits));

    /// <summary>Wraps an address computed from a memory operand to the operand's address size.</summary>
    private ulong MaskAddress(ref Instruction ins, ulong ea)
    {
        int a = AddrSize(ref ins);
        if (a == 0)
        {
            a = ins.CodeSize switch { CodeSize.Code16 => 2, CodeSize.Code32 => 4, _ => 8 };
        }

        return a switch { 2 => ea & 0xFFFF, 4 => ea & 0xFFFF_FFFF, _ => ea };
    }

    private void ExecMulDiv(ref Instruction ins, ref ulong f)
    {
        Mnemonic m = ins.Mnemonic;
        if (m == Mnemonic.Imul && ins.OpCount >= 2)
        {
            int sz = OpSize(ref ins, 0);
            ulong a = ins.OpCount == 3 ? ReadOp(ref ins, 1, sz) : GetReg(ins.Op0Register);
            ulong b = ins.OpCount == 3 ? ReadOp(ref ins, 2, sz) : ReadOp(ref ins, 1, sz);
            ulong r = Imul(a, b, sz * 8, out _, ref f);
            SetReg(ins.Op0Register, r);
            return;
        }

        int size = OpSize(ref ins, 0);
        int bits = size * 8;
        ulong src = ReadOp(ref ins, 0, size);
        ulong acc = size == 1 ? S.Gpr[0] & 0xFF : S.Gpr[0] & SizeMask(size);
        ulong high = size == 1 ? (S.Gpr[0] >> 8) & 0xFF : S.Gpr[2] & SizeMask(size);
        if (m is Mnemonic.Mul or Mnemonic.Imul)
        {
            ulong lo = m == Mnemonic.Mul ? Mul(acc, src, bits, out ulong hi, ref f) : Imul(acc, src, bits, out hi, ref f);
            StoreWide(size, lo, hi);
            return;
        }

        bool ok = m == Mnemonic.Div
            ? Div(high, acc, src, bits, out ulong q, out ulong rem)
            : Idiv(high, acc, src, bits, out q, out rem);
        if (!ok)
        {
            throw new GuestFault(Vec.DE, 0, false);
        }

        StoreWide(size, q, rem);
    }

    /// <summary>Stores a result pair in AL/AH, AX/DX, EAX/EDX or RAX/RDX.</summary>
    private void StoreWide(int size, ulong low, ulong high)
    {
        if (size == 1)
        {
            SetGpr(0, 2, (low & 0xFF) | ((high & 0xFF) << 8));
        }
        else
        {
            SetGpr(0, size, low);
            SetGpr(2, size, high);
        }
    }

    private void ExecBmi(ref Instruction ins, ref ulong f)
    {
        if (ins.Encoding == EncodingKind.VEX && (!ProtectedMode || (S.Rflags & Fl.VM) != 0))
        {
            throw Ud(); // VEX-encoded instructions are undefined in real and virtual-8086 mode
        }

        int sz = OpSize(ref ins, 0);
        int bits = sz * 8;
        ulong r;
        switch (ins.Mnemonic)
        {
            case Mnemonic.Andn: r = Andn(GetReg(ins.Op1Register), ReadOp(ref ins, 2, sz), bits, ref f); break;
            case Mnemonic.Bextr: r = Bextr(ReadOp(ref ins, 1, sz), GetReg(ins.Op2Register), bits, ref f); break;
            case Mnemonic.Blsi: r = Blsi(ReadOp(ref ins, 1, sz), bits, ref f); break;
            case Mnemonic.Blsmsk: r = Blsmsk(ReadOp(ref ins, 1, sz), bits, ref f); break;
            case Mnemonic.Blsr: r = Blsr(ReadOp(ref ins, 1, sz), bits, ref f); break;
            case Mnemonic.Bzhi: r = Bzhi(ReadOp(ref ins, 1, sz), GetReg(ins.Op2Register), bits, ref f); break;
            case Mnemonic.Pdep: r = Pdep(GetReg(ins.Op1Register), ReadOp(ref ins, 2, sz), bits); break;
            case Mnemonic.Pext: r = Pext(GetReg(ins.Op1Register), ReadOp(ref ins, 2, sz), bits); break;
            case Mnemonic.Rorx: r = Rorx(ReadOp(ref ins, 1, sz), ins.Immediate8, bits); break;
            case Mnemonic.Sarx: r = Sarx(ReadOp(ref ins, 1, sz), GetReg(ins.Op2Register), bits); break;
            case Mnemonic.Shlx: r = Shlx(ReadOp(ref ins, 1, sz), GetReg(ins.Op2Register), bits); break;
            case Mnemonic.Shrx: r = Shrx(ReadOp(ref ins, 1, sz), GetReg(ins.Op2Register), bits); break;
            case Mnemonic.Mulx:
            {
                // MULX r1, r2, r/m: r1:r2 = EDX/RDX * r/m; the high half goes to r1 (written last when r1 == r2).
                ulong lo = Mulx(S.Gpr[2], ReadOp(ref ins, 2, sz), bits, out ulong hi);
                SetReg(ins.Op1Register, lo);
                SetReg(ins.Op0Register, hi);
                return;
            }

            case Mnemonic.Adcx: r = Adcx(GetReg(ins.Op0Register), ReadOp(ref ins, 1, sz), bits, ref f); break;
            case Mnemonic.Adox: r = Adox(GetReg(ins.Op0Register), ReadOp(ref ins, 1, sz), bits, ref f); break;
            default:
                Unimplemented(ref ins);
                return;
        }

        SetReg(ins.Op0Register, r);
    }
}
