using Hypervisor.Core.Accelerators;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Core.Hosting;

/// <summary>Registers accelerators and their options on a service collection.</summary>
public interface IHypervisorBuilder
{
    /// <summary>The service collection being configured.</summary>
    IServiceCollection Services { get; }
}

/// <summary>Dependency-injection registration of the core services.</summary>
public static class HypervisorServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="HypervisorOptions"/> and the <see cref="AcceleratorSelector"/> over every registered
    /// <see cref="IAccelerator"/>. Accelerator packages add themselves to the returned builder (<c>AddTcg()</c>, ...).
    /// </summary>
    public static IHypervisorBuilder AddHypervisorCore(this IServiceCollection services, Action<HypervisorOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<HypervisorOptions>();
        if (configure is not null)
        {
            services.Configure(configure);
        }

        services.TryAddSingleton(sp => new AcceleratorSelector(
            sp.GetServices<IAccelerator>(), sp.GetService<ILogger<AcceleratorSelector>>()));
        return new HypervisorBuilder(services);
    }

    /// <summary>Adds an accelerator (used by the accelerator packages' <c>AddXxx()</c> methods).</summary>
    public static IHypervisorBuilder AddAccelerator<TAccelerator>(this IHypervisorBuilder builder)
        where TAccelerator : class, IAccelerator
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IAccelerator, TAccelerator>());
        return builder;
    }

    private sealed class HypervisorBuilder(IServiceCollection services) : IHypervisorBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
