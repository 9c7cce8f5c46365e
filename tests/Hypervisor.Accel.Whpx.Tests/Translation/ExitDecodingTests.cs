using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Hypervisor.Accel.Whpx.Interop;
using Hypervisor.Accel.Whpx.Tests.HeaderCheck;
using Hypervisor.Accel.Whpx.Translation;
using static Hypervisor.Accel.Whpx.Interop.WHV_RUN_VP_EXIT_REASON;

namespace Hypervisor.Accel.Whpx.Tests.Translation;

/// <summary>
/// Exit decoding on byte buffers laid out as <c>WHV_RUN_VP_EXIT_CONTEXT</c> with the header-proven offsets of
/// <see cref="WindowsLayout"/>; bit-field values are composed from the header's bit-field declarations.
/// </summary>
[TestFixture]
public sealed class ExitDecodingTests
{
    private static WhpxExit Decode(WHV_RUN_VP_EXIT_REASON reason, Action<byte[]>? fill = null)
    {
        var buffer = new byte[WindowsLayout.ExitContextSize];
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(WindowsLayout.ExitReason), (uint)reason);
        fill?.Invoke(buffer);
        return WhpxExit.Decode(MemoryMarshal.Read<WHV_RUN_VP_EXIT_CONTEXT>(buffer));
    }

    private static void U16(byte[] b, int offset, ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(offset), v);

    private static void U32(byte[] b, int offset, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(offset), v);

    private static void U64(byte[] b, int offset, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(offset), v);

    [Test]
    public void OutByteToTheSerialPortDecodesPortSizeDirectionAndValue()
    {
        WhpxExit exit = Decode(WHvRunVpExitReasonX64IoPortAccess, b =>
        {
            U64(b, WindowsLayout.ExitRip, 0xFFF5);
            U64(b, WindowsLayout.ExitRflags, 0x202);
            b[WindowsLayout.ExitInstructionLengthByte] = 0x01 | (0x3 << 4); // InstructionLength:4 = 1, Cr8:4 = 3
            U32(b, WindowsLayout.IoAccessInfo, 1 | (1 << 1));              // IsWrite:1, AccessSize:3 = 1
            U16(b, WindowsLayout.IoPortNumber, 0x3F8);
            U64(b, WindowsLayout.IoRax, 0x1234_5641);
        });

        Assert.Multiple(() =>
        {
            Assert.That(exit.Action, Is.EqualTo(WhpxExitAction.EmulateIo));
            Assert.That(exit.Port, Is.EqualTo(0x3F8));
            Assert.That(exit.AccessSize, Is.EqualTo(1));
            Assert.That(exit.IsWrite, Is.True);
            Assert.That(exit.IsString, Is.False);
            Assert.That(exit.IsRep, Is.False);
            Assert.That(exit.Rax & 0xFF, Is.EqualTo(0x41));
            Assert.That(exit.Rip, Is.EqualTo(0xFFF5));
            Assert.That(exit.InstructionLength, Is.EqualTo(1));
            Assert.That(exit.InterruptsEnabled, Is.True);
        });
    }

    [Test]
    public void RepInswDecodesStringRepAndCount()
    {
        WhpxExit exit = Decode(WHvRunVpExitReasonX64IoPortAccess, b =>
        {
            U32(b, WindowsLayout.IoAccessInfo, (2 << 1) | (1 << 4) | (1 << 5)); // IN, AccessSize 2, StringOp, RepPrefix
            U16(b, WindowsLayout.IoPortNumber, 0x1F0);
            U64(b, WindowsLayout.IoRcx, 0x100);
        });

        Assert.Multiple(() =>
        {
            Assert.That(exit.Port, Is.EqualTo(0x1F0));
            Assert.That(exit.AccessSize, Is.EqualTo(2));
            Assert.That(exit.IsWrite, Is.False);
            Assert.That(exit.IsString, Is.True);
            Assert.That(exit.IsRep, Is.True);
            Assert.That(exit.Rcx, Is.EqualTo(0x100));
        });
    }

    [Test]
    public void MemoryAccessDecodesGpaTypeAndUnmapped()
    {
        WhpxExit exit = Decode(WHvRunVpExitReasonMemoryAccess, b =>
        {
            U32(b, WindowsLayout.MemAccessInfo, 1 | (1 << 2)); // AccessType:2 = write, GpaUnmapped:1
            U64(b, WindowsLayout.MemGpa, 0xFEE0_0030);
            U64(b, WindowsLayout.MemGva, 0xFFFF_8000_FEE0_0030);
        });

        Assert.Multiple(() =>
        {
            Assert.That(exit.Action, Is.EqualTo(WhpxExitAction.EmulateMmio));
            Assert.That(exit.Gpa, Is.EqualTo(0xFEE0_0030));
            Assert.That(exit.MemoryAccessType, Is.EqualTo(WHV_MEMORY_ACCESS_TYPE.WHvMemoryAccessWrite));
            Assert.That(exit.IsWrite, Is.True);
            Assert.That(exit.GpaUnmapped, Is.True);
        });
    }

    [Test]
    public void MsrWriteDecodesIndexAndEdxEax()
    {
        WhpxExit exit = Decode(WHvRunVpExitReasonX64MsrAccess, b =>
        {
            U32(b, WindowsLayout.MsrAccessInfo, 1);
            U32(b, WindowsLayout.MsrNumber, 0xC000_0080);
            U64(b, WindowsLayout.MsrRax, 0x501);
            U64(b, WindowsLayout.MsrRdx, 0x7);
        });

        Assert.Multiple(() =>
        {
            Assert.That(exit.Action, Is.EqualTo(WhpxExitAction.Msr));
            Assert.That(exit.MsrNumber, Is.EqualTo(0xC000_0080));
            Assert.That(exit.IsWrite, Is.True);
            Assert.That(exit.Rax, Is.EqualTo(0x501));
            Assert.That(exit.Rdx, Is.EqualTo(0x7));
        });
    }

    [Test]
    public void CpuidDecodesLeafAndSubleaf()
    {
        WhpxExit exit = Decode(WHvRunVpExitReasonX64Cpuid, b =>
        {
            U64(b, WindowsLayout.CpuidRax, 7);
            U64(b, WindowsLayout.CpuidRcx, 1);
            U64(b, WindowsLayout.CpuidDefaultRax, 0xDEAD);
        });

        Assert.Multiple(() =>
        {
            Assert.That(exit.Action, Is.EqualTo(WhpxExitAction.Cpuid));
            Assert.That(exit.Rax, Is.EqualTo(7));
            Assert.That(exit.Rcx, Is.EqualTo(1));
        });
    }

    [Test]
    public void ExecutionStateDecodesCplAndInterruptShadow()
    {
        WhpxExit exit = Decode(WHvRunVpExitReasonX64Halt, b =>
        {
            U16(b, WindowsLayout.ExecutionState, 3 | (1 << 12)); // Cpl:2 = 3, InterruptShadow at bit 12
            U64(b, WindowsLayout.ExitRflags, 0x2);
        });

        Assert.Multiple(() =>
        {
            Assert.That(exit.Action, Is.EqualTo(WhpxExitAction.Halt));
            Assert.That(exit.Cpl, Is.EqualTo(3));
            Assert.That(exit.InterruptShadow, Is.True);
            Assert.That(exit.InterruptsEnabled, Is.False);
        });
    }

    [Test]
    public void ExceptionExitDecodesVectorAndErrorCode()
    {
        WhpxExit exit = Decode(WHvRunVpExitReasonException, b =>
        {
            U32(b, WindowsLayout.ExceptionInfo, 1); // ErrorCodeValid
            b[WindowsLayout.ExceptionType] = 13;
            U32(b, WindowsLayout.ExceptionErrorCode, 0x18);
        });

        Assert.Multiple(() =>
        {
            Assert.That(exit.Action, Is.EqualTo(WhpxExitAction.GuestError));
            Assert.That(exit.ExceptionType, Is.EqualTo(13));
            Assert.That(exit.ErrorCodeValid, Is.True);
            Assert.That(exit.ErrorCode, Is.EqualTo(0x18));
            Assert.That(exit.Describe(), Does.Contain("exception 13").And.Contain("0x18"));
        });
    }

    [Test]
    public void UnsupportedFeatureNamesTheFeature()
    {
        WhpxExit exit = Decode(WHvRunVpExitReasonUnsupportedFeature, b =>
        {
            U32(b, WindowsLayout.FeatureCode, 2);
            U64(b, WindowsLayout.FeatureParameter, 0x28);
        });

        Assert.Multiple(() =>
        {
            Assert.That(exit.UnsupportedFeature, Is.EqualTo(WHV_X64_UNSUPPORTED_FEATURE_CODE.WHvUnsupportedFeatureTaskSwitchTss));
            Assert.That(exit.Describe(), Does.Contain("WHvUnsupportedFeatureTaskSwitchTss").And.Contain("0x28"));
        });
    }

    /// <summary>Every exit reason in winhvplatformdefs.h has a defined action (what the WHPX documentation says it means).</summary>
    [TestCase(WHvRunVpExitReasonNone, WhpxExitAction.Resume)]
    [TestCase(WHvRunVpExitReasonMemoryAccess, WhpxExitAction.EmulateMmio)]
    [TestCase(WHvRunVpExitReasonX64IoPortAccess, WhpxExitAction.EmulateIo)]
    [TestCase(WHvRunVpExitReasonUnrecoverableException, WhpxExitAction.Shutdown)]
    [TestCase(WHvRunVpExitReasonInvalidVpRegisterValue, WhpxExitAction.GuestError)]
    [TestCase(WHvRunVpExitReasonUnsupportedFeature, WhpxExitAction.GuestError)]
    [TestCase(WHvRunVpExitReasonX64InterruptWindow, WhpxExitAction.InterruptWindow)]
    [TestCase(WHvRunVpExitReasonX64Halt, WhpxExitAction.Halt)]
    [TestCase(WHvRunVpExitReasonX64ApicEoi, WhpxExitAction.GuestError)]
    [TestCase(WHvRunVpExitReasonSynicSintDeliverable, WhpxExitAction.GuestError)]
    [TestCase(WHvRunVpExitReasonX64MsrAccess, WhpxExitAction.Msr)]
    [TestCase(WHvRunVpExitReasonX64Cpuid, WhpxExitAction.Cpuid)]
    [TestCase(WHvRunVpExitReasonException, WhpxExitAction.GuestError)]
    [TestCase(WHvRunVpExitReasonX64Rdtsc, WhpxExitAction.GuestError)]
    [TestCase(WHvRunVpExitReasonX64ApicSmiTrap, WhpxExitAction.GuestError)]
    [TestCase(WHvRunVpExitReasonHypercall, WhpxExitAction.GuestError)]
    [TestCase(WHvRunVpExitReasonX64ApicInitSipiTrap, WhpxExitAction.GuestError)]
    [TestCase(WHvRunVpExitReasonX64ApicWriteTrap, WhpxExitAction.GuestError)]
    [TestCase(WHvRunVpExitReasonCanceled, WhpxExitAction.Canceled)]
    public void EveryExitReasonHasAnAction(object reason, object expected) =>
        Assert.That(Decode((WHV_RUN_VP_EXIT_REASON)reason).Action, Is.EqualTo((WhpxExitAction)expected));

    [Test]
    public void TheReasonTableCoversEveryDeclaredReason()
    {
        var tested = typeof(ExitDecodingTests).GetMethod(nameof(EveryExitReasonHasAnAction))!
            .GetCustomAttributes(typeof(TestCaseAttribute), false).Cast<TestCaseAttribute>()
            .Select(t => (WHV_RUN_VP_EXIT_REASON)t.Arguments[0]!);

        Assert.That(tested, Is.EquivalentTo(Enum.GetValues<WHV_RUN_VP_EXIT_REASON>()));
    }

    [Test]
    public void FatalExitsSayWhatHappened()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Decode(WHvRunVpExitReasonUnrecoverableException, b => U64(b, WindowsLayout.ExitRip, 0x7C00)).Describe(),
                Does.Contain("triple fault").And.Contain("0x7C00"));
            Assert.That(Decode(WHvRunVpExitReasonInvalidVpRegisterValue).Describe(), Does.Contain("invalid VP register value"));
            Assert.That(Decode(WHvRunVpExitReasonX64ApicEoi).Describe(), Does.Contain("unexpected WHPX exit"));
        });
    }
}
