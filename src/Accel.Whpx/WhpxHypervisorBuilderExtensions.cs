using Hypervisor.Core.Hosting;

namespace Hypervisor.Accel.Whpx;

/// <summary>Registers the whpx accelerator.</summary>
public static class WhpxHypervisorBuilderExtensions
{
    /// <summary>Adds whpx (Windows Hypervisor Platform) to the accelerators the selector can choose from.</summary>
    public static IHypervisorBuilder AddWhpx(this IHypervisorBuilder builder) => builder.AddAccelerator<WhpxAccelerator>();
}
