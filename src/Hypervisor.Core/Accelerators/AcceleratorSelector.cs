using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Core.Accelerators;

/// <summary>
/// Chooses an accelerator from a specification: each candidate in order is probed, and the first whose probe passes
/// and whose VM creation succeeds is chosen (as QEMU's <c>-accel</c> falls back when initialisation fails).
/// </summary>
public sealed class AcceleratorSelector
{
    private readonly IReadOnlyList<IAccelerator> _accelerators;
    private readonly ILogger _logger;

    /// <summary>Creates a selector over the registered accelerators.</summary>
    public AcceleratorSelector(IEnumerable<IAccelerator> accelerators, ILogger<AcceleratorSelector>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(accelerators);
        _accelerators = accelerators.ToArray();
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        var duplicate = _accelerators.GroupBy(a => a.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new HypervisorConfigurationException($"Accelerator '{duplicate.Key}' is registered twice.");
        }
    }

    /// <summary>The registered accelerators.</summary>
    public IReadOnlyList<IAccelerator> Accelerators => _accelerators;

    /// <summary>Parses a specification against the registered names.</summary>
    public AcceleratorSpec Parse(string? specification) => AcceleratorSpec.Parse(specification, _accelerators.Select(a => a.Name));

    /// <summary>Probes every registered accelerator (for display: <c>hv probe</c>).</summary>
    public IReadOnlyList<(IAccelerator Accelerator, AcceleratorProbeResult Result)> ProbeAll() =>
        _accelerators.Select(a => (a, SafeProbe(a))).ToArray();

    /// <summary>
    /// Tries the candidates of <paramref name="spec"/> in order and creates a VM on the first that works.
    /// </summary>
    /// <param name="spec">The specification.</param>
    /// <param name="createContext">Builds the creation context for a candidate's options.</param>
    /// <returns>The chosen accelerator, its VM and the record of every candidate tried.</returns>
    /// <exception cref="AcceleratorUnavailableException">No candidate could run; it carries every attempt.</exception>
    /// <exception cref="HypervisorConfigurationException">A candidate's options are invalid.</exception>
    public AcceleratorSelection Select(AcceleratorSpec spec, Func<AcceleratorOptions, VmCreationContext> createContext)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(createContext);
        var attempts = new List<AcceleratorAttempt>();
        foreach (AcceleratorCandidate candidate in spec.Candidates)
        {
            IAccelerator? accelerator = _accelerators.FirstOrDefault(a => a.Name == candidate.Name);
            if (accelerator is null)
            {
                attempts.Add(Skip(candidate.Name, AcceleratorAttemptOutcome.NotRegistered,
                    $"the {candidate.Name} accelerator package is not registered with this application", null));
                continue;
            }

            foreach (string key in candidate.Options.Values.Keys)
            {
                if (!accelerator.SupportedOptions.ContainsKey(key))
                {
                    string supported = accelerator.SupportedOptions.Count == 0
                        ? "it takes no options"
                        : "supported: " + string.Join(", ", accelerator.SupportedOptions.Keys);
                    throw new HypervisorConfigurationException(
                        $"Accelerator '{accelerator.Name}' has no option '{key}' ({supported}).");
                }
            }

            AcceleratorProbeResult probe = SafeProbe(accelerator);
            if (!probe.IsAvailable)
            {
                attempts.Add(Skip(accelerator.Name, AcceleratorAttemptOutcome.Unavailable, probe.Reason, probe));
                continue;
            }

            IAcceleratorVm vm;
            try
            {
                vm = accelerator.CreateVm(createContext(candidate.Options));
            }
            catch (AcceleratorException e)
            {
                attempts.Add(Skip(accelerator.Name, AcceleratorAttemptOutcome.CreationFailed,
                    "it passed its probe but creating the VM failed: " + e.Message, probe));
                continue;
            }

            var chosen = new AcceleratorAttempt(accelerator.Name, AcceleratorAttemptOutcome.Chosen, probe.Reason, probe);
            attempts.Add(chosen);
            _logger.LogInformation("Accelerator {Name} chosen ({Description}).", accelerator.Name, probe.Reason);
            return new AcceleratorSelection(accelerator, candidate.Options, vm, attempts);
        }

        throw new AcceleratorUnavailableException(spec.Text, attempts);
    }

    private AcceleratorAttempt Skip(string name, AcceleratorAttemptOutcome outcome, string reason, AcceleratorProbeResult? probe)
    {
        _logger.LogInformation("Accelerator {Name} skipped: {Reason}", name, reason);
        return new AcceleratorAttempt(name, outcome, reason, probe);
    }

    private static AcceleratorProbeResult SafeProbe(IAccelerator accelerator)
    {
        try
        {
            return accelerator.Probe();
        }
#pragma warning disable CA1031 // a probe must never take the process down; its failure is a reason
        catch (Exception e)
#pragma warning restore CA1031
        {
            return AcceleratorProbeResult.Unavailable($"its probe failed unexpectedly: {e.Message}");
        }
    }
}

/// <summary>The outcome of trying one candidate.</summary>
public enum AcceleratorAttemptOutcome
{
    /// <summary>This candidate was chosen.</summary>
    Chosen,

    /// <summary>Its probe said it cannot run here.</summary>
    Unavailable,

    /// <summary>Its probe passed, but creating the VM failed.</summary>
    CreationFailed,

    /// <summary>No accelerator of that name is registered.</summary>
    NotRegistered,
}

/// <summary>One candidate tried during selection.</summary>
/// <param name="Name">The accelerator name.</param>
/// <param name="Outcome">What happened.</param>
/// <param name="Reason">Why (for skipped ones) or what was found (for the chosen one).</param>
/// <param name="Probe">The probe result, when the accelerator was probed.</param>
public sealed record AcceleratorAttempt(string Name, AcceleratorAttemptOutcome Outcome, string Reason, AcceleratorProbeResult? Probe);

/// <summary>The result of a successful selection.</summary>
/// <param name="Accelerator">The chosen accelerator.</param>
/// <param name="Options">The options it was created with.</param>
/// <param name="Vm">The VM created on it; owned by the caller.</param>
/// <param name="Attempts">Every candidate tried, in order, the chosen one last.</param>
public sealed record AcceleratorSelection(
    IAccelerator Accelerator,
    AcceleratorOptions Options,
    IAcceleratorVm Vm,
    IReadOnlyList<AcceleratorAttempt> Attempts);

/// <summary>No candidate of a specification could run. <see cref="Attempts"/> says why for each.</summary>
public sealed class AcceleratorUnavailableException : HypervisorException
{
    /// <summary>Creates the exception from the attempts made.</summary>
    public AcceleratorUnavailableException(string specification, IReadOnlyList<AcceleratorAttempt> attempts)
        : base($"No accelerator in '{specification}' can run here: " +
               string.Join("; ", attempts.Select(a => $"{a.Name}: {a.Reason}")))
    {
        Specification = specification;
        Attempts = attempts;
    }

    /// <summary>The specification that was asked for.</summary>
    public string Specification { get; }

    /// <summary>Every candidate tried and why it was skipped.</summary>
    public IReadOnlyList<AcceleratorAttempt> Attempts { get; }
}
