using System.Diagnostics;
using System.Text;
using Hypervisor.Benchmarks.Workloads;
using Hypervisor.Core.Machine;

namespace Hypervisor.Benchmarks.Running;

/// <summary>One verified run of a workload on one of our accelerators.</summary>
/// <param name="Wall">Machine creation plus the run (what a user waits for; comparable with a QEMU process's wall time).</param>
/// <param name="Result">The machine's result (its <c>Elapsed</c> is the run alone).</param>
/// <param name="Serial">What the guest printed on COM1.</param>
public sealed record OurRun(TimeSpan Wall, MachineRunResult Result, string Serial)
{
    /// <summary>Guest instructions per second of the run alone, or null where the accelerator does not count them.</summary>
    public double? InstructionsPerSecond =>
        Result.Instructions >= 0 && Result.Elapsed > TimeSpan.Zero ? Result.Instructions / Result.Elapsed.TotalSeconds : null;

    /// <summary>Exits per second of the run alone.</summary>
    public double ExitsPerSecond => Result.Elapsed > TimeSpan.Zero ? Result.Exits / Result.Elapsed.TotalSeconds : 0;
}

/// <summary>A guest produced the wrong output or stopped for the wrong reason: the run does not count.</summary>
public sealed class WrongResultException(string message) : Exception(message);

/// <summary>Runs workloads on our accelerators and checks every result.</summary>
public static class GuestRunner
{
    /// <summary>The most a single workload may take before it counts as hung.</summary>
    public static TimeSpan Timeout { get; } = TimeSpan.FromSeconds(120);

    /// <summary>Creates the machine, runs <paramref name="workload"/> and verifies its exit and output.</summary>
    /// <exception cref="WrongResultException">Wrong checksum, wrong stop reason or status.</exception>
    /// <exception cref="AcceleratorUnavailableException">The accelerator cannot run here.</exception>
    public static OurRun Run(string spec, Workload workload, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(workload);
        using var serial = new MemoryStream();
        long start = Stopwatch.GetTimestamp();
        MachineRunResult result;
        using (VirtualMachine vm = BenchMachine.Create(spec, workload.Image, serial))
        {
            long? limit = workload.Kind == WorkloadKind.FirstInstruction ? 1 : null;
            result = vm.Run(new MachineRunOptions(timeout ?? Timeout, limit));
        }

        TimeSpan wall = Stopwatch.GetElapsedTime(start);
        string text = Encoding.Latin1.GetString(serial.ToArray());
        Verify(spec, workload, result, text);
        return new OurRun(wall, result, text);
    }

    private static void Verify(string spec, Workload workload, MachineRunResult result, string serial)
    {
        string where = $"{workload.Name} on {spec}";
        if (workload.Kind == WorkloadKind.FirstInstruction)
        {
            if (result.Reason != MachineStopReason.InstructionLimit || result.Instructions != 1)
            {
                throw new WrongResultException(
                    $"{where}: expected a stop after exactly one instruction, got {result.Reason} after {result.Instructions} ({result.Detail}).");
            }

            return;
        }

        if (result.Reason != MachineStopReason.DebugExit || result.ExitStatus != 1)
        {
            throw new WrongResultException(
                $"{where}: expected isa-debug-exit with status 1, got {result.Reason} status {result.ExitStatus} ({result.Detail}); serial so far: {Escape(serial)}");
        }

        if (serial != workload.ExpectedSerial)
        {
            throw new WrongResultException($"{where}: the guest printed {Escape(serial)}, the host computed {Escape(workload.ExpectedSerial)}.");
        }
    }

    /// <summary>Serial text with CR and LF made visible.</summary>
    public static string Escape(string s) => "\"" + s.Replace("\r", "\\r", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal) + "\"";
}
