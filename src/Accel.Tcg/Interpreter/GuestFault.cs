namespace Hypervisor.Accel.Tcg.Interpreter;

/// <summary>
/// An architectural exception raised by an instruction (#GP, #PF, #UD ...). Thrown only when the guest faults (not per
/// instruction) and caught by the run loop, which delivers it through the IVT/IDT with the state the instruction
/// started with: instructions write registers and memory only after their last possible fault.
/// </summary>
internal sealed class GuestFault : Exception
{
    public GuestFault(int vector, uint errorCode, bool hasErrorCode)
        : base(null)
    {
        Vector = vector;
        ErrorCode = errorCode;
        HasErrorCode = hasErrorCode;
    }

    public GuestFault() : base(null) { }

    public GuestFault(string message) : base(message) { }

    public GuestFault(string message, Exception innerException) : base(message, innerException) { }

    public int Vector { get; }

    public uint ErrorCode { get; }

    public bool HasErrorCode { get; }
}

/// <summary>The guest reached a state this CPU cannot continue from (a feature we do not implement); ends the run with GuestError.</summary>
internal sealed class GuestUnsupported : Exception
{
    public GuestUnsupported() { }

    public GuestUnsupported(string message) : base(message) { }

    public GuestUnsupported(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>Exception vectors (Intel SDM Vol. 3A, Table 6-1).</summary>
internal static class Vec
{
    public const int DE = 0, DB = 1, NMI = 2, BP = 3, OF = 4, BR = 5, UD = 6, NM = 7, DF = 8, TS = 10, NP = 11, SS = 12,
        GP = 13, PF = 14, MF = 16, AC = 17, MC = 18, XM = 19;
}
