using Hypervisor.Core.Hosting;

namespace Hypervisor.Accel.Tcg;

/// <summary>Registers the tcg accelerator.</summary>
public static class TcgHypervisorBuilderExtensions
{
    /// <summary>Adds tcg (the software CPU) to the accelerators the selector can choose from.</summary>
    public static IHypervisorBuilder AddTcg(this IHypervisorBuilder builder) => builder.AddAccelerator<TcgAccelerator>();
}
