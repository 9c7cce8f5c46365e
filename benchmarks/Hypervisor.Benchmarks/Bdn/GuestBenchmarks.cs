using BenchmarkDotNet.Attributes;
using Hypervisor.Benchmarks.Running;
using Hypervisor.Benchmarks.Workloads;

namespace Hypervisor.Benchmarks.Bdn;

/// <summary>
/// Every workload on every accelerator that can run here. One invocation creates the machine, runs the guest and checks
/// its output (a wrong checksum throws, so BenchmarkDotNet reports the benchmark as failed rather than timing it).
/// Accelerators that cannot run are not parameters: <see cref="AcceleratorCatalog.PrintSkipped"/> prints them with the
/// probe's reason before and after the run.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(ShortRunConfig))]
public class GuestBenchmarks
{
    /// <summary>The accelerator specifications that can run here (tcg,jit=off, tcg,jit=on, kvm, whpx, minus the skipped ones).</summary>
    public static IEnumerable<string> Accelerators => AcceleratorCatalog.AvailableSpecs;

    /// <summary>Restricts <see cref="Workloads"/> to these names (empty: all); set by <c>--workloads</c>.</summary>
    public static IReadOnlyCollection<string> OnlyWorkloads { get; set; } = [];

    /// <summary>Every workload name (or those of <see cref="OnlyWorkloads"/>).</summary>
    public static IEnumerable<string> Workloads =>
        WorkloadCatalog.All.Select(w => w.Name).Where(n => OnlyWorkloads.Count == 0 || OnlyWorkloads.Contains(n));

    /// <summary>The accelerator.</summary>
    [ParamsSource(nameof(Accelerators))]
    public string Accelerator { get; set; } = "tcg,jit=off";

    /// <summary>The workload.</summary>
    [ParamsSource(nameof(Workloads))]
    public string Workload { get; set; } = "boot-first-line";

    /// <summary>Builds the selector and the images (outside the measurement).</summary>
    [GlobalSetup]
    public void Setup()
    {
        _ = WorkloadCatalog.All;
        _ = BenchMachine.Factory;
    }

    /// <summary>Creates the machine, runs the workload to its end and verifies its output.</summary>
    [Benchmark]
    public long Run()
    {
        OurRun run = GuestRunner.Run(Accelerator, WorkloadCatalog.Get(Workload));
        RunStatistics.Record(Workload, Accelerator, run);
        return run.Result.Instructions;
    }
}
