using BenchmarkDotNet.Running;
using Hypervisor.Benchmarks.Bdn;
using Hypervisor.Benchmarks.Quick;
using Hypervisor.Benchmarks.Running;

namespace Hypervisor.Benchmarks;

/// <summary>
/// Entry point. <c>--quick</c> runs the side-by-side quick mode (optionally <c>--workloads a,b</c>); anything else is
/// passed to BenchmarkDotNet's switcher (for example <c>--filter *</c>); <c>--workloads a,b</c> restricts
/// either mode to the named workloads, and <c>--accelerator SPEC</c> (repeatable) to the named accelerators.
/// </summary>
public static class Program
{
    /// <summary>Runs the chosen mode.</summary>
    public static int Main(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        int i = Array.IndexOf(args, "--workloads");
        string[] only = i >= 0 && i + 1 < args.Length ? args[i + 1].Split(',', StringSplitOptions.RemoveEmptyEntries) : [];
        if (i >= 0)
        {
            args = args.Where((_, k) => k != i && k != i + 1).ToArray();
        }

        var accelerators = new List<string>();
        for (int k; (k = Array.IndexOf(args, "--accelerator")) >= 0 && k + 1 < args.Length;)
        {
            accelerators.Add(args[k + 1]);
            args = args.Where((_, j) => j != k && j != k + 1).ToArray();
        }

        AcceleratorCatalog.Only = accelerators;
        if (args.Contains("--quick"))
        {
            return QuickMode.Run(Console.Out, only);
        }

        GuestBenchmarks.OnlyWorkloads = only;

        // Say which accelerators are not benchmarked, and why, before and after BenchmarkDotNet's own output.
        AcceleratorCatalog.PrintSkipped(Console.Out);
        var summaries = BenchmarkSwitcher.FromTypes([typeof(GuestBenchmarks)]).Run(args);
        AcceleratorCatalog.PrintSkipped(Console.Out);
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }
}
