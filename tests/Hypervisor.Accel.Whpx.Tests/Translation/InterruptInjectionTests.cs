using Hypervisor.Accel.Whpx.Translation;

namespace Hypervisor.Accel.Whpx.Tests.Translation;

/// <summary>
/// Interrupt injection values, composed from the header's <c>WHV_X64_PENDING_INTERRUPTION_REGISTER</c> declaration
/// (InterruptionPending:1, InterruptionType:3, DeliverErrorCode:1, InstructionLength:4, NestedEvent:1, Reserved:6,
/// InterruptionVector:16, ErrorCode:32) and acceptance rules from the SDM.
/// </summary>
[TestFixture]
public sealed class InterruptInjectionTests
{
    [Test]
    public void ExternalInterruptVector0x20()
    {
        // pending (bit 0), type 0 = WHvX64PendingInterrupt, vector in bits 16-31
        Assert.That(WhpxInterrupts.EncodeExternalInterrupt(0x20), Is.EqualTo(0x0020_0001UL));
    }

    [Test]
    public void GeneralProtectionFaultWithErrorCodeZero()
    {
        // pending, type 3 = WHvX64PendingException (bits 1-3 = 0b011), deliver error code (bit 4), vector 13
        Assert.That(WhpxInterrupts.EncodeException(13, 0), Is.EqualTo(0x000D_0017UL));
    }

    [Test]
    public void PageFaultErrorCodeGoesToTheHighDword()
    {
        Assert.That(WhpxInterrupts.EncodeException(14, 0x6), Is.EqualTo(0x0000_0006_000E_0017UL));
    }

    [Test]
    public void InterruptWindowRequestIsBitOne()
    {
        // WHV_X64_DELIVERABILITY_NOTIFICATIONS_REGISTER: NmiNotification:1, InterruptNotification:1
        Assert.Multiple(() =>
        {
            Assert.That(WhpxInterrupts.EncodeInterruptWindowRequest(true), Is.EqualTo(0x2UL));
            Assert.That(WhpxInterrupts.EncodeInterruptWindowRequest(false), Is.Zero);
        });
    }

    private const ulong IfSet = 0x202;
    private const ulong IfClear = 0x002;

    [TestCase(false, IfSet, 0UL, 0UL, InjectionDecision.None)]
    [TestCase(true, IfSet, 0UL, 0UL, InjectionDecision.Inject)]
    [TestCase(true, IfClear, 0UL, 0UL, InjectionDecision.RequestWindow)]      // CLI: wait for STI
    [TestCase(true, IfSet, 1UL, 0UL, InjectionDecision.RequestWindow)]        // STI/MOV SS shadow
    [TestCase(true, IfSet, 2UL, 0UL, InjectionDecision.Inject)]               // NMI masked does not block INTR
    [TestCase(true, IfSet, 0UL, 0x0020_0001UL, InjectionDecision.RequestWindow)] // an event is already pending
    public void AnInterruptIsInjectedOnlyWhenTheGuestCanTakeIt(bool pending, ulong rflags, ulong interruptState, ulong pendingInterruption, object expected) =>
        Assert.That(WhpxInterrupts.Decide(pending, rflags, interruptState, pendingInterruption), Is.EqualTo((InjectionDecision)expected));
}
