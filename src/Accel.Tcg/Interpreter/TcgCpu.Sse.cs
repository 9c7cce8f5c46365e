using System.Buffers.Binary;
using Hypervisor.Accel.Tcg.Fpu;
using Hypervisor.Accel.Tcg.Sse;
using Hypervisor.Accel.Tcg.State;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Interpreter;

// SSE/SSE2 in legacy encoding over the Sse semantic library: the data movement, integer and floating-point core that
// compilers emit, MXCSR access and FXSAVE/FXRSTOR. MMX and VEX forms are not handled here (they stay #UD). SSE3 to
// SSE4.2, the approximations and MASKMOVDQU are in TcgCpu.Sse4.cs, XSAVE in TcgCpu.Xsave.cs; CPUID advertises all of
// them (TcgCpu.System.cs).
internal sealed partial class TcgCpu
{
    /// <summary>MXCSR_MASK as FXSAVE reports it: every bit of <see cref="Mxcsr.WritableMask"/> (DAZ included).</summary>
    private const uint MxcsrMask = Mxcsr.WritableMask;

    /// <summary>Executes an SSE/SSE2 instruction; false when <paramref name="ins"/> is not one this file implements.</summary>
    private bool ExecSse(ref Instruction ins)
    {
        if (ins.Encoding != EncodingKind.Legacy || ins.Op0Register.IsMM() || ins.Op1Register.IsMM())
        {
            return false;
        }

        switch (ins.Mnemonic)
        {
            // ------------------------------------------------ data movement
            case Mnemonic.Movaps:
            case Mnemonic.Movapd:
            case Mnemonic.Movdqa:
                SseAvailable();
                SseMove(ref ins, aligned: true);
                return true;
            case Mnemonic.Movups:
            case Mnemonic.Movupd:
            case Mnemonic.Movdqu:
                SseAvailable();
                SseMove(ref ins, aligned: false);
                return true;
            case Mnemonic.Movd:
                SseAvailable();
                SseMoveLow(ref ins, 4);
                return true;
            case Mnemonic.Movq:
                SseAvailable();
                SseMoveLow(ref ins, 8);
                return true;
            case Mnemonic.Movss:
                SseAvailable();
                SseMoveScalar(ref ins, 4);
                return true;
            case Mnemonic.Movsd:
                SseAvailable();
                SseMoveScalar(ref ins, 8);
                return true;

            case Mnemonic.Movhps:
            case Mnemonic.Movhpd:
                SseAvailable();
                SseMoveHalf(ref ins, high: true);
                return true;
            case Mnemonic.Movlps:
            case Mnemonic.Movlpd:
                SseAvailable();
                SseMoveHalf(ref ins, high: false);
                return true;
            case Mnemonic.Movhlps:
            {
                SseAvailable();
                ref UInt128 d = ref Xmm(ins.Op0Register);
                d = (d & ~(UInt128)ulong.MaxValue) | (Xmm(ins.Op1Register) >> 64);
                return true;
            }

            case Mnemonic.Movlhps:
            {
                SseAvailable();
                ref UInt128 d = ref Xmm(ins.Op0Register);
                d = (d & ulong.MaxValue) | (Xmm(ins.Op1Register) << 64);
                return true;
            }

            case Mnemonic.Movntdq:
            case Mnemonic.Movntps:
            case Mnemonic.Movntpd:
                SseAvailable();
                SseStore(ref ins, 16, Xmm(ins.Op1Register), unaligned: false);
                return true;
            case Mnemonic.Movnti:
                SseAvailable();
                WriteMem(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), OpSize(ref ins, 1), GetReg(ins.Op1Register));
                return true;
            case Mnemonic.Pinsrw:
            {
                SseAvailable();
                ulong word = (ulong)SseSource(ref ins, 1, 2) & 0xFFFF;
                int shift = (ins.Immediate8 & 7) * 16;
                ref UInt128 d = ref Xmm(ins.Op0Register);
                d = (d & ~((UInt128)0xFFFF << shift)) | ((UInt128)word << shift);
                return true;
            }

            case Mnemonic.Pextrw when ins.Op0Kind == OpKind.Register && ins.Op1Register.IsXMM():
                SseAvailable();
                SetReg(ins.Op0Register, (ulong)(Xmm(ins.Op1Register) >> ((ins.Immediate8 & 7) * 16)) & 0xFFFF);
                return true;

            // ------------------------------------------------ bitwise
            case Mnemonic.Pxor:
            case Mnemonic.Xorps:
            case Mnemonic.Xorpd:
            {
                UInt128 b = SseSource128(ref ins);
                Xmm(ins.Op0Register) ^= b;
                return true;
            }

            case Mnemonic.Pand:
            case Mnemonic.Andps:
            case Mnemonic.Andpd:
            {
                UInt128 b = SseSource128(ref ins);
                Xmm(ins.Op0Register) &= b;
                return true;
            }

            case Mnemonic.Pandn:
            case Mnemonic.Andnps:
            case Mnemonic.Andnpd:
            {
                UInt128 b = SseSource128(ref ins);
                ref UInt128 a = ref Xmm(ins.Op0Register);
                a = ~a & b;
                return true;
            }

            case Mnemonic.Por:
            case Mnemonic.Orps:
            case Mnemonic.Orpd:
            {
                UInt128 b = SseSource128(ref ins);
                Xmm(ins.Op0Register) |= b;
                return true;
            }

            // ------------------------------------------------ integer
            case Mnemonic.Paddb: SseInt(ref ins, IntOp.Add, 1); return true;
            case Mnemonic.Paddw: SseInt(ref ins, IntOp.Add, 2); return true;
            case Mnemonic.Paddd: SseInt(ref ins, IntOp.Add, 4); return true;
            case Mnemonic.Paddq: SseInt(ref ins, IntOp.Add, 8); return true;
            case Mnemonic.Psubb: SseInt(ref ins, IntOp.Sub, 1); return true;
            case Mnemonic.Psubw: SseInt(ref ins, IntOp.Sub, 2); return true;
            case Mnemonic.Psubd: SseInt(ref ins, IntOp.Sub, 4); return true;
            case Mnemonic.Psubq: SseInt(ref ins, IntOp.Sub, 8); return true;
            case Mnemonic.Pcmpeqb: SseInt(ref ins, IntOp.CmpEq, 1); return true;
            case Mnemonic.Pcmpeqw: SseInt(ref ins, IntOp.CmpEq, 2); return true;
            case Mnemonic.Pcmpeqd: SseInt(ref ins, IntOp.CmpEq, 4); return true;
            case Mnemonic.Pcmpgtb: SseInt(ref ins, IntOp.CmpGt, 1); return true;
            case Mnemonic.Pcmpgtw: SseInt(ref ins, IntOp.CmpGt, 2); return true;
            case Mnemonic.Pcmpgtd: SseInt(ref ins, IntOp.CmpGt, 4); return true;
            case Mnemonic.Paddsb: SseInt2(ref ins, SseInteger.AddSubSaturate(Xmm(ins.Op0Register), SseSource128(ref ins), 1, false, true)); return true;
            case Mnemonic.Paddsw: SseInt2(ref ins, SseInteger.AddSubSaturate(Xmm(ins.Op0Register), SseSource128(ref ins), 2, false, true)); return true;
            case Mnemonic.Paddusb: SseInt2(ref ins, SseInteger.AddSubSaturate(Xmm(ins.Op0Register), SseSource128(ref ins), 1, false, false)); return true;
            case Mnemonic.Paddusw: SseInt2(ref ins, SseInteger.AddSubSaturate(Xmm(ins.Op0Register), SseSource128(ref ins), 2, false, false)); return true;
            case Mnemonic.Psubsb: SseInt2(ref ins, SseInteger.AddSubSaturate(Xmm(ins.Op0Register), SseSource128(ref ins), 1, true, true)); return true;
            case Mnemonic.Psubsw: SseInt2(ref ins, SseInteger.AddSubSaturate(Xmm(ins.Op0Register), SseSource128(ref ins), 2, true, true)); return true;
            case Mnemonic.Psubusb: SseInt2(ref ins, SseInteger.AddSubSaturate(Xmm(ins.Op0Register), SseSource128(ref ins), 1, true, false)); return true;
            case Mnemonic.Psubusw: SseInt2(ref ins, SseInteger.AddSubSaturate(Xmm(ins.Op0Register), SseSource128(ref ins), 2, true, false)); return true;
            case Mnemonic.Pmullw: SseInt2(ref ins, SseInteger.Pmullw(Xmm(ins.Op0Register), SseSource128(ref ins))); return true;
            case Mnemonic.Pmulhw: SseInt2(ref ins, SseInteger.Pmulhw(Xmm(ins.Op0Register), SseSource128(ref ins))); return true;
            case Mnemonic.Pmulhuw: SseInt2(ref ins, SseInteger.Pmulhuw(Xmm(ins.Op0Register), SseSource128(ref ins))); return true;
            case Mnemonic.Pmuludq: SseInt2(ref ins, SseInteger.Pmuldq(Xmm(ins.Op0Register), SseSource128(ref ins), false)); return true;
            case Mnemonic.Pmaddwd: SseInt2(ref ins, SseInteger.Pmaddwd(Xmm(ins.Op0Register), SseSource128(ref ins))); return true;
            case Mnemonic.Pavgb: SseInt2(ref ins, SseInteger.Pavg(Xmm(ins.Op0Register), SseSource128(ref ins), 1)); return true;
            case Mnemonic.Pavgw: SseInt2(ref ins, SseInteger.Pavg(Xmm(ins.Op0Register), SseSource128(ref ins), 2)); return true;
            case Mnemonic.Pminub: SseInt2(ref ins, SseInteger.MinMax(Xmm(ins.Op0Register), SseSource128(ref ins), 1, false, false)); return true;
            case Mnemonic.Pmaxub: SseInt2(ref ins, SseInteger.MinMax(Xmm(ins.Op0Register), SseSource128(ref ins), 1, false, true)); return true;
            case Mnemonic.Pminsw: SseInt2(ref ins, SseInteger.MinMax(Xmm(ins.Op0Register), SseSource128(ref ins), 2, true, false)); return true;
            case Mnemonic.Pmaxsw: SseInt2(ref ins, SseInteger.MinMax(Xmm(ins.Op0Register), SseSource128(ref ins), 2, true, true)); return true;
            case Mnemonic.Psadbw: SseInt2(ref ins, SseInteger.Psadbw(Xmm(ins.Op0Register), SseSource128(ref ins))); return true;
            case Mnemonic.Packsswb: SseInt2(ref ins, SseInteger.Pack(Xmm(ins.Op0Register), SseSource128(ref ins), 2, false)); return true;
            case Mnemonic.Packssdw: SseInt2(ref ins, SseInteger.Pack(Xmm(ins.Op0Register), SseSource128(ref ins), 4, false)); return true;
            case Mnemonic.Packuswb: SseInt2(ref ins, SseInteger.Pack(Xmm(ins.Op0Register), SseSource128(ref ins), 2, true)); return true;
            case Mnemonic.Pmovmskb:
            {
                SseAvailable();
                SetReg(ins.Op0Register, SseInteger.MoveMask(Xmm(ins.Op1Register), 1));
                return true;
            }

            // ------------------------------------------------ floating point
            case Mnemonic.Addss: SseScalar(ref ins, SseBinaryOp.Add, false); return true;
            case Mnemonic.Addsd: SseScalar(ref ins, SseBinaryOp.Add, true); return true;
            case Mnemonic.Addps: SsePacked(ref ins, SseBinaryOp.Add, false); return true;
            case Mnemonic.Addpd: SsePacked(ref ins, SseBinaryOp.Add, true); return true;
            case Mnemonic.Subss: SseScalar(ref ins, SseBinaryOp.Sub, false); return true;
            case Mnemonic.Subsd: SseScalar(ref ins, SseBinaryOp.Sub, true); return true;
            case Mnemonic.Subps: SsePacked(ref ins, SseBinaryOp.Sub, false); return true;
            case Mnemonic.Subpd: SsePacked(ref ins, SseBinaryOp.Sub, true); return true;
            case Mnemonic.Mulss: SseScalar(ref ins, SseBinaryOp.Mul, false); return true;
            case Mnemonic.Mulsd: SseScalar(ref ins, SseBinaryOp.Mul, true); return true;
            case Mnemonic.Mulps: SsePacked(ref ins, SseBinaryOp.Mul, false); return true;
            case Mnemonic.Mulpd: SsePacked(ref ins, SseBinaryOp.Mul, true); return true;
            case Mnemonic.Divss: SseScalar(ref ins, SseBinaryOp.Div, false); return true;
            case Mnemonic.Divsd: SseScalar(ref ins, SseBinaryOp.Div, true); return true;
            case Mnemonic.Divps: SsePacked(ref ins, SseBinaryOp.Div, false); return true;
            case Mnemonic.Divpd: SsePacked(ref ins, SseBinaryOp.Div, true); return true;
            case Mnemonic.Minss: SseScalar(ref ins, SseBinaryOp.Min, false); return true;
            case Mnemonic.Minsd: SseScalar(ref ins, SseBinaryOp.Min, true); return true;
            case Mnemonic.Minps: SsePacked(ref ins, SseBinaryOp.Min, false); return true;
            case Mnemonic.Minpd: SsePacked(ref ins, SseBinaryOp.Min, true); return true;
            case Mnemonic.Maxss: SseScalar(ref ins, SseBinaryOp.Max, false); return true;
            case Mnemonic.Maxsd: SseScalar(ref ins, SseBinaryOp.Max, true); return true;
            case Mnemonic.Maxps: SsePacked(ref ins, SseBinaryOp.Max, false); return true;
            case Mnemonic.Maxpd: SsePacked(ref ins, SseBinaryOp.Max, true); return true;
            case Mnemonic.Sqrtss: SseSqrt(ref ins, false, scalar: true); return true;
            case Mnemonic.Sqrtsd: SseSqrt(ref ins, true, scalar: true); return true;
            case Mnemonic.Sqrtps: SseSqrt(ref ins, false, scalar: false); return true;
            case Mnemonic.Sqrtpd: SseSqrt(ref ins, true, scalar: false); return true;

            // ------------------------------------------------ conversions and comparisons
            case Mnemonic.Cvtsi2ss: SseIntToScalar(ref ins, false); return true;
            case Mnemonic.Cvtsi2sd: SseIntToScalar(ref ins, true); return true;
            case Mnemonic.Cvtss2si: SseScalarToInt(ref ins, false, truncate: false); return true;
            case Mnemonic.Cvtsd2si: SseScalarToInt(ref ins, true, truncate: false); return true;
            case Mnemonic.Cvttss2si: SseScalarToInt(ref ins, false, truncate: true); return true;
            case Mnemonic.Cvttsd2si: SseScalarToInt(ref ins, true, truncate: true); return true;
            case Mnemonic.Cvtss2sd:
            {
                SseAvailable();
                UInt128 b = SseSource(ref ins, 1, 4);
                var flags = FloatExceptions.None;
                UInt128 r = SseConvert.Ss2Sd(Xmm(ins.Op0Register), b, S.Mxcsr, ref flags);
                SseCommit(flags);
                Xmm(ins.Op0Register) = r;
                return true;
            }

            case Mnemonic.Cvtsd2ss:
            {
                SseAvailable();
                UInt128 b = SseSource(ref ins, 1, 8);
                var flags = FloatExceptions.None;
                UInt128 r = SseConvert.Sd2Ss(Xmm(ins.Op0Register), b, S.Mxcsr, ref flags);
                SseCommit(flags);
                Xmm(ins.Op0Register) = r;
                return true;
            }

            case Mnemonic.Ucomiss: SseCompareScalar(ref ins, false, quiet: true); return true;
            case Mnemonic.Ucomisd: SseCompareScalar(ref ins, true, quiet: true); return true;
            case Mnemonic.Comiss: SseCompareScalar(ref ins, false, quiet: false); return true;
            case Mnemonic.Comisd: SseCompareScalar(ref ins, true, quiet: false); return true;

            // ------------------------------------------------ shuffles, unpacks, shifts, masks
            case Mnemonic.Punpcklbw: SseShuffle(ref ins, ShuffleOp.UnpackLow, 1); return true;
            case Mnemonic.Punpcklwd: SseShuffle(ref ins, ShuffleOp.UnpackLow, 2); return true;
            case Mnemonic.Punpckldq:
            case Mnemonic.Unpcklps: SseShuffle(ref ins, ShuffleOp.UnpackLow, 4); return true;
            case Mnemonic.Punpcklqdq:
            case Mnemonic.Unpcklpd: SseShuffle(ref ins, ShuffleOp.UnpackLow, 8); return true;
            case Mnemonic.Punpckhbw: SseShuffle(ref ins, ShuffleOp.UnpackHigh, 1); return true;
            case Mnemonic.Punpckhwd: SseShuffle(ref ins, ShuffleOp.UnpackHigh, 2); return true;
            case Mnemonic.Punpckhdq:
            case Mnemonic.Unpckhps: SseShuffle(ref ins, ShuffleOp.UnpackHigh, 4); return true;
            case Mnemonic.Punpckhqdq:
            case Mnemonic.Unpckhpd: SseShuffle(ref ins, ShuffleOp.UnpackHigh, 8); return true;
            case Mnemonic.Pshufd: SseShuffle(ref ins, ShuffleOp.Pshufd, 4); return true;
            case Mnemonic.Pshuflw: SseShuffle(ref ins, ShuffleOp.Pshuflw, 2); return true;
            case Mnemonic.Pshufhw: SseShuffle(ref ins, ShuffleOp.Pshufhw, 2); return true;
            case Mnemonic.Shufps: SseShuffle(ref ins, ShuffleOp.Shufps, 4); return true;
            case Mnemonic.Shufpd: SseShuffle(ref ins, ShuffleOp.Shufpd, 8); return true;
            case Mnemonic.Psllw: SseShift(ref ins, 0, 2); return true;
            case Mnemonic.Pslld: SseShift(ref ins, 0, 4); return true;
            case Mnemonic.Psllq: SseShift(ref ins, 0, 8); return true;
            case Mnemonic.Psrlw: SseShift(ref ins, 1, 2); return true;
            case Mnemonic.Psrld: SseShift(ref ins, 1, 4); return true;
            case Mnemonic.Psrlq: SseShift(ref ins, 1, 8); return true;
            case Mnemonic.Psraw: SseShift(ref ins, 2, 2); return true;
            case Mnemonic.Psrad: SseShift(ref ins, 2, 4); return true;
            case Mnemonic.Pslldq:
                SseAvailable();
                Xmm(ins.Op0Register) = SseInteger.Pslldq(Xmm(ins.Op0Register), ins.Immediate8);
                return true;
            case Mnemonic.Psrldq:
                SseAvailable();
                Xmm(ins.Op0Register) = SseInteger.Psrldq(Xmm(ins.Op0Register), ins.Immediate8);
                return true;
            case Mnemonic.Movmskps:
                SseAvailable();
                SetReg(ins.Op0Register, SseInteger.MoveMask(Xmm(ins.Op1Register), 4));
                return true;
            case Mnemonic.Movmskpd:
                SseAvailable();
                SetReg(ins.Op0Register, SseInteger.MoveMask(Xmm(ins.Op1Register), 8));
                return true;

            // ------------------------------------------------ packed conversions and compares
            case Mnemonic.Cvtdq2ps: SsePackedConvert(ref ins, 16, (UInt128 v, uint m, ref FloatExceptions f) => SseConvert.Dq2Ps(v, m, ref f)); return true;
            case Mnemonic.Cvtdq2pd: SsePackedConvert(ref ins, 8, (UInt128 v, uint m, ref FloatExceptions f) => SseConvert.Dq2Pd(v, m, ref f)); return true;
            case Mnemonic.Cvtps2dq: SsePackedConvert(ref ins, 16, (UInt128 v, uint m, ref FloatExceptions f) => SseConvert.Ps2Dq(v, false, m, ref f)); return true;
            case Mnemonic.Cvttps2dq: SsePackedConvert(ref ins, 16, (UInt128 v, uint m, ref FloatExceptions f) => SseConvert.Ps2Dq(v, true, m, ref f)); return true;
            case Mnemonic.Cvtpd2dq: SsePackedConvert(ref ins, 16, (UInt128 v, uint m, ref FloatExceptions f) => SseConvert.Pd2Dq(v, false, m, ref f)); return true;
            case Mnemonic.Cvttpd2dq: SsePackedConvert(ref ins, 16, (UInt128 v, uint m, ref FloatExceptions f) => SseConvert.Pd2Dq(v, true, m, ref f)); return true;
            case Mnemonic.Cvtps2pd: SsePackedConvert(ref ins, 8, (UInt128 v, uint m, ref FloatExceptions f) => SseConvert.Ps2Pd(v, m, ref f)); return true;
            case Mnemonic.Cvtpd2ps: SsePackedConvert(ref ins, 16, (UInt128 v, uint m, ref FloatExceptions f) => SseConvert.Pd2Ps(v, m, ref f)); return true;
            case Mnemonic.Cmpps: SseCompare(ref ins, false, scalar: false); return true;
            case Mnemonic.Cmppd: SseCompare(ref ins, true, scalar: false); return true;
            case Mnemonic.Cmpss: SseCompare(ref ins, false, scalar: true); return true;
            case Mnemonic.Cmpsd: SseCompare(ref ins, true, scalar: true); return true;

            // ------------------------------------------------ state
            case Mnemonic.Ldmxcsr:
            {
                SseAvailable();
                uint v = (uint)ReadMem(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), 4);
                if ((v & ~Mxcsr.WritableMask) != 0)
                {
                    throw Gp0(); // SDM Vol. 2, LDMXCSR: reserved bits set
                }

                S.Mxcsr = v;
                return true;
            }

            case Mnemonic.Stmxcsr:
                SseAvailable();
                WriteMem(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), 4, S.Mxcsr);
                return true;
            case Mnemonic.Fxsave:
            case Mnemonic.Fxsave64:
                Fxsave(ref ins, ins.Mnemonic == Mnemonic.Fxsave64);
                return true;
            case Mnemonic.Fxrstor:
            case Mnemonic.Fxrstor64:
                Fxrstor(ref ins, ins.Mnemonic == Mnemonic.Fxrstor64);
                return true;
            default:
                return ExecSse4(ref ins);
        }
    }

    private enum ShuffleOp : byte
    {
        UnpackLow,
        UnpackHigh,
        Pshufd,
        Pshuflw,
        Pshufhw,
        Shufps,
        Shufpd,
    }

    private delegate UInt128 PackedConversion(UInt128 source, uint mxcsr, ref FloatExceptions flags);

    private void SseShuffle(ref Instruction ins, ShuffleOp op, int laneBytes)
    {
        UInt128 b = SseSource128(ref ins);
        ref UInt128 a = ref Xmm(ins.Op0Register);
        a = op switch
        {
            ShuffleOp.UnpackLow => SseInteger.Unpack(a, b, laneBytes, false),
            ShuffleOp.UnpackHigh => SseInteger.Unpack(a, b, laneBytes, true),
            ShuffleOp.Pshufd => SseInteger.Pshufd(b, ins.Immediate8),
            ShuffleOp.Pshuflw => SseInteger.Pshufw(b, ins.Immediate8, false),
            ShuffleOp.Pshufhw => SseInteger.Pshufw(b, ins.Immediate8, true),
            ShuffleOp.Shufps => SseInteger.Shufps(a, b, ins.Immediate8),
            _ => SseInteger.Shufpd(a, b, ins.Immediate8),
        };
    }

    /// <summary>PSLL/PSRL/PSRA by an immediate or by the low 64 bits of an XMM register or m128 (kind 0 left, 1 logical right, 2 arithmetic right).</summary>
    private void SseShift(ref Instruction ins, int kind, int laneBytes)
    {
        ulong count = ins.Op1Kind == OpKind.Immediate8 ? ins.Immediate8 : (ulong)SseSource128(ref ins);
        SseAvailable();
        ref UInt128 a = ref Xmm(ins.Op0Register);
        a = kind switch
        {
            0 => SseInteger.Psll(a, count, laneBytes),
            1 => SseInteger.Psrl(a, count, laneBytes),
            _ => SseInteger.Psra(a, count, laneBytes),
        };
    }

    /// <summary>A packed conversion reading <paramref name="sourceBytes"/> (8 for CVTDQ2PD/CVTPS2PD, 16 otherwise).</summary>
    private void SsePackedConvert(ref Instruction ins, int sourceBytes, PackedConversion convert)
    {
        SseAvailable();
        UInt128 b = SseSource(ref ins, 1, sourceBytes);
        var flags = FloatExceptions.None;
        UInt128 r = convert(b, S.Mxcsr, ref flags);
        SseCommit(flags);
        Xmm(ins.Op0Register) = r;
    }

    /// <summary>CMPPS/CMPPD/CMPSS/CMPSD with predicates 0-7 (legacy encoding): all-ones or zero lanes.</summary>
    private void SseCompare(ref Instruction ins, bool isDouble, bool scalar)
    {
        SseAvailable();
        int lane = isDouble ? 8 : 4;
        UInt128 b = SseSource(ref ins, 1, scalar ? lane : 16);
        int predicate = ins.Immediate8 & 7;
        var flags = FloatExceptions.None;
        UInt128 a = Xmm(ins.Op0Register);
        UInt128 r;
        if (scalar)
        {
            UInt128 mask = ((UInt128)1 << (lane * 8)) - 1;
            bool hit = SseFloat.Compare(predicate, (ulong)(a & mask), (ulong)(b & mask), isDouble, S.Mxcsr, ref flags);
            r = (a & ~mask) | (hit ? mask : 0);
        }
        else
        {
            r = SseFloat.PackedCompare(predicate, a, b, isDouble, S.Mxcsr, ref flags);
        }

        SseCommit(flags);
        Xmm(ins.Op0Register) = r;
    }

    private enum IntOp : byte
    {
        Add,
        Sub,
        CmpEq,
        CmpGt,
    }

    /// <summary>
    /// SSE/SSE2 availability (SDM Vol. 3A, 13.1 and Table 2-2; each instruction's "SIMD floating-point exceptions" table):
    /// #UD when CR0.EM is set or CR4.OSFXSR is clear, then #NM when CR0.TS is set.
    /// </summary>
    private void SseAvailable()
    {
        if ((S.Cr0 & Cr.EM) != 0 || (S.Cr4 & Cr.Cr4Osfxsr) == 0)
        {
            throw Ud();
        }

        if ((S.Cr0 & Cr.TS) != 0)
        {
            throw new GuestFault(Vec.NM, 0, false);
        }
    }

    /// <summary>
    /// After a floating-point operation detected <paramref name="flags"/>: MXCSR accumulates them, and an unmasked one
    /// raises #XM, or #UD with CR4.OSXMMEXCPT clear (SDM Vol. 1, 11.5.1; Vol. 3A, 2.5), before any destination is written.
    /// </summary>
    private void SseCommit(FloatExceptions flags)
    {
        FloatExceptions unmasked = Mxcsr.Unmasked(S.Mxcsr, flags);
        S.Mxcsr = Mxcsr.Accumulate(S.Mxcsr, flags);
        if (unmasked != 0)
        {
            throw (S.Cr4 & Cr.Cr4Osxmmexcpt) != 0 ? new GuestFault(Vec.XM, 0, false) : Ud();
        }
    }

    private ref UInt128 Xmm(Register r) => ref S.Xmm[r - Register.XMM0];

    /// <summary>The linear address of a 16-byte memory operand, #GP(0) unless it is 16-byte aligned (MOVAPS-class rule).</summary>
    private void CheckAligned16(ref Instruction ins, int size, bool write)
    {
        ulong lin = Linear(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), size, write);
        if ((lin & 15) != 0)
        {
            throw Gp0();
        }
    }

    /// <summary>
    /// Reads operand <paramref name="n"/> (an XMM register, a general register or memory) as its low <paramref name="size"/>
    /// bytes, zero-extended. A 16-byte memory operand must be aligned unless <paramref name="unaligned"/>.
    /// </summary>
    private UInt128 SseSource(ref Instruction ins, int n, int size, bool unaligned = false)
    {
        OpKind kind = ins.GetOpKind(n);
        if (kind == OpKind.Register)
        {
            Register r = ins.GetOpRegister(n);
            if (r.IsXMM())
            {
                UInt128 v = Xmm(r);
                return size == 16 ? v : v & (((UInt128)1 << (size * 8)) - 1);
            }

            return GetReg(r) & SizeMask(size);
        }

        int seg = SegIndex(ins.MemorySegment);
        ulong ea = EffectiveAddress(ref ins);
        if (size < 16)
        {
            return ReadMem(seg, ea, size);
        }

        if (!unaligned)
        {
            CheckAligned16(ref ins, 16, false);
        }

        ulong lo = ReadMem(seg, ea, 8);
        ulong hi = ReadMem(seg, ea + 8, 8);
        return new UInt128(hi, lo);
    }

    /// <summary>The second operand of a packed 128-bit instruction, after the availability checks.</summary>
    private UInt128 SseSource128(ref Instruction ins)
    {
        SseAvailable();
        return SseSource(ref ins, 1, 16);
    }

    /// <summary>Writes the low <paramref name="size"/> bytes of <paramref name="value"/> to memory operand 0, all or nothing.</summary>
    private void SseStore(ref Instruction ins, int size, UInt128 value, bool unaligned)
    {
        int seg = SegIndex(ins.MemorySegment);
        ulong ea = EffectiveAddress(ref ins);
        if (size < 16)
        {
            WriteMem(seg, ea, size, (ulong)value);
            return;
        }

        if (!unaligned)
        {
            CheckAligned16(ref ins, 16, true);
        }

        ProbeWrite(seg, ea + 8, 8);
        WriteMem(seg, ea, 8, (ulong)value);
        WriteMem(seg, ea + 8, 8, (ulong)(value >> 64));
    }

    /// <summary>MOVAPS/MOVAPD/MOVDQA (aligned) and MOVUPS/MOVUPD/MOVDQU: 128 bits, register or memory on either side.</summary>
    private void SseMove(ref Instruction ins, bool aligned)
    {
        UInt128 v = SseSource(ref ins, 1, 16, unaligned: !aligned);
        if (ins.Op0Kind == OpKind.Register)
        {
            Xmm(ins.Op0Register) = v;
        }
        else
        {
            SseStore(ref ins, 16, v, unaligned: !aligned);
        }
    }

    /// <summary>
    /// MOVD/MOVQ between XMM and a general register, memory or another XMM: the low <paramref name="size"/> bytes; an XMM
    /// destination is zero-extended to 128 bits (SDM Vol. 2, MOVD/MOVQ).
    /// </summary>
    private void SseMoveLow(ref Instruction ins, int size)
    {
        UInt128 v = SseSource(ref ins, 1, size);
        if (ins.Op0Kind == OpKind.Register && ins.Op0Register.IsXMM())
        {
            Xmm(ins.Op0Register) = v;
        }
        else if (ins.Op0Kind == OpKind.Register)
        {
            SetReg(ins.Op0Register, (ulong)v);
        }
        else
        {
            SseStore(ref ins, size, v, unaligned: true);
        }
    }

    /// <summary>MOVHPS/MOVHPD/MOVLPS/MOVLPD: a load replaces the high (low) quadword and keeps the other; a store writes it.</summary>
    private void SseMoveHalf(ref Instruction ins, bool high)
    {
        int shift = high ? 64 : 0;
        if (ins.Op0Kind == OpKind.Memory)
        {
            SseStore(ref ins, 8, Xmm(ins.Op1Register) >> shift, unaligned: true);
            return;
        }

        ulong v = (ulong)SseSource(ref ins, 1, 8);
        ref UInt128 d = ref Xmm(ins.Op0Register);
        d = (d & ~((UInt128)ulong.MaxValue << shift)) | ((UInt128)v << shift);
    }

    /// <summary>MOVSS/MOVSD: register to register merges the low lane; a load zero-extends; a store writes the low lane.</summary>
    private void SseMoveScalar(ref Instruction ins, int size)
    {
        UInt128 lane = ((UInt128)1 << (size * 8)) - 1;
        UInt128 v = SseSource(ref ins, 1, size);
        if (ins.Op0Kind != OpKind.Register)
        {
            SseStore(ref ins, size, v, unaligned: true);
        }
        else if (ins.Op1Kind == OpKind.Register)
        {
            ref UInt128 d = ref Xmm(ins.Op0Register);
            d = (d & ~lane) | v;
        }
        else
        {
            Xmm(ins.Op0Register) = v;
        }
    }

    /// <summary>Writes an integer result computed by the caller (the source was read, and availability checked, first).</summary>
    private void SseInt2(ref Instruction ins, UInt128 result) => Xmm(ins.Op0Register) = result;

    private void SseInt(ref Instruction ins, IntOp op, int laneBytes)
    {
        UInt128 b = SseSource128(ref ins);
        ref UInt128 a = ref Xmm(ins.Op0Register);
        a = op switch
        {
            IntOp.Add => SseInteger.Padd(a, b, laneBytes),
            IntOp.Sub => SseInteger.Psub(a, b, laneBytes),
            IntOp.CmpEq => SseInteger.Pcmpeq(a, b, laneBytes),
            _ => SseInteger.Pcmpgt(a, b, laneBytes),
        };
    }

    private void SsePacked(ref Instruction ins, SseBinaryOp op, bool isDouble)
    {
        UInt128 b = SseSource128(ref ins);
        var flags = FloatExceptions.None;
        UInt128 r = SseFloat.PackedBinary(op, Xmm(ins.Op0Register), b, isDouble, S.Mxcsr, ref flags);
        SseCommit(flags);
        Xmm(ins.Op0Register) = r;
    }

    private void SseScalar(ref Instruction ins, SseBinaryOp op, bool isDouble)
    {
        SseAvailable();
        UInt128 b = SseSource(ref ins, 1, isDouble ? 8 : 4);
        var flags = FloatExceptions.None;
        UInt128 r = SseFloat.ScalarBinary(op, Xmm(ins.Op0Register), b, isDouble, S.Mxcsr, ref flags);
        SseCommit(flags);
        Xmm(ins.Op0Register) = r;
    }

    private void SseSqrt(ref Instruction ins, bool isDouble, bool scalar)
    {
        SseAvailable();
        UInt128 b = SseSource(ref ins, 1, scalar ? (isDouble ? 8 : 4) : 16);
        var flags = FloatExceptions.None;
        UInt128 r = scalar
            ? SseFloat.ScalarSqrt(Xmm(ins.Op0Register), b, isDouble, S.Mxcsr, ref flags)
            : SseFloat.PackedSqrt(b, isDouble, S.Mxcsr, ref flags);
        SseCommit(flags);
        Xmm(ins.Op0Register) = r;
    }

    /// <summary>CVTSI2SS/CVTSI2SD from r/m32 (sign-extended) or r/m64 (REX.W).</summary>
    private void SseIntToScalar(ref Instruction ins, bool isDouble)
    {
        SseAvailable();
        int size = OpSize(ref ins, 1);
        long value = size == 8 ? (long)(ulong)SseSource(ref ins, 1, 8) : (int)(uint)SseSource(ref ins, 1, 4);
        var flags = FloatExceptions.None;
        UInt128 r = SseConvert.Si2Scalar(Xmm(ins.Op0Register), value, isDouble, S.Mxcsr, ref flags);
        SseCommit(flags);
        Xmm(ins.Op0Register) = r;
    }

    /// <summary>CVT(T)SS2SI/CVT(T)SD2SI into r32 or r64 (integer indefinite on invalid, per SseFloat.ToInteger).</summary>
    private void SseScalarToInt(ref Instruction ins, bool isDouble, bool truncate)
    {
        SseAvailable();
        UInt128 b = SseSource(ref ins, 1, isDouble ? 8 : 4);
        int bits = RegSize(ins.Op0Register) * 8;
        var flags = FloatExceptions.None;
        long r = SseConvert.Scalar2Si(b, isDouble, bits, truncate, S.Mxcsr, ref flags);
        SseCommit(flags);
        SetReg(ins.Op0Register, (ulong)r);
    }

    /// <summary>COMISS/COMISD/UCOMISS/UCOMISD: ZF PF CF from the comparison, OF SF AF cleared (SDM Vol. 2, COMISD).</summary>
    private void SseCompareScalar(ref Instruction ins, bool isDouble, bool quiet)
    {
        SseAvailable();
        int size = isDouble ? 8 : 4;
        ulong a = (ulong)(Xmm(ins.Op0Register) & (((UInt128)1 << (size * 8)) - 1));
        ulong b = (ulong)SseSource(ref ins, 1, size);
        var flags = FloatExceptions.None;
        FloatComparison c = SseFloat.CompareScalar(a, b, isDouble, quiet, S.Mxcsr, ref flags);
        SseCommit(flags);
        S.Rflags = (S.Rflags & ~Fl.Status) | X87Arithmetic.EflagsBits(c);
    }

    /// <summary>
    /// The bytes of the FXSAVE image this CPU reads and writes: the x87/MXCSR header and XMM0-15 in 64-bit mode, XMM0-7
    /// otherwise (SDM Vol. 1, Tables 10-2 and 10-3). Bytes 416-511 (reserved and available to software) are left alone.
    /// </summary>
    private int FxImageBytes => Is64 ? 416 : 288;

    /// <summary>
    /// FXSAVE availability: #NM when CR0.EM or CR0.TS is set; #GP(0) unless the 512-byte area is 16-byte aligned (SDM Vol. 2,
    /// FXSAVE "Protected Mode Exceptions"). CR4.OSFXSR does not gate FXSAVE/FXRSTOR themselves.
    /// </summary>
    private void FxAreaCheck(ref Instruction ins, bool write)
    {
        if ((S.Cr0 & (Cr.EM | Cr.TS)) != 0)
        {
            throw new GuestFault(Vec.NM, 0, false);
        }

        CheckAligned16(ref ins, 512, write);
    }

    private void Fxsave(ref Instruction ins, bool rexW)
    {
        FxAreaCheck(ref ins, write: true);
        Span<byte> image = stackalloc byte[416];
        S.X87.WriteFxsave(image, S.Mxcsr, MxcsrMask, rexW);
        int count = FxImageBytes;
        for (int i = 0; (160 + (16 * i)) < count; i++)
        {
            UInt128 x = S.Xmm[i];
            BinaryPrimitives.WriteUInt64LittleEndian(image[(160 + (16 * i))..], (ulong)x);
            BinaryPrimitives.WriteUInt64LittleEndian(image[(168 + (16 * i))..], (ulong)(x >> 64));
        }

        int seg = SegIndex(ins.MemorySegment);
        ulong ea = EffectiveAddress(ref ins);
        ProbeWrite(seg, ea, 8);
        ProbeWrite(seg, ea + (ulong)count - 8, 8);
        for (int at = 0; at < count; at += 8)
        {
            WriteMem(seg, ea + (ulong)at, 8, BinaryPrimitives.ReadUInt64LittleEndian(image[at..]));
        }
    }

    private void Fxrstor(ref Instruction ins, bool rexW)
    {
        FxAreaCheck(ref ins, write: false);
        Span<byte> image = stackalloc byte[416];
        int count = FxImageBytes;
        int seg = SegIndex(ins.MemorySegment);
        ulong ea = EffectiveAddress(ref ins);
        for (int at = 0; at < count; at += 8)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(image[at..], ReadMem(seg, ea + (ulong)at, 8));
        }

        // SDM Vol. 2, FXRSTOR: #GP(0) if the image sets MXCSR bits outside MXCSR_MASK, before any state changes.
        if ((BinaryPrimitives.ReadUInt32LittleEndian(image[24..]) & ~MxcsrMask) != 0)
        {
            throw Gp0();
        }

        S.Mxcsr = S.X87.ReadFxrstor(image, rexW);
        for (int i = 0; (160 + (16 * i)) < count; i++)
        {
            S.Xmm[i] = new UInt128(BinaryPrimitives.ReadUInt64LittleEndian(image[(168 + (16 * i))..]),
                BinaryPrimitives.ReadUInt64LittleEndian(image[(160 + (16 * i))..]));
        }
    }
}
