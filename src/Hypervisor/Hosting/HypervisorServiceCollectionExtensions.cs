using Hypervisor.Accel.Kvm;
using Hypervisor.Accel.Tcg;
using Hypervisor.Accel.Whpx;
using Hypervisor.Core.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Hypervisor.Hosting;

/// <summary>The one-call registration of the Hypervisor library.</summary>
public static class HypervisorServiceCollectionExtensions
{
    /// <summary>
    /// Registers the core services, <see cref="IVirtualMachineFactory"/> (PC machines) and the options. Add accelerators
    /// to the returned builder (<c>AddTcg()</c>, <c>AddKvm()</c>, <c>AddWhpx()</c> or <see cref="AddAllAccelerators"/>).
    /// </summary>
    /// <example><code>services.AddHypervisor(o =&gt; o.Accelerator = "auto").AddAllAccelerators();</code></example>
    public static IHypervisorBuilder AddHypervisor(this IServiceCollection services, Action<HypervisorOptions>? configure = null)
    {
        IHypervisorBuilder builder = services.AddHypervisorCore(configure);
        services.TryAddSingleton<IVirtualMachineFactory, VirtualMachineFactory>();
        return builder;
    }

    /// <summary>As <see cref="AddHypervisor(IServiceCollection, Action{HypervisorOptions}?)"/>, with options bound from <paramref name="configuration"/>'s <c>Hypervisor</c> section.</summary>
    public static IHypervisorBuilder AddHypervisor(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        IHypervisorBuilder builder = services.AddHypervisor();
        services.Configure<HypervisorOptions>(configuration.GetSection(HypervisorOptions.SectionName));
        return builder;
    }

    /// <summary>Adds tcg, kvm and whpx; <c>auto</c> then picks the best one the host offers.</summary>
    public static IHypervisorBuilder AddAllAccelerators(this IHypervisorBuilder builder) =>
        builder.AddKvm().AddWhpx().AddTcg();
}
