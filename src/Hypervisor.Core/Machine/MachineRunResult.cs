namespace Hypervisor.Core.Machine;

/// <summary>Why a machine stopped.</summary>
public enum MachineStopReason
{
    /// <summary>The guest wrote to isa-debug-exit; <see cref="MachineRunResult.ExitStatus"/> is (value &lt;&lt; 1) | 1, as QEMU computes it.</summary>
    DebugExit,

    /// <summary>The guest powered the machine off.</summary>
    PowerOff,

    /// <summary>The guest reset the machine (i8042 command 0xFE, port 0x92, port 0xCF9); like QEMU's <c>-no-reboot</c>, the run ends.</summary>
    Reset,

    /// <summary>A triple fault put the processor into shutdown.</summary>
    Shutdown,

    /// <summary>Every vCPU halted with interrupts disabled; nothing can wake them.</summary>
    Halted,

    /// <summary>The caller's cancellation token was cancelled.</summary>
    Cancelled,

    /// <summary>The time budget ran out.</summary>
    Timeout,

    /// <summary>The instruction budget ran out.</summary>
    InstructionLimit,

    /// <summary>A vCPU stopped on a host debugging request.</summary>
    Debug,

    /// <summary>The guest reached a state the accelerator cannot continue from; <see cref="MachineRunResult.Detail"/> says why.</summary>
    GuestError,
}

/// <summary>How a run of a machine ended.</summary>
/// <param name="Reason">Why it stopped.</param>
/// <param name="ExitStatus">The exit status the CLI returns: the debug-exit status, 0 for power-off and reset, else a documented code.</param>
/// <param name="Detail">A description for errors, shutdowns and guest errors; null otherwise.</param>
/// <param name="Instructions">Guest instructions retired (summed over vCPUs), or -1 where the accelerator cannot count.</param>
/// <param name="Exits">Exits to the host, summed over vCPUs.</param>
/// <param name="Elapsed">Wall time of the run.</param>
/// <param name="LastExit">The last exit of the bootstrap vCPU.</param>
public sealed record MachineRunResult(
    MachineStopReason Reason,
    int ExitStatus,
    string? Detail,
    long Instructions,
    long Exits,
    TimeSpan Elapsed,
    VcpuExit LastExit)
{
    /// <summary>Exit status for a triple fault (documented for the CLI).</summary>
    public const int ShutdownExitStatus = 2;

    /// <summary>Exit status for a time budget that ran out (documented for the CLI; the same as coreutils' <c>timeout</c>).</summary>
    public const int TimeoutExitStatus = 124;

    /// <summary>Exit status for a run cancelled by the user (128 + SIGINT, as a shell reports Ctrl+C).</summary>
    public const int CancelledExitStatus = 130;

    /// <summary>Exit status for HLT with interrupts disabled.</summary>
    public const int HaltedExitStatus = 4;

    /// <summary>Exit status for an exhausted instruction budget.</summary>
    public const int InstructionLimitExitStatus = 5;

    /// <summary>Exit status for a guest error (the accelerator cannot continue).</summary>
    public const int GuestErrorExitStatus = 6;

    /// <summary>Exit status for a host debugging stop.</summary>
    public const int DebugExitStatus = 7;

    /// <summary>The exit status the CLI uses for a stop reason (not for <see cref="MachineStopReason.DebugExit"/>).</summary>
    public static int StatusFor(MachineStopReason reason) => reason switch
    {
        MachineStopReason.PowerOff or MachineStopReason.Reset => 0,
        MachineStopReason.Shutdown => ShutdownExitStatus,
        MachineStopReason.Halted => HaltedExitStatus,
        MachineStopReason.Cancelled => CancelledExitStatus,
        MachineStopReason.Timeout => TimeoutExitStatus,
        MachineStopReason.InstructionLimit => InstructionLimitExitStatus,
        MachineStopReason.Debug => DebugExitStatus,
        MachineStopReason.GuestError => GuestErrorExitStatus,
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, "Debug-exit carries the guest's own status."),
    };
}

/// <summary>Limits of one run.</summary>
/// <param name="Timeout">Wall time after which the run stops with <see cref="MachineStopReason.Timeout"/>; null for none.</param>
/// <param name="InstructionLimit">Instructions per vCPU after which the run stops (accelerators that count instructions); null for none.</param>
public sealed record MachineRunOptions(TimeSpan? Timeout = null, long? InstructionLimit = null);
