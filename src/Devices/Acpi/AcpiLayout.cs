using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;

namespace Hypervisor.Devices.Acpi;

/// <summary>Adds ACPI to a PC that boots without firmware (direct kernel boot).</summary>
public static class AcpiLayout
{
    /// <summary>The BIOS area the tables live in: 0xE0000-0xFFFFF, RAM here (the e820 map reports it reserved).</summary>
    public const ulong BiosAreaStart = 0xE0000;

    /// <summary>The size of the BIOS area.</summary>
    public const ulong BiosAreaSize = 0x20000;

    /// <summary>
    /// Maps RAM over the BIOS area 0xE0000-0xFFFFF holding the ACPI tables (<see cref="AcpiTables.Build"/>) and places
    /// the PM1a event/control blocks (<see cref="AcpiPmDevice"/>) on their ports, so that the guest can power off.
    /// </summary>
    /// <remarks>Call once, before <see cref="VirtualMachineBuilder.Build"/>, on a machine without firmware (the firmware's low copy occupies the same area).</remarks>
    /// <exception cref="MemoryMapException">The BIOS area is already mapped (the machine has firmware).</exception>
    /// <exception cref="Core.HypervisorConfigurationException">The PM ports are taken.</exception>
    public static AcpiPmDevice AddAcpi(this VirtualMachineBuilder builder, AcpiTableOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        options ??= new AcpiTableOptions();
        byte[] tables = AcpiTables.Build(options);
        var area = new GuestAddress(BiosAreaStart);
        builder.Memory.AddRam(area, BiosAreaSize, "bios-acpi");
        builder.Memory.Write(new GuestAddress(options.BaseAddress), tables);
        var pm = new AcpiPmDevice(builder.Control, builder.Clock);
        builder.Ports.Register(options.PmBasePort, AcpiPmDevice.PortCount, pm, "acpi-pm1a");
        builder.AddDevice(pm);
        return pm;
    }
}
