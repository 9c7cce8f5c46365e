namespace Hypervisor.Core.Accelerators;

/// <summary>What an accelerator's probe found.</summary>
/// <param name="IsAvailable">True when the accelerator can run guests on this host.</param>
/// <param name="Reason">Why it is unavailable, in words a person can act on; or a short description of what was found.</param>
/// <param name="Capabilities">What the accelerator offers here (empty when unavailable).</param>
public sealed record AcceleratorProbeResult(bool IsAvailable, string Reason, AcceleratorCapabilities Capabilities)
{
    /// <summary>An available result.</summary>
    public static AcceleratorProbeResult Available(string description, AcceleratorCapabilities capabilities) =>
        new(true, description, capabilities);

    /// <summary>An unavailable result with the reason.</summary>
    public static AcceleratorProbeResult Unavailable(string reason) => new(false, reason, AcceleratorCapabilities.None);
}

/// <summary>What an accelerator can do on this host.</summary>
/// <param name="MaxVcpus">The most vCPUs per VM.</param>
/// <param name="CountsInstructions">True when <see cref="Machine.IVcpu.Run"/> honours an instruction limit and counts instructions.</param>
/// <param name="HardwareAccelerated">True when guest code runs natively on the host CPU.</param>
/// <param name="Details">Further facts (extension names and values) for display.</param>
public sealed record AcceleratorCapabilities(
    int MaxVcpus,
    bool CountsInstructions,
    bool HardwareAccelerated,
    IReadOnlyDictionary<string, string> Details)
{
    /// <summary>No capabilities (an unavailable accelerator).</summary>
    public static AcceleratorCapabilities None { get; } =
        new(0, false, false, new Dictionary<string, string>());
}
