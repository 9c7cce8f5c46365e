using Hypervisor.Accel.Whpx.Interop;

namespace Hypervisor.Accel.Whpx.Translation;

/// <summary>What to do with an external interrupt the interrupt controller is asserting.</summary>
internal enum InjectionDecision
{
    /// <summary>No interrupt is waiting.</summary>
    None,

    /// <summary>The guest can take it now: acknowledge and write the pending-interruption register.</summary>
    Inject,

    /// <summary>The guest cannot take it yet: ask WHPX for an interrupt-window exit.</summary>
    RequestWindow,
}

/// <summary>
/// External-interrupt injection through <c>WHvRegisterPendingInterruption</c> and the interrupt-window
/// notification (<c>WHvX64RegisterDeliverabilityNotifications</c>).
/// </summary>
internal static class WhpxInterrupts
{
    /// <summary>
    /// An external interrupt is accepted when RFLAGS.IF is set, no MOV SS/STI shadow is active and no other event
    /// is already pending (SDM Vol. 3A, 7.8.1 and 26.3.1.5 for the shadow).
    /// </summary>
    public static InjectionDecision Decide(bool interruptPending, ulong rflags, ulong interruptState, ulong pendingInterruption)
    {
        if (!interruptPending)
        {
            return InjectionDecision.None;
        }

        bool canTake = (rflags & 0x200) != 0
            && !WhvBitFields.InterruptShadow.IsSet(interruptState)
            && !WhvBitFields.PendingInterruptionPending.IsSet(pendingInterruption);
        return canTake ? InjectionDecision.Inject : InjectionDecision.RequestWindow;
    }

    /// <summary>The pending-interruption register value that delivers external interrupt <paramref name="vector"/>.</summary>
    public static ulong EncodeExternalInterrupt(byte vector)
    {
        ulong value = WhvBitFields.PendingInterruptionPending.Set(0, 1);
        value = WhvBitFields.PendingInterruptionType.Set(value, (ulong)WHV_X64_PENDING_INTERRUPTION_TYPE.WHvX64PendingInterrupt);
        return WhvBitFields.PendingInterruptionVector.Set(value, vector);
    }

    /// <summary>The pending-interruption register value that raises exception <paramref name="vector"/>, optionally with an error code.</summary>
    public static ulong EncodeException(byte vector, uint? errorCode)
    {
        ulong value = WhvBitFields.PendingInterruptionPending.Set(0, 1);
        value = WhvBitFields.PendingInterruptionType.Set(value, (ulong)WHV_X64_PENDING_INTERRUPTION_TYPE.WHvX64PendingException);
        value = WhvBitFields.PendingInterruptionVector.Set(value, vector);
        if (errorCode is uint code)
        {
            value = WhvBitFields.PendingDeliverErrorCode.Set(value, 1);
            value = WhvBitFields.PendingErrorCode.Set(value, code);
        }

        return value;
    }

    /// <summary>The deliverability-notifications value that requests (or cancels) an interrupt-window exit.</summary>
    public static ulong EncodeInterruptWindowRequest(bool request) =>
        WhvBitFields.NotifyInterrupt.Set(0, request ? 1UL : 0);
}
