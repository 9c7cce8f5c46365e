using Hypervisor.Accel.Tcg.Fpu;
using Hypervisor.Accel.Tcg.Sse;
using Hypervisor.Accel.Tcg.State;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Interpreter;

// SSE3, SSSE3, SSE4.1 and SSE4.2 in legacy encoding (XMM forms only) over the Sse semantic library, and CRC32. The MMX
// forms of SSSE3 (PSHUFB mm, PHADDW mm, ...) are not handled: MMX is not wired, so they stay #UD (or #NM per CR0).
// Memory operands of 16 bytes must be aligned (#GP(0)) except for LDDQU and the PCMPxSTRx string compares
// (SDM Vol. 1, 12.10.3 and Vol. 2 PCMPESTRI "the memory operand need not be aligned").
internal sealed partial class TcgCpu
{
    /// <summary>Executes an SSE3-SSE4.2 instruction; false when <paramref name="ins"/> is not one this file implements.</summary>
    private bool ExecSse4(ref Instruction ins)
    {
        switch (ins.Mnemonic)
        {
            // ------------------------------------------------ SSE/SSE2 approximations and MASKMOVDQU
            case Mnemonic.Rcpps:
                SseInt2(ref ins, SseFloat.PackedApprox(SseSource128(ref ins), sqrt: false));
                return true;
            case Mnemonic.Rsqrtps:
                SseInt2(ref ins, SseFloat.PackedApprox(SseSource128(ref ins), sqrt: true));
                return true;
            case Mnemonic.Rcpss:
            case Mnemonic.Rsqrtss:
            {
                SseAvailable();
                uint b = (uint)SseSource(ref ins, 1, 4);
                uint r = ins.Mnemonic == Mnemonic.Rcpss ? SseFloat.ReciprocalApprox(b) : SseFloat.ReciprocalSqrtApprox(b);
                ref UInt128 d = ref Xmm(ins.Op0Register);
                d = (d & ~(UInt128)uint.MaxValue) | r;
                return true;
            }

            case Mnemonic.Maskmovdqu:
                Maskmovdqu(ref ins);
                return true;

            // ------------------------------------------------ SSE3
            case Mnemonic.Addsubps: SseFloat2(ref ins, 0, false); return true;
            case Mnemonic.Addsubpd: SseFloat2(ref ins, 0, true); return true;
            case Mnemonic.Haddps: SseFloat2(ref ins, 1, false); return true;
            case Mnemonic.Haddpd: SseFloat2(ref ins, 1, true); return true;
            case Mnemonic.Hsubps: SseFloat2(ref ins, 2, false); return true;
            case Mnemonic.Hsubpd: SseFloat2(ref ins, 2, true); return true;
            case Mnemonic.Movshdup:
            {
                UInt128 b = SseSource128(ref ins);
                Xmm(ins.Op0Register) = SseInteger.Pshufd(b, 0xF5);
                return true;
            }

            case Mnemonic.Movsldup:
            {
                UInt128 b = SseSource128(ref ins);
                Xmm(ins.Op0Register) = SseInteger.Pshufd(b, 0xA0);
                return true;
            }

            case Mnemonic.Movddup:
            {
                SseAvailable();
                ulong lo = (ulong)SseSource(ref ins, 1, 8);
                Xmm(ins.Op0Register) = new UInt128(lo, lo);
                return true;
            }

            case Mnemonic.Lddqu:
            {
                SseAvailable();
                Xmm(ins.Op0Register) = SseSource(ref ins, 1, 16, unaligned: true);
                return true;
            }

            // ------------------------------------------------ SSSE3
            case Mnemonic.Pshufb: SseInt2(ref ins, SseInteger.Pshufb(Xmm(ins.Op0Register), SseSource128(ref ins))); return true;
            case Mnemonic.Phaddw: SseInt2(ref ins, SseInteger.Horizontal(Xmm(ins.Op0Register), SseSource128(ref ins), 2, false, false)); return true;
            case Mnemonic.Phaddd: SseInt2(ref ins, SseInteger.Horizontal(Xmm(ins.Op0Register), SseSource128(ref ins), 4, false, false)); return true;
            case Mnemonic.Phaddsw: SseInt2(ref ins, SseInteger.Horizontal(Xmm(ins.Op0Register), SseSource128(ref ins), 2, false, true)); return true;
            case Mnemonic.Phsubw: SseInt2(ref ins, SseInteger.Horizontal(Xmm(ins.Op0Register), SseSource128(ref ins), 2, true, false)); return true;
            case Mnemonic.Phsubd: SseInt2(ref ins, SseInteger.Horizontal(Xmm(ins.Op0Register), SseSource128(ref ins), 4, true, false)); return true;
            case Mnemonic.Phsubsw: SseInt2(ref ins, SseInteger.Horizontal(Xmm(ins.Op0Register), SseSource128(ref ins), 2, true, true)); return true;
            case Mnemonic.Pmaddubsw: SseInt2(ref ins, SseInteger.Pmaddubsw(Xmm(ins.Op0Register), SseSource128(ref ins))); return true;
            case Mnemonic.Pmulhrsw: SseInt2(ref ins, SseInteger.Pmulhrsw(Xmm(ins.Op0Register), SseSource128(ref ins))); return true;
            case Mnemonic.Psignb: SseInt2(ref ins, SseInteger.Psign(Xmm(ins.Op0Register), SseSource128(ref ins), 1)); return true;
            case Mnemonic.Psignw: SseInt2(ref ins, SseInteger.Psign(Xmm(ins.Op0Register), SseSource128(ref ins), 2)); return true;
            case Mnemonic.Psignd: SseInt2(ref ins, SseInteger.Psign(Xmm(ins.Op0Register), SseSource128(ref ins), 4)); return true;
            case Mnemonic.Pabsb: SseInt2(ref ins, SseInteger.Pabs(SseSource128(ref ins), 1)); return true;
            case Mnemonic.Pabsw: SseInt2(ref ins, SseInteger.Pabs(SseSource128(ref ins), 2)); return true;
            case Mnemonic.Pabsd: SseInt2(ref ins, SseInteger.Pabs(SseSource128(ref ins), 4)); return true;
            case Mnemonic.Palignr: SseInt2(ref ins, SseInteger.Palignr(Xmm(ins.Op0Register), SseSource128(ref ins), ins.Immediate8)); return true;

            // ------------------------------------------------ SSE4.1 integer
            case Mnemonic.Pblendw: SseInt2(ref ins, SseInteger.BlendImmediate(Xmm(ins.Op0Register), SseSource128(ref ins), ins.Immediate8, 2)); return true;
            case Mnemonic.Blendps: SseInt2(ref ins, SseInteger.BlendImmediate(Xmm(ins.Op0Register), SseSource128(ref ins), ins.Immediate8, 4)); return true;
            case Mnemonic.Blendpd: SseInt2(ref ins, SseInteger.BlendImmediate(Xmm(ins.Op0Register), SseSource128(ref ins), ins.Immediate8, 8)); return true;
            case Mnemonic.Pblendvb: SseInt2(ref ins, SseInteger.BlendVariable(Xmm(ins.Op0Register), SseSource128(ref ins), S.Xmm[0], 1)); return true;
            case Mnemonic.Blendvps: SseInt2(ref ins, SseInteger.BlendVariable(Xmm(ins.Op0Register), SseSource128(ref ins), S.Xmm[0], 4)); return true;
            case Mnemonic.Blendvpd: SseInt2(ref ins, SseInteger.BlendVariable(Xmm(ins.Op0Register), SseSource128(ref ins), S.Xmm[0], 8)); return true;
            case Mnemonic.Pminsb: SseInt2(ref ins, SseInteger.MinMax(Xmm(ins.Op0Register), SseSource128(ref ins), 1, true, false)); return true;
            case Mnemonic.Pmaxsb: SseInt2(ref ins, SseInteger.MinMax(Xmm(ins.Op0Register), SseSource128(ref ins), 1, true, true)); return true;
            case Mnemonic.Pminsd: SseInt2(ref ins, SseInteger.MinMax(Xmm(ins.Op0Register), SseSource128(ref ins), 4, true, false)); return true;
            case Mnemonic.Pmaxsd: SseInt2(ref ins, SseInteger.MinMax(Xmm(ins.Op0Register), SseSource128(ref ins), 4, true, true)); return true;
            case Mnemonic.Pminuw: SseInt2(ref ins, SseInteger.MinMax(Xmm(ins.Op0Register), SseSource128(ref ins), 2, false, false)); return true;
            case Mnemonic.Pmaxuw: SseInt2(ref ins, SseInteger.MinMax(Xmm(ins.Op0Register), SseSource128(ref ins), 2, false, true)); return true;
            case Mnemonic.Pminud: SseInt2(ref ins, SseInteger.MinMax(Xmm(ins.Op0Register), SseSource128(ref ins), 4, false, false)); return true;
            case Mnemonic.Pmaxud: SseInt2(ref ins, SseInteger.MinMax(Xmm(ins.Op0Register), SseSource128(ref ins), 4, false, true)); return true;
            case Mnemonic.Pmulld: SseInt2(ref ins, SseInteger.Pmulld(Xmm(ins.Op0Register), SseSource128(ref ins))); return true;
            case Mnemonic.Pmuldq: SseInt2(ref ins, SseInteger.Pmuldq(Xmm(ins.Op0Register), SseSource128(ref ins), true)); return true;
            case Mnemonic.Pcmpeqq: SseInt2(ref ins, SseInteger.Pcmpeq(Xmm(ins.Op0Register), SseSource128(ref ins), 8)); return true;
            case Mnemonic.Packusdw: SseInt2(ref ins, SseInteger.Pack(Xmm(ins.Op0Register), SseSource128(ref ins), 4, true)); return true;
            case Mnemonic.Phminposuw: SseInt2(ref ins, SseInteger.Phminposuw(SseSource128(ref ins))); return true;
            case Mnemonic.Mpsadbw: SseInt2(ref ins, SseInteger.Mpsadbw(Xmm(ins.Op0Register), SseSource128(ref ins), ins.Immediate8)); return true;
            case Mnemonic.Pmovsxbw: SsePmovx(ref ins, 1, 2, true); return true;
            case Mnemonic.Pmovsxbd: SsePmovx(ref ins, 1, 4, true); return true;
            case Mnemonic.Pmovsxbq: SsePmovx(ref ins, 1, 8, true); return true;
            case Mnemonic.Pmovsxwd: SsePmovx(ref ins, 2, 4, true); return true;
            case Mnemonic.Pmovsxwq: SsePmovx(ref ins, 2, 8, true); return true;
            case Mnemonic.Pmovsxdq: SsePmovx(ref ins, 4, 8, true); return true;
            case Mnemonic.Pmovzxbw: SsePmovx(ref ins, 1, 2, false); return true;
            case Mnemonic.Pmovzxbd: SsePmovx(ref ins, 1, 4, false); return true;
            case Mnemonic.Pmovzxbq: SsePmovx(ref ins, 1, 8, false); return true;
            case Mnemonic.Pmovzxwd: SsePmovx(ref ins, 2, 4, false); return true;
            case Mnemonic.Pmovzxwq: SsePmovx(ref ins, 2, 8, false); return true;
            case Mnemonic.Pmovzxdq: SsePmovx(ref ins, 4, 8, false); return true;
            case Mnemonic.Ptest:
            {
                UInt128 b = SseSource128(ref ins);
                S.Rflags = (S.Rflags & ~Fl.Status) | SseInteger.PtestFlags(Xmm(ins.Op0Register), b);
                return true;
            }

            case Mnemonic.Movntdqa:
            {
                SseAvailable();
                Xmm(ins.Op0Register) = SseSource(ref ins, 1, 16);
                return true;
            }

            case Mnemonic.Pinsrb: SseInsert(ref ins, 1); return true;
            case Mnemonic.Pinsrd: SseInsert(ref ins, 4); return true;
            case Mnemonic.Pinsrq: SseInsert(ref ins, 8); return true;
            case Mnemonic.Pextrb: SseExtract(ref ins, 1); return true;
            case Mnemonic.Pextrw: SseExtract(ref ins, 2); return true; // the SSE4.1 0F 3A 15 form (register or m16)
            case Mnemonic.Pextrd: SseExtract(ref ins, 4); return true;
            case Mnemonic.Pextrq: SseExtract(ref ins, 8); return true;
            case Mnemonic.Extractps: SseExtract(ref ins, 4); return true;
            case Mnemonic.Insertps:
            {
                SseAvailable();
                byte imm = ins.Immediate8;
                UInt128 b;
                if (ins.Op1Kind == OpKind.Memory)
                {
                    // The m32 form takes its single from memory and ignores imm8[7:6] (SDM Vol. 2, INSERTPS).
                    b = SseSource(ref ins, 1, 4);
                    imm &= 0x3F;
                }
                else
                {
                    b = Xmm(ins.Op1Register);
                }

                Xmm(ins.Op0Register) = SseFloat.InsertPs(Xmm(ins.Op0Register), b, imm);
                return true;
            }

            // ------------------------------------------------ SSE4.1 floating point
            case Mnemonic.Roundps: SseRound(ref ins, false, scalar: false); return true;
            case Mnemonic.Roundpd: SseRound(ref ins, true, scalar: false); return true;
            case Mnemonic.Roundss: SseRound(ref ins, false, scalar: true); return true;
            case Mnemonic.Roundsd: SseRound(ref ins, true, scalar: true); return true;
            case Mnemonic.Dpps: SseFloat2(ref ins, 3, false); return true;
            case Mnemonic.Dppd: SseFloat2(ref ins, 3, true); return true;

            // ------------------------------------------------ SSE4.2
            case Mnemonic.Pcmpgtq: SseInt2(ref ins, SseInteger.Pcmpgt(Xmm(ins.Op0Register), SseSource128(ref ins), 8)); return true;
            case Mnemonic.Pcmpestri:
            case Mnemonic.Pcmpestri64:
            case Mnemonic.Pcmpestrm:
            case Mnemonic.Pcmpestrm64:
            case Mnemonic.Pcmpistri:
            case Mnemonic.Pcmpistrm:
                SseStringCompare(ref ins);
                return true;
            case Mnemonic.Crc32:
            {
                // A general-purpose instruction: no CR0/CR4 checks (SDM Vol. 2, CRC32).
                int size = OpSize(ref ins, 1);
                ulong data = ReadOp(ref ins, 1, size);
                SetReg(ins.Op0Register, SseInteger.Crc32((uint)GetReg(ins.Op0Register), data, size));
                return true;
            }

            default:
                return ExecXsave(ref ins);
        }
    }

    /// <summary>
    /// MASKMOVDQU xmm1, xmm2: the bytes of xmm1 whose mask byte in xmm2 has its top bit set are stored at DS:rDI
    /// (segment override allowed; rDI by address size). A zero mask accesses no memory (SDM Vol. 2 leaves it open).
    /// </summary>
    private void Maskmovdqu(ref Instruction ins)
    {
        SseAvailable();
        UInt128 data = Xmm(ins.Op1Register), mask = Xmm(ins.Op2Register);
        ulong rdi = ins.Op0Kind switch
        {
            OpKind.MemorySegDI => (ushort)S.Gpr[7],
            OpKind.MemorySegEDI => (uint)S.Gpr[7],
            _ => S.Gpr[7],
        };
        int seg = SegIndex(ins.MemorySegment);
        for (int i = 0; i < 16; i++)
        {
            if (((mask >> ((8 * i) + 7)) & 1) != 0)
            {
                ProbeWrite(seg, rdi + (ulong)i, 1);
            }
        }

        for (int i = 0; i < 16; i++)
        {
            if (((mask >> ((8 * i) + 7)) & 1) != 0)
            {
                WriteMem(seg, rdi + (ulong)i, 1, (byte)(data >> (8 * i)));
            }
        }
    }

    /// <summary>Packed float SSE3/SSE4.1 forms on xmm1, xmm2/m128: 0 ADDSUB, 1 HADD, 2 HSUB, 3 DPPS/DPPD (imm8).</summary>
    private void SseFloat2(ref Instruction ins, int kind, bool isDouble)
    {
        UInt128 b = SseSource128(ref ins);
        UInt128 a = Xmm(ins.Op0Register);
        var flags = FloatExceptions.None;
        UInt128 r = kind switch
        {
            0 => SseFloat.AddSub(a, b, isDouble, S.Mxcsr, ref flags),
            1 => SseFloat.Horizontal(a, b, isDouble, false, S.Mxcsr, ref flags),
            2 => SseFloat.Horizontal(a, b, isDouble, true, S.Mxcsr, ref flags),
            _ => SseFloat.DotProduct(a, b, isDouble, ins.Immediate8, S.Mxcsr, ref flags),
        };
        SseCommit(flags);
        Xmm(ins.Op0Register) = r;
    }

    private void SseRound(ref Instruction ins, bool isDouble, bool scalar)
    {
        SseAvailable();
        UInt128 b = SseSource(ref ins, 1, scalar ? (isDouble ? 8 : 4) : 16);
        var flags = FloatExceptions.None;
        UInt128 r = scalar
            ? SseFloat.ScalarRound(Xmm(ins.Op0Register), b, isDouble, ins.Immediate8, S.Mxcsr, ref flags)
            : SseFloat.PackedRound(b, isDouble, ins.Immediate8, S.Mxcsr, ref flags);
        SseCommit(flags);
        Xmm(ins.Op0Register) = r;
    }

    /// <summary>PMOVSX/PMOVZX: the source is the low (16 / to) * from bytes of an XMM register or an unaligned memory operand of that size.</summary>
    private void SsePmovx(ref Instruction ins, int from, int to, bool signExtend)
    {
        SseAvailable();
        UInt128 b = SseSource(ref ins, 1, 16 / to * from);
        Xmm(ins.Op0Register) = SseInteger.Pmovx(b, from, to, signExtend);
    }

    /// <summary>PINSRB/PINSRD/PINSRQ xmm, r/m, imm8: the lane selected by imm8 (modulo the lane count) is replaced.</summary>
    private void SseInsert(ref Instruction ins, int size)
    {
        SseAvailable();
        ulong v = (ulong)SseSource(ref ins, 1, size) & SizeMask(size);
        int shift = (ins.Immediate8 & ((16 / size) - 1)) * size * 8;
        UInt128 laneMask = (UInt128)SizeMask(size) << shift;
        ref UInt128 d = ref Xmm(ins.Op0Register);
        d = (d & ~laneMask) | ((UInt128)v << shift);
    }

    /// <summary>
    /// PEXTRB/PEXTRW/PEXTRD/PEXTRQ and EXTRACTPS r/m, xmm, imm8: a register destination receives the lane zero-extended to
    /// the register's full width; a memory destination receives the lane's bytes.
    /// </summary>
    private void SseExtract(ref Instruction ins, int size)
    {
        SseAvailable();
        int shift = (ins.Immediate8 & ((16 / size) - 1)) * size * 8;
        ulong v = (ulong)(Xmm(ins.Op1Register) >> shift) & SizeMask(size);
        if (ins.Op0Kind == OpKind.Register)
        {
            SetReg(ins.Op0Register, v);
        }
        else
        {
            WriteMem(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), size, v);
        }
    }

    /// <summary>
    /// PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM: the index goes to ECX (zero-extended), the mask to XMM0; CF ZF SF OF from
    /// the comparison, AF and PF cleared. Explicit lengths come from RAX/RDX with REX.W, else EAX/EDX (signed).
    /// </summary>
    private void SseStringCompare(ref Instruction ins)
    {
        SseAvailable();
        UInt128 b = SseSource(ref ins, 1, 16, unaligned: true);
        byte imm = ins.Immediate8;
        long? la = null, lb = null;
        if (ins.Mnemonic is Mnemonic.Pcmpestri or Mnemonic.Pcmpestrm)
        {
            la = (int)(uint)S.Gpr[0];
            lb = (int)(uint)S.Gpr[2];
        }
        else if (ins.Mnemonic is Mnemonic.Pcmpestri64 or Mnemonic.Pcmpestrm64)
        {
            la = (long)S.Gpr[0];
            lb = (long)S.Gpr[2];
        }

        StringCompareResult r = SseString.Compare(Xmm(ins.Op0Register), b, imm, la, lb);
        if (ins.Mnemonic is Mnemonic.Pcmpestri or Mnemonic.Pcmpestri64 or Mnemonic.Pcmpistri)
        {
            S.Gpr[1] = SseString.Index(r, imm);
        }
        else
        {
            S.Xmm[0] = SseString.Mask(r, imm);
        }

        S.Rflags = (S.Rflags & ~Fl.Status) | r.Eflags;
    }
}
