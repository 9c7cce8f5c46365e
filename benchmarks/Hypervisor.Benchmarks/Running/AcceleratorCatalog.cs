using Hypervisor.Benchmarks.Workloads;
using Hypervisor.Core.Accelerators;

namespace Hypervisor.Benchmarks.Running;

/// <summary>Whether an accelerator specification can run here, and if not, why (from its probe).</summary>
/// <param name="Spec">The specification (<c>tcg,jit=off</c>, <c>kvm</c>, ...).</param>
/// <param name="IsAvailable">True when the benchmarks run it.</param>
/// <param name="Reason">The probe's description or reason.</param>
/// <param name="CountsInstructions">True when the accelerator reports retired guest instructions.</param>
public sealed record AcceleratorAvailability(string Spec, bool IsAvailable, string Reason, bool CountsInstructions);

/// <summary>The accelerator specifications every benchmark is parameterised by, and their probes.</summary>
public static class AcceleratorCatalog
{
    /// <summary>Every specification, in table order.</summary>
    public static IReadOnlyList<string> Specs { get; } = ["tcg,jit=off", "tcg,jit=on", "kvm", "whpx"];

    private static readonly Lazy<IReadOnlyList<AcceleratorAvailability>> s_probed = new(ProbeAll);

    /// <summary>An accelerator whose calibration run takes longer than this is skipped (with the figure as the reason).</summary>
    public static TimeSpan CalibrationLimit { get; } = TimeSpan.FromSeconds(1);

    private static TimeSpan CalibrationBudget { get; } = TimeSpan.FromSeconds(20);

    /// <summary>Restricts the specifications to these (empty: all); set by <c>--accelerator</c>.</summary>
    public static IReadOnlyCollection<string> Only { get; set; } = [];

    /// <summary>The probe result of every specification (probed once per process).</summary>
    public static IReadOnlyList<AcceleratorAvailability> All => s_probed.Value;

    /// <summary>The specifications that can run here.</summary>
    public static IEnumerable<string> AvailableSpecs => All.Where(a => a.IsAvailable).Select(a => a.Spec);

    /// <summary>Writes one line per skipped specification, with the probe's reason.</summary>
    public static void PrintSkipped(TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        foreach (AcceleratorAvailability a in All.Where(a => !a.IsAvailable))
        {
            writer.WriteLine($"skipped accelerator {a.Spec}: {a.Reason}");
        }
    }

    private static IReadOnlyList<AcceleratorAvailability> ProbeAll()
    {
        AcceleratorSelector selector = BenchMachine.Selector;
        var result = new List<AcceleratorAvailability>();
        foreach (string spec in Specs)
        {
            if (Only.Count > 0 && !Only.Contains(spec))
            {
                result.Add(new(spec, false, "not asked for (--accelerator)", false));
                continue;
            }

            AcceleratorCandidate candidate = selector.Parse(spec).Candidates[0];
            IAccelerator? accelerator = selector.Accelerators.FirstOrDefault(a => a.Name == candidate.Name);
            if (accelerator is null)
            {
                result.Add(new(spec, false, $"the {candidate.Name} accelerator is not registered in this build", false));
                continue;
            }

            AcceleratorProbeResult probe = accelerator.Probe();
            if (!probe.IsAvailable)
            {
                result.Add(new(spec, false, probe.Reason, false));
                continue;
            }

            // tcg answers jit=on with the interpreter until the JIT exists; timing the interpreter twice under two
            // names would be a misleading row, so the probe's own statement is the reason for skipping it.
            if (candidate.Options.GetSwitch("jit", false)
                && probe.Capabilities.Details.TryGetValue("jit", out string? jit)
                && jit.StartsWith("not implemented", StringComparison.OrdinalIgnoreCase))
            {
                result.Add(new(spec, false, $"the tcg probe reports jit: {jit}", probe.Capabilities.CountsInstructions));
                continue;
            }

            // Probes say whether an accelerator works, not whether it is fast enough to time: a /dev/kvm that is itself
            // emulated (nested virtualization in software) passes every probe and then runs a sieve at a few
            // thousand instructions a second. One measured calibration run decides, and its figure is the reason.
            Workload calibration = WorkloadCatalog.Calibration;
            try
            {
                // The first run also JIT-compiles our own .NET code; the second is the one that counts.
                GuestRunner.Run(spec, calibration, CalibrationBudget);
                OurRun run = GuestRunner.Run(spec, calibration, CalibrationBudget);
                if (run.Wall > CalibrationLimit)
                {
                    result.Add(new(spec, false,
                        $"too slow to benchmark here: the calibration guest ({calibration.Description}) took {run.Wall.TotalSeconds:0.00} s on its second run (limit {CalibrationLimit.TotalSeconds:0.0} s); probe said: {probe.Reason}",
                        probe.Capabilities.CountsInstructions));
                    continue;
                }
            }
            catch (WrongResultException e)
            {
                result.Add(new(spec, false, $"the calibration guest failed or exceeded {CalibrationBudget.TotalSeconds:0} s: {e.Message}", probe.Capabilities.CountsInstructions));
                continue;
            }
            catch (AcceleratorUnavailableException e)
            {
                result.Add(new(spec, false, e.Message, probe.Capabilities.CountsInstructions));
                continue;
            }

            result.Add(new(spec, true, probe.Reason, probe.Capabilities.CountsInstructions));
        }

        return result;
    }
}
