using Hypervisor.Accel.Whpx.Interop;
using Hypervisor.Core.Registers;
using static Hypervisor.Accel.Whpx.Interop.WHV_REGISTER_NAME;

namespace Hypervisor.Accel.Whpx.Translation;

/// <summary>
/// Translates the core's register files to and from arrays of <c>WHV_REGISTER_VALUE</c> in the order of the name
/// lists below. Pure functions over spans, so they are tested on byte buffers laid out like the Windows structures.
/// </summary>
internal static class WhpxRegisters
{
    /// <summary>The general registers in the order of <see cref="GeneralRegisters"/>' indexer, then RIP and RFLAGS.</summary>
    public static readonly WHV_REGISTER_NAME[] GeneralNames =
    [
        WHvX64RegisterRax, WHvX64RegisterRcx, WHvX64RegisterRdx, WHvX64RegisterRbx,
        WHvX64RegisterRsp, WHvX64RegisterRbp, WHvX64RegisterRsi, WHvX64RegisterRdi,
        WHvX64RegisterR8, WHvX64RegisterR9, WHvX64RegisterR10, WHvX64RegisterR11,
        WHvX64RegisterR12, WHvX64RegisterR13, WHvX64RegisterR14, WHvX64RegisterR15,
        WHvX64RegisterRip, WHvX64RegisterRflags,
    ];

    public static readonly WHV_REGISTER_NAME[] SystemNames =
    [
        WHvX64RegisterCs, WHvX64RegisterDs, WHvX64RegisterEs, WHvX64RegisterFs, WHvX64RegisterGs, WHvX64RegisterSs,
        WHvX64RegisterTr, WHvX64RegisterLdtr, WHvX64RegisterGdtr, WHvX64RegisterIdtr,
        WHvX64RegisterCr0, WHvX64RegisterCr2, WHvX64RegisterCr3, WHvX64RegisterCr4, WHvX64RegisterCr8,
        WHvX64RegisterEfer, WHvX64RegisterApicBase,
    ];

    public static readonly WHV_REGISTER_NAME[] FpuNames =
    [
        WHvX64RegisterFpMmx0, WHvX64RegisterFpMmx1, WHvX64RegisterFpMmx2, WHvX64RegisterFpMmx3,
        WHvX64RegisterFpMmx4, WHvX64RegisterFpMmx5, WHvX64RegisterFpMmx6, WHvX64RegisterFpMmx7,
        WHvX64RegisterXmm0, WHvX64RegisterXmm1, WHvX64RegisterXmm2, WHvX64RegisterXmm3,
        WHvX64RegisterXmm4, WHvX64RegisterXmm5, WHvX64RegisterXmm6, WHvX64RegisterXmm7,
        WHvX64RegisterXmm8, WHvX64RegisterXmm9, WHvX64RegisterXmm10, WHvX64RegisterXmm11,
        WHvX64RegisterXmm12, WHvX64RegisterXmm13, WHvX64RegisterXmm14, WHvX64RegisterXmm15,
        WHvX64RegisterFpControlStatus, WHvX64RegisterXmmControlStatus,
    ];

    /// <summary>The largest name list; register buffers are sized for it.</summary>
    public static int MaxCount => Math.Max(GeneralNames.Length, Math.Max(SystemNames.Length, FpuNames.Length));

    /// <summary>The MXCSR bits a guest may set (MXCSR_MASK as FXSAVE reports it without DAZ: bits 0-15).</summary>
    private const uint MxcsrMask = 0x0000_FFFF;

    public static GeneralRegisters ReadGeneral(ReadOnlySpan<WHV_REGISTER_VALUE> values)
    {
        var r = default(GeneralRegisters);
        for (int i = 0; i < 16; i++)
        {
            r[i] = values[i].Reg64;
        }

        r.Rip = values[16].Reg64;
        r.Rflags = values[17].Reg64;
        return r;
    }

    public static void WriteGeneral(in GeneralRegisters r, Span<WHV_REGISTER_VALUE> values)
    {
        values[..GeneralNames.Length].Clear();
        for (int i = 0; i < 16; i++)
        {
            values[i].Reg64 = r[i];
        }

        values[16].Reg64 = r.Rip;
        values[17].Reg64 = r.Rflags | 0x2; // bit 1 of RFLAGS is reserved as one (SDM Vol. 1, 3.4.3)
    }

    public static SystemRegisters ReadSystem(ReadOnlySpan<WHV_REGISTER_VALUE> values) => new()
    {
        Cs = FromWhv(values[0].Segment),
        Ds = FromWhv(values[1].Segment),
        Es = FromWhv(values[2].Segment),
        Fs = FromWhv(values[3].Segment),
        Gs = FromWhv(values[4].Segment),
        Ss = FromWhv(values[5].Segment),
        Tr = FromWhv(values[6].Segment),
        Ldt = FromWhv(values[7].Segment),
        Gdt = new DescriptorTableRegister(values[8].Table.Base, values[8].Table.Limit),
        Idt = new DescriptorTableRegister(values[9].Table.Base, values[9].Table.Limit),
        Cr0 = values[10].Reg64,
        Cr2 = values[11].Reg64,
        Cr3 = values[12].Reg64,
        Cr4 = values[13].Reg64,
        Cr8 = values[14].Reg64,
        Efer = values[15].Reg64,
        ApicBase = values[16].Reg64,
    };

    public static void WriteSystem(in SystemRegisters r, Span<WHV_REGISTER_VALUE> values)
    {
        values[..SystemNames.Length].Clear();
        values[0].Segment = ToWhv(r.Cs);
        values[1].Segment = ToWhv(r.Ds);
        values[2].Segment = ToWhv(r.Es);
        values[3].Segment = ToWhv(r.Fs);
        values[4].Segment = ToWhv(r.Gs);
        values[5].Segment = ToWhv(r.Ss);
        values[6].Segment = ToWhv(r.Tr);
        values[7].Segment = ToWhv(r.Ldt);
        values[8].Table.Base = r.Gdt.Base;
        values[8].Table.Limit = r.Gdt.Limit;
        values[9].Table.Base = r.Idt.Base;
        values[9].Table.Limit = r.Idt.Limit;
        values[10].Reg64 = r.Cr0;
        values[11].Reg64 = r.Cr2;
        values[12].Reg64 = r.Cr3;
        values[13].Reg64 = r.Cr4;
        values[14].Reg64 = r.Cr8;
        values[15].Reg64 = r.Efer;
        values[16].Reg64 = r.ApicBase;
    }

    public static FpuRegisters ReadFpu(ReadOnlySpan<WHV_REGISTER_VALUE> values)
    {
        var f = default(FpuRegisters);
        for (int i = 0; i < 8; i++)
        {
            f.St[i] = FromWhv(values[i].Fp);
        }

        for (int i = 0; i < 16; i++)
        {
            f.Xmm[i] = new UInt128(values[8 + i].Reg128.High64, values[8 + i].Reg128.Low64);
        }

        ref readonly WHV_X64_FP_CONTROL_STATUS_REGISTER fcs = ref values[24].FpControlStatus;
        f.Fcw = fcs.FpControl;
        f.Fsw = fcs.FpStatus;
        f.Ftw = fcs.FpTag;
        f.LastOpcode = fcs.LastFpOp;
        f.LastIp = fcs.LastFpRip;
        ref readonly WHV_X64_XMM_CONTROL_STATUS_REGISTER xcs = ref values[25].XmmControlStatus;
        f.LastDp = xcs.LastFpRdp;
        f.Mxcsr = xcs.XmmStatusControl;
        return f;
    }

    public static void WriteFpu(in FpuRegisters f, Span<WHV_REGISTER_VALUE> values)
    {
        values[..FpuNames.Length].Clear();
        for (int i = 0; i < 8; i++)
        {
            values[i].Fp = ToWhv(f.St[i]);
        }

        for (int i = 0; i < 16; i++)
        {
            UInt128 x = f.Xmm[i];
            values[8 + i].Reg128.Low64 = (ulong)x;
            values[8 + i].Reg128.High64 = (ulong)(x >> 64);
        }

        ref WHV_X64_FP_CONTROL_STATUS_REGISTER fcs = ref values[24].FpControlStatus;
        fcs.FpControl = f.Fcw;
        fcs.FpStatus = f.Fsw;
        fcs.FpTag = f.Ftw;
        fcs.LastFpOp = f.LastOpcode;
        fcs.LastFpRip = f.LastIp;
        ref WHV_X64_XMM_CONTROL_STATUS_REGISTER xcs = ref values[25].XmmControlStatus;
        xcs.LastFpRdp = f.LastDp;
        xcs.XmmStatusControl = f.Mxcsr;
        xcs.XmmStatusControlMask = MxcsrMask;
    }

    /// <summary>
    /// WHPX's segment attributes are the VMX access-rights bits 0-15 (SDM Vol. 3C, 25.4.1, Table 25-2) without the
    /// "unusable" bit 16; an unusable segment is presented as not present.
    /// </summary>
    public static WHV_X64_SEGMENT_REGISTER ToWhv(in SegmentRegister s)
    {
        ulong attributes = 0;
        attributes = WhvBitFields.SegmentType.Set(attributes, s.Type);
        attributes = WhvBitFields.SegmentNonSystem.Set(attributes, s.IsCodeOrData ? 1UL : 0);
        attributes = WhvBitFields.SegmentDpl.Set(attributes, s.Dpl);
        attributes = WhvBitFields.SegmentPresent.Set(attributes, s.Present && !s.Unusable ? 1UL : 0);
        attributes = WhvBitFields.SegmentAvailable.Set(attributes, s.Available ? 1UL : 0);
        attributes = WhvBitFields.SegmentLong.Set(attributes, s.Long ? 1UL : 0);
        attributes = WhvBitFields.SegmentDefault.Set(attributes, s.DefaultSize ? 1UL : 0);
        attributes = WhvBitFields.SegmentGranularity.Set(attributes, s.Granularity ? 1UL : 0);
        return new WHV_X64_SEGMENT_REGISTER { Base = s.Base, Limit = s.Limit, Selector = s.Selector, Attributes = (ushort)attributes };
    }

    public static SegmentRegister FromWhv(in WHV_X64_SEGMENT_REGISTER s)
    {
        ulong a = s.Attributes;
        bool present = WhvBitFields.SegmentPresent.IsSet(a);
        return new SegmentRegister(
            s.Selector,
            s.Base,
            s.Limit,
            (byte)WhvBitFields.SegmentType.Get(a),
            present,
            (byte)WhvBitFields.SegmentDpl.Get(a),
            WhvBitFields.SegmentDefault.IsSet(a),
            WhvBitFields.SegmentNonSystem.IsSet(a),
            WhvBitFields.SegmentLong.IsSet(a),
            WhvBitFields.SegmentGranularity.IsSet(a),
            WhvBitFields.SegmentAvailable.IsSet(a),
            Unusable: !present);
    }

    public static Float80 FromWhv(in WHV_X64_FP_REGISTER r)
    {
        ulong high = r.ExponentAndSign;
        return new Float80(r.Mantissa, (ushort)(WhvBitFields.FpBiasedExponent.Get(high) | (WhvBitFields.FpSign.Get(high) << 15)));
    }

    public static WHV_X64_FP_REGISTER ToWhv(Float80 value)
    {
        ulong high = WhvBitFields.FpBiasedExponent.Set(0, value.SignExponent & 0x7FFFu);
        high = WhvBitFields.FpSign.Set(high, (ulong)(value.SignExponent >> 15));
        return new WHV_X64_FP_REGISTER { Mantissa = value.Significand, ExponentAndSign = high };
    }

    /// <summary>How an MSR index maps onto a WHPX register.</summary>
    internal enum MsrKind
    {
        /// <summary>A 64-bit register holds the MSR's value.</summary>
        Register,

        /// <summary>The MSR is the base of a segment register (IA32_FS_BASE, IA32_GS_BASE).</summary>
        SegmentBase,
    }

    /// <summary>The MSRs this backend exposes through <c>TryGetMsr</c>/<c>TrySetMsr</c> (indexes: SDM Vol. 4, Table 2-2).</summary>
    public static bool TryMapMsr(uint index, out WHV_REGISTER_NAME name, out MsrKind kind)
    {
        kind = MsrKind.Register;
        name = index switch
        {
            0x0000_0010 => WHvX64RegisterTsc,
            0x0000_001B => WHvX64RegisterApicBase,
            0x0000_0174 => WHvX64RegisterSysenterCs,
            0x0000_0175 => WHvX64RegisterSysenterEsp,
            0x0000_0176 => WHvX64RegisterSysenterEip,
            0x0000_0277 => WHvX64RegisterPat,
            0xC000_0080 => WHvX64RegisterEfer,
            0xC000_0081 => WHvX64RegisterStar,
            0xC000_0082 => WHvX64RegisterLstar,
            0xC000_0083 => WHvX64RegisterCstar,
            0xC000_0084 => WHvX64RegisterSfmask,
            0xC000_0100 => WHvX64RegisterFs,
            0xC000_0101 => WHvX64RegisterGs,
            0xC000_0102 => WHvX64RegisterKernelGsBase,
            0xC000_0103 => WHvX64RegisterTscAux,
            _ => (WHV_REGISTER_NAME)uint.MaxValue,
        };
        if (index is 0xC000_0100 or 0xC000_0101)
        {
            kind = MsrKind.SegmentBase;
        }

        return name != (WHV_REGISTER_NAME)uint.MaxValue;
    }
}
