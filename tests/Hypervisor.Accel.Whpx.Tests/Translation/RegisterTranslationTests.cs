using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Hypervisor.Accel.Whpx.Interop;
using Hypervisor.Accel.Whpx.Tests.HeaderCheck;
using Hypervisor.Accel.Whpx.Translation;
using Hypervisor.Core.Registers;

namespace Hypervisor.Accel.Whpx.Tests.Translation;

/// <summary>
/// Register translation checked on the bytes WHPX would see: offsets from <see cref="WindowsLayout"/>, segment
/// attributes in the VMX access-rights format (Intel SDM Vol. 3C, Table 25-2), 80-bit values in the x87
/// extended-precision format (SDM Vol. 1, 4.2.2).
/// </summary>
[TestFixture]
public sealed class RegisterTranslationTests
{
    private static ReadOnlySpan<byte> Bytes(WHV_REGISTER_VALUE[] values, int index) =>
        MemoryMarshal.AsBytes(values.AsSpan(index, 1));

    [Test]
    public void GeneralRegisterNamesFollowTheX86EncodingOrder()
    {
        // SDM Vol. 2A, Table 2-2: RAX=0, RCX=1, RDX=2, RBX=3, RSP=4, RBP=5, RSI=6, RDI=7, R8-R15=8-15.
        string[] sdm = ["Rax", "Rcx", "Rdx", "Rbx", "Rsp", "Rbp", "Rsi", "Rdi", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15", "Rip", "Rflags"];

        Assert.That(WhpxRegisters.GeneralNames.Select(n => n.ToString()), Is.EqualTo(sdm.Select(s => "WHvX64Register" + s)));
    }

    [Test]
    public void GeneralRegistersLandInTheirSlots()
    {
        var regs = default(GeneralRegisters);
        for (int i = 0; i < 16; i++)
        {
            regs[i] = 0x1111_1111_1111_1111UL * (ulong)(i + 1);
        }

        regs.Rip = 0xFFF0;
        regs.Rflags = 0x200; // bit 1 is reserved-one and must be forced on
        var values = new WHV_REGISTER_VALUE[WhpxRegisters.GeneralNames.Length];

        WhpxRegisters.WriteGeneral(regs, values);

        Assert.Multiple(() =>
        {
            for (int i = 0; i < 16; i++)
            {
                Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(values, i)), Is.EqualTo(0x1111_1111_1111_1111UL * (ulong)(i + 1)));
            }

            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(values, 16)), Is.EqualTo(0xFFF0));
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(values, 17)), Is.EqualTo(0x202));
            Assert.That(WhpxRegisters.ReadGeneral(values).Rbx, Is.EqualTo(0x4444_4444_4444_4444UL));
        });
    }

    [Test]
    public void FlatLongModeCodeSegmentUsesVmxAccessRights()
    {
        // 64-bit ring-0 code: type 0xB (execute/read, accessed), S=1, DPL=0, P=1, L=1, D=0, G=1.
        var cs = new SegmentRegister(0x08, 0, 0xFFFF_FFFF, 0xB, Present: true, Dpl: 0, DefaultSize: false, IsCodeOrData: true,
            Long: true, Granularity: true, Available: false, Unusable: false);
        var values = new WHV_REGISTER_VALUE[1];

        values[0].Segment = WhpxRegisters.ToWhv(cs);
        byte[] b = Bytes(values, 0).ToArray();

        Assert.Multiple(() =>
        {
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan()[WindowsLayout.SegmentBase..]), Is.Zero);
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan()[WindowsLayout.SegmentLimit..]), Is.EqualTo(0xFFFF_FFFF));
            Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan()[WindowsLayout.SegmentSelector..]), Is.EqualTo(0x08));
            // bits 0-3 type, 4 S, 5-6 DPL, 7 P, 12 AVL, 13 L, 14 D/B, 15 G
            Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan()[WindowsLayout.SegmentAttributes..]), Is.EqualTo(0xB | 1 << 4 | 1 << 7 | 1 << 13 | 1 << 15));
        });
    }

    [Test]
    public void SegmentAttributesDecodeFromVmxAccessRights()
    {
        var values = new WHV_REGISTER_VALUE[1];
        Span<byte> b = MemoryMarshal.AsBytes(values.AsSpan());
        BinaryPrimitives.WriteUInt64LittleEndian(b[WindowsLayout.SegmentBase..], 0x1000);
        BinaryPrimitives.WriteUInt32LittleEndian(b[WindowsLayout.SegmentLimit..], 0xFFFFF);
        BinaryPrimitives.WriteUInt16LittleEndian(b[WindowsLayout.SegmentSelector..], 0x23);
        BinaryPrimitives.WriteUInt16LittleEndian(b[WindowsLayout.SegmentAttributes..], 0x3 | 1 << 4 | 3 << 5 | 1 << 7 | 1 << 12 | 1 << 14);

        SegmentRegister s = WhpxRegisters.FromWhv(values[0].Segment);

        Assert.That(s, Is.EqualTo(new SegmentRegister(0x23, 0x1000, 0xFFFFF, 3, Present: true, Dpl: 3, DefaultSize: true,
            IsCodeOrData: true, Long: false, Granularity: false, Available: true, Unusable: false)));
    }

    [Test]
    public void UnusableSegmentIsPresentedAsNotPresent()
    {
        var ds = new SegmentRegister(0, 0, 0, 3, Present: true, Dpl: 0, DefaultSize: true, IsCodeOrData: true,
            Long: false, Granularity: false, Available: false, Unusable: true);

        WHV_X64_SEGMENT_REGISTER whv = WhpxRegisters.ToWhv(ds);

        Assert.Multiple(() =>
        {
            Assert.That(whv.Attributes & (1 << 7), Is.Zero);
            Assert.That(WhpxRegisters.FromWhv(whv).Unusable, Is.True);
        });
    }

    [Test]
    public void ResetStateSystemRegistersLandInTheirSlots()
    {
        SystemRegisters reset = ResetState.System();
        var values = new WHV_REGISTER_VALUE[WhpxRegisters.SystemNames.Length];

        WhpxRegisters.WriteSystem(reset, values);

        int cs = Array.IndexOf(WhpxRegisters.SystemNames, WHV_REGISTER_NAME.WHvX64RegisterCs);
        int gdtr = Array.IndexOf(WhpxRegisters.SystemNames, WHV_REGISTER_NAME.WHvX64RegisterGdtr);
        int cr0 = Array.IndexOf(WhpxRegisters.SystemNames, WHV_REGISTER_NAME.WHvX64RegisterCr0);
        Assert.Multiple(() =>
        {
            Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(Bytes(values, cs)[WindowsLayout.SegmentSelector..]), Is.EqualTo(0xF000));
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(values, cs)[WindowsLayout.SegmentBase..]), Is.EqualTo(0xFFFF_0000));
            Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(Bytes(values, gdtr)[WindowsLayout.TableLimit..]), Is.EqualTo(0xFFFF));
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(values, cr0)), Is.EqualTo(0x6000_0010));
            Assert.That(WhpxRegisters.SystemNames[^1], Is.EqualTo(WHV_REGISTER_NAME.WHvX64RegisterApicBase), "the vCPU skips the last name (APIC base) when writing");
            Assert.That(WhpxRegisters.ReadSystem(values), Is.EqualTo(reset));
        });
    }

    [Test]
    public void X87ValuesUseTheExtendedPrecisionLayout()
    {
        var fpu = ResetState.Fpu();
        fpu.St[0] = new Float80(0x8000_0000_0000_0000, 0x3FFF);  // +1.0
        fpu.St[7] = new Float80(0xC000_0000_0000_0000, 0xC000);  // -3.0 = -1.5 * 2^1
        fpu.Xmm[15] = new UInt128(0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210);
        fpu.Fsw = 0x3800;
        fpu.Ftw = 0x81;
        fpu.LastIp = 0x7C10;
        fpu.LastDp = 0x9000;
        var values = new WHV_REGISTER_VALUE[WhpxRegisters.FpuNames.Length];

        WhpxRegisters.WriteFpu(fpu, values);

        int fcs = Array.IndexOf(WhpxRegisters.FpuNames, WHV_REGISTER_NAME.WHvX64RegisterFpControlStatus);
        int xcs = Array.IndexOf(WhpxRegisters.FpuNames, WHV_REGISTER_NAME.WHvX64RegisterXmmControlStatus);
        int xmm15 = Array.IndexOf(WhpxRegisters.FpuNames, WHV_REGISTER_NAME.WHvX64RegisterXmm15);
        Assert.Multiple(() =>
        {
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(values, 0)[WindowsLayout.FpMantissa..]), Is.EqualTo(0x8000_0000_0000_0000));
            Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(Bytes(values, 0)[WindowsLayout.FpExponentSign..]), Is.EqualTo(0x3FFF));
            Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(Bytes(values, 7)[WindowsLayout.FpExponentSign..]), Is.EqualTo(0xC000));
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(values, xmm15)), Is.EqualTo(0xFEDC_BA98_7654_3210));
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(values, xmm15)[8..]), Is.EqualTo(0x0123_4567_89AB_CDEF));
            Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(Bytes(values, fcs)[WindowsLayout.FpControl..]), Is.EqualTo(0x0040));
            Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(Bytes(values, fcs)[WindowsLayout.FpStatus..]), Is.EqualTo(0x3800));
            Assert.That(Bytes(values, fcs)[WindowsLayout.FpTag], Is.EqualTo(0x81));
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(values, fcs)[WindowsLayout.LastFpRip..]), Is.EqualTo(0x7C10));
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(values, xcs)[WindowsLayout.LastFpRdp..]), Is.EqualTo(0x9000));
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(Bytes(values, xcs)[WindowsLayout.Mxcsr..]), Is.EqualTo(0x1F80));
            Assert.That(WhpxRegisters.ReadFpu(values).St[7], Is.EqualTo(fpu.St[7]));
        });
    }

    [TestCase(0x0000_0010u, WHV_REGISTER_NAME.WHvX64RegisterTsc)]
    [TestCase(0x0000_001Bu, WHV_REGISTER_NAME.WHvX64RegisterApicBase)]
    [TestCase(0x0000_0174u, WHV_REGISTER_NAME.WHvX64RegisterSysenterCs)]
    [TestCase(0x0000_0175u, WHV_REGISTER_NAME.WHvX64RegisterSysenterEsp)]
    [TestCase(0x0000_0176u, WHV_REGISTER_NAME.WHvX64RegisterSysenterEip)]
    [TestCase(0x0000_0277u, WHV_REGISTER_NAME.WHvX64RegisterPat)]
    [TestCase(0xC000_0080u, WHV_REGISTER_NAME.WHvX64RegisterEfer)]
    [TestCase(0xC000_0081u, WHV_REGISTER_NAME.WHvX64RegisterStar)]
    [TestCase(0xC000_0082u, WHV_REGISTER_NAME.WHvX64RegisterLstar)]
    [TestCase(0xC000_0083u, WHV_REGISTER_NAME.WHvX64RegisterCstar)]
    [TestCase(0xC000_0084u, WHV_REGISTER_NAME.WHvX64RegisterSfmask)]
    [TestCase(0xC000_0102u, WHV_REGISTER_NAME.WHvX64RegisterKernelGsBase)]
    [TestCase(0xC000_0103u, WHV_REGISTER_NAME.WHvX64RegisterTscAux)]
    public void MsrIndexesMapToWhpxRegisters(uint msr, object expected)
    {
        // Indexes from Intel SDM Vol. 4, Table 2-2 (IA32_TIME_STAMP_COUNTER, IA32_APIC_BASE, IA32_SYSENTER_*, IA32_PAT, IA32_EFER, ...).
        Assert.Multiple(() =>
        {
            Assert.That(WhpxRegisters.TryMapMsr(msr, out WHV_REGISTER_NAME name, out WhpxRegisters.MsrKind kind), Is.True);
            Assert.That(name, Is.EqualTo((WHV_REGISTER_NAME)expected));
            Assert.That(kind, Is.EqualTo(WhpxRegisters.MsrKind.Register));
        });
    }

    [Test]
    public void FsAndGsBaseMsrsAreSegmentBasesAndUnknownMsrsAreRefused()
    {
        Assert.Multiple(() =>
        {
            Assert.That(WhpxRegisters.TryMapMsr(0xC000_0100, out WHV_REGISTER_NAME fs, out WhpxRegisters.MsrKind fsKind), Is.True);
            Assert.That((fs, fsKind), Is.EqualTo((WHV_REGISTER_NAME.WHvX64RegisterFs, WhpxRegisters.MsrKind.SegmentBase)));
            Assert.That(WhpxRegisters.TryMapMsr(0xC000_0101, out WHV_REGISTER_NAME gs, out _), Is.True);
            Assert.That(gs, Is.EqualTo(WHV_REGISTER_NAME.WHvX64RegisterGs));
            Assert.That(WhpxRegisters.TryMapMsr(0x0000_0C80, out _, out _), Is.False);
        });
    }
}
