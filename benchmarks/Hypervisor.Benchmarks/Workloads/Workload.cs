namespace Hypervisor.Benchmarks.Workloads;

/// <summary>How a workload is measured.</summary>
public enum WorkloadKind
{
    /// <summary>Run the image to isa-debug-exit and compare its COM1 output.</summary>
    RunToExit,

    /// <summary>Create the machine and run until the first guest instruction has retired (no QEMU peer: QEMU cannot stop there).</summary>
    FirstInstruction,
}

/// <summary>A benchmark guest: a firmware image and the COM1 output it must produce.</summary>
/// <param name="Name">Short name used in tables and on the command line.</param>
/// <param name="Description">What it does.</param>
/// <param name="Kind">How it is measured.</param>
/// <param name="Image">The 64 KiB firmware image.</param>
/// <param name="ExpectedSerial">What the guest must print on COM1, computed on the host by an independent C# implementation.</param>
public sealed record Workload(string Name, string Description, WorkloadKind Kind, byte[] Image, string ExpectedSerial)
{
    /// <summary>The serial line for a 32-bit checksum, as the firmware prints it.</summary>
    public static string ChecksumLine(uint checksum) => $"{checksum:x8}\r\n";

    /// <inheritdoc />
    public override string ToString() => Name;
}
