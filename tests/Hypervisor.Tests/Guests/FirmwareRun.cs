using System.Text;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Machine;
using Hypervisor.Devices;
using Hypervisor.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Hypervisor.Tests.Guests;

/// <summary>Runs a firmware image through the hosting API, as a user's app does.</summary>
internal static class FirmwareRun
{
    /// <summary>
    /// Runs <paramref name="image"/> as the machine's firmware on <paramref name="accelerator"/> with
    /// <paramref name="vcpus"/> vCPUs until it stops or <paramref name="timeout"/> passes; returns COM1's output.
    /// </summary>
    public static (string Serial, MachineRunResult Result) Run(byte[] image, string accelerator, TimeSpan timeout, int vcpus = 1)
    {
        var services = new ServiceCollection();
        services.AddHypervisor(o =>
        {
            o.Accelerator = accelerator;
            o.Vcpus = vcpus;
        }).AddAllAccelerators();
        using ServiceProvider provider = services.BuildServiceProvider();
        using var serial = new MemoryStream();
        using VirtualMachine vm = provider.GetRequiredService<IVirtualMachineFactory>().Create(new MachineRequest
        {
            Firmware = image,
            SerialOutput = serial,
        });
        MachineRunResult result = vm.Run(new MachineRunOptions(Timeout: timeout));
        return (Encoding.Latin1.GetString(serial.ToArray()), result);
    }

    /// <summary>
    /// Runs a PC built with <paramref name="options"/> (its <see cref="PcOptions.Firmware"/>; COM1 is captured) on tcg
    /// through the builder, for tests that switch PC devices on or off.
    /// </summary>
    public static (string Serial, MachineRunResult Result) RunPc(PcOptions options, TimeSpan timeout)
    {
        using var serial = new MemoryStream();
        using var builder = new VirtualMachineBuilder();
        builder.AddPcDevices(options with { SerialOutput = serial });
        var services = new ServiceCollection();
        services.AddHypervisor(o => o.Accelerator = "tcg").AddAllAccelerators();
        using ServiceProvider provider = services.BuildServiceProvider();
        var selector = provider.GetRequiredService<AcceleratorSelector>();
        using VirtualMachine vm = builder.Build(selector, AcceleratorSpec.Parse("tcg", ["tcg"]));
        MachineRunResult result = vm.Run(new MachineRunOptions(Timeout: timeout));
        return (Encoding.Latin1.GetString(serial.ToArray()), result);
    }
}
