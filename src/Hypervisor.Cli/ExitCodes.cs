namespace Hypervisor.Cli;

/// <summary>
/// The CLI's own exit codes. They are all even, so they never collide with a guest's isa-debug-exit status, which is
/// always odd ((value &lt;&lt; 1) | 1). Guest-caused stops use <see cref="Core.Machine.MachineRunResult.StatusFor"/>.
/// </summary>
internal static class ExitCodes
{
    /// <summary>Bad command line, accelerator specification or memory size.</summary>
    public const int UsageError = 64;

    /// <summary>The guest image is missing, unreadable or malformed.</summary>
    public const int ImageError = 66;

    /// <summary>No requested accelerator can run on this host.</summary>
    public const int AcceleratorUnavailable = 68;

    /// <summary>An unexpected host error.</summary>
    public const int InternalError = 70;
}
