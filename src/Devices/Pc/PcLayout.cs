// The PC machine layout: QEMU's 'pc' devices at their usual ports and IRQs (guest-contract.md).
//
//   COM1 16550A      0x3F8-0x3FF  IRQ 4        i8259 pair   0x20-0x21, 0xA0-0xA1, ELCR 0x4D0-0x4D1
//   i8254 PIT        0x40-0x43    IRQ 0        port 0x61    PIT counter 2 gate / speaker
//   MC146818 RTC     0x70-0x71    IRQ 8        i8042        0x60, 0x64   IRQ 1 (IRQ 12 aux)
//   port 0x92        fast A20 / reset          debugcon     0x402 and 0xE9
//   isa-debug-exit   0x501-0x502               POST         0x80
//   fw_cfg           0x510-0x511, DMA 0x514-0x51B
//   local APIC       0xFEE00000 (MMIO, per vCPU)   I/O APIC   0xFEC00000 (MMIO), ISA IRQ n on pin n, IRQ 0 on pin 2
//   HPET             0xFED00000 (MMIO), with the APIC: timers 0/1 on IRQ 0/8 in legacy replacement, else I/O APIC pin 2
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Devices.Apic;
using Hypervisor.Devices.Bus;
using Hypervisor.Devices.DebugCon;
using Hypervisor.Devices.DebugExit;
using Hypervisor.Devices.Ferr;
using Hypervisor.Devices.FwCfg;
using Hypervisor.Devices.Hpet;
using Hypervisor.Devices.I8042;
using Hypervisor.Devices.Pic;
using Hypervisor.Devices.Pit;
using Hypervisor.Devices.Post;
using Hypervisor.Devices.Rtc;
using Hypervisor.Devices.Uart;

namespace Hypervisor.Devices;

/// <summary>What goes into a PC machine.</summary>
public sealed record PcOptions
{
    /// <summary>The default guest RAM: 128 MiB (QEMU's default).</summary>
    public const ulong DefaultMemorySizeInBytes = 128UL * 1024 * 1024;

    /// <summary>Guest RAM in bytes (at least 2 MiB, a multiple of 4 KiB).</summary>
    public ulong MemorySizeInBytes { get; init; } = DefaultMemorySizeInBytes;

    /// <summary>A raw firmware image mapped as <c>qemu-system-x86_64 -bios</c> does; null or empty for none.</summary>
    /// <remarks>Empty counts as none because a null <c>byte[]</c> converts to an empty, non-null memory.</remarks>
    public ReadOnlyMemory<byte>? Firmware { get; init; }

    /// <summary>
    /// True (the default) to make the firmware's copy below 1 MiB writable RAM holding the image's last 128 KiB, as on
    /// QEMU's <c>isapc</c> machine (and as on <c>pc</c> once the firmware unlocked its shadow RAM through the i440FX PAM
    /// registers, which are not modelled here). SeaBIOS keeps its variables there and cannot start without it. False
    /// maps it read-only through <see cref="GuestMemoryLayout.AddFirmware"/>. The copy at the top of 4 GiB is read-only
    /// either way.
    /// </summary>
    public bool WritableLowFirmware { get; init; } = true;

    /// <summary>
    /// True (the default) to tell the firmware, through the fw_cfg file <c>etc/sercon-port</c>, to use COM1 as its
    /// console, as QEMU does with <c>-nographic</c>: SeaBIOS then prints its banner and boot messages on COM1.
    /// </summary>
    public bool FirmwareSerialConsole { get; init; } = true;

    /// <summary>Where COM1's output goes (the CLI passes stdout), or null to discard it.</summary>
    public Stream? SerialOutput { get; init; }

    /// <summary>Where debugcon output goes, or null to keep it in memory (<see cref="DebugConsole.GetBufferedText"/>).</summary>
    public Stream? DebugConsoleOutput { get; init; }

    /// <summary>
    /// The number of vCPUs: set on the builder and reported in CMOS and fw_cfg. Null keeps the builder's
    /// <see cref="VirtualMachineBuilder.VcpuCount"/> as it is when <see cref="PcLayout.AddPcDevices"/> runs.
    /// </summary>
    public int? VcpuCount { get; init; }

    /// <summary>
    /// True (the default) to give every vCPU a local APIC and the machine an I/O APIC, as QEMU's <c>pc</c> has. The
    /// 8259 pair then reaches the CPU through the bootstrap processor's LINT0 in ExtINT mode (virtual-wire mode), so
    /// guests that never touch the APIC see the same interrupts as without one; ISA IRQs also drive the I/O APIC's
    /// pins (IRQ 0 on pin 2, the others on their own number, as QEMU wires them). False builds the 8259-only machine.
    /// </summary>
    public bool Apic { get; init; } = true;

    /// <summary>
    /// True (the default) to give a machine with an APIC (<see cref="Apic"/>) an HPET at 0xFED00000, as QEMU's
    /// <c>pc</c> has: 100 MHz, three comparators, legacy-replacement capable (<see cref="HpetTimerBlock"/>). Linux uses
    /// it as its clocksource watchdog and early clockevent. Ignored without an APIC (QEMU's <c>isapc</c> has none
    /// either). Direct kernel boot describes it in ACPI (<see cref="Acpi.AcpiTableOptions.Hpet"/>).
    /// </summary>
    public bool Hpet { get; init; } = true;
}

/// <summary>Typed access to the devices <see cref="PcLayout.AddPcDevices"/> created.</summary>
/// <param name="Com1">COM1 at 0x3F8, IRQ 4.</param>
/// <param name="Pic">The 8259 pair; also the builder's interrupt source.</param>
/// <param name="Pit">The 8254 (with port 0x61 as <see cref="Pit8254.SpeakerPort"/>).</param>
/// <param name="Rtc">The RTC/CMOS.</param>
/// <param name="I8042">The keyboard controller.</param>
/// <param name="A20">The A20 line driven by the i8042 and port 0x92.</param>
/// <param name="Port92">Port 0x92.</param>
/// <param name="DebugCon">The debug console at 0x402 and 0xE9.</param>
/// <param name="DebugExit">isa-debug-exit at 0x501.</param>
/// <param name="Post">The POST code port 0x80.</param>
/// <param name="FwCfg">QEMU's fw_cfg.</param>
public sealed record PcDevices(
    Uart16550 Com1,
    DualPic Pic,
    Pit8254 Pit,
    CmosRtc Rtc,
    I8042Controller I8042,
    A20Gate A20,
    FastA20Port Port92,
    DebugConsole DebugCon,
    DebugExitDevice DebugExit,
    PostCodePort Post,
    FwCfgDevice FwCfg)
{
    /// <summary>The local APICs and the I/O APIC, or null when <see cref="PcOptions.Apic"/> is false.</summary>
    public ApicBus? Apic { get; init; }

    /// <summary>The HPET, or null when the machine has none (<see cref="PcOptions.Hpet"/>).</summary>
    public HpetTimerBlock? Hpet { get; init; }
}

/// <summary>Fills a <see cref="VirtualMachineBuilder"/> with a PC: RAM, firmware and the devices of guest-contract.md.</summary>
public static class PcLayout
{
    /// <summary>
    /// Adds RAM (<see cref="GuestMemoryLayout.AddRam"/>), the firmware if any (<see cref="GuestMemoryLayout.AddFirmware"/>)
    /// and every PC device at its port and IRQ; makes the PIC the builder's interrupt source and sets its vCPU count.
    /// </summary>
    /// <remarks>
    /// Add more devices afterwards on free ports (for example <see cref="AddSerialPort"/> for COM2-COM4). Call once per
    /// builder, before <see cref="VirtualMachineBuilder.Build"/>.
    /// </remarks>
    /// <exception cref="Core.HypervisorConfigurationException">Invalid memory size or vCPU count, or the ports are taken.</exception>
    /// <exception cref="Core.GuestImageException">The firmware image has an invalid size.</exception>
    public static PcDevices AddPcDevices(this VirtualMachineBuilder builder, PcOptions options)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(options);
        int vcpus = options.VcpuCount ?? builder.VcpuCount;
        if (vcpus is < 1 or > 255)
        {
            throw new Core.HypervisorConfigurationException($"A PC needs 1 to 255 vCPUs; {vcpus} were asked for.");
        }

        ReadOnlyMemory<byte> firmware = options.Firmware ?? ReadOnlyMemory<byte>.Empty;
        if (!firmware.IsEmpty)
        {
            GuestMemoryLayout.ValidateFirmware(firmware.Length);
        }

        GuestMemoryLayout.AddRam(builder.Memory, options.MemorySizeInBytes);
        if (!firmware.IsEmpty)
        {
            if (options.WritableLowFirmware)
            {
                AddFirmwareWithWritableLowCopy(builder, firmware.Span);
            }
            else
            {
                GuestMemoryLayout.AddFirmware(builder.Memory, firmware.Span);
            }
        }

        builder.VcpuCount = vcpus;
        var ports = builder.Ports;
        var ioLock = builder.IoLock;

        var picOutput = new PicOutput(builder.Control);
        var pic = new DualPic(options.Apic ? picOutput : builder.Control, ioLock);
        ports.Register(DualPic.MasterPort, 2, new BytePortAdapter(pic.Master, 2), "pic-master");
        ports.Register(DualPic.SlavePort, 2, new BytePortAdapter(pic.Slave, 2), "pic-slave");
        ports.Register(DualPic.ElcrPort, 2, new BytePortAdapter(pic.Elcr, 2), "elcr");
        builder.InterruptSource = pic;
        ApicBus? apic = null;
        if (options.Apic)
        {
            apic = new ApicBus(builder.Control, ioLock, builder.Timers, vcpus, pic);
            picOutput.Apic = apic;
            builder.Memory.AddMmio(new Core.Memory.GuestAddress(LocalApic.DefaultBase), LocalApic.PageSize, apic.LocalApicMmio, "lapic");
            builder.Memory.AddMmio(new Core.Memory.GuestAddress(IoApic.DefaultBase), IoApic.WindowSize, apic.IoApic, "ioapic");
            ApicBus bus = apic;
            builder.LocalInterruptControllers = i => (uint)i < (uint)bus.LocalApics.Count ? bus.LocalApics[i] : null;
            builder.AddDevice(apic);
        }

        // The HPET sits between the 8254's and the RTC's outputs and ISA IRQs 0 and 8: with LEG_RT_CNF its timers 0
        // and 1 drive those IRQs and the two devices' outputs are blocked. I/O APIC pin 2, the one route its timers
        // have otherwise, is shared with IRQ 0, so the two drive it through a wired OR.
        HpetTimerBlock? hpet = null;
        IInterruptLine irq0, irq8 = IsaLine(pic, apic, 8);
        if (apic is not null && options.Hpet)
        {
            var pin2 = new WiredOrLine(apic.IoApic.GetPin(2));
            IInterruptLine legacyIrq0 = new SplitLine(pic.GetLine(0), pin2.NewInput());
            hpet = new HpetTimerBlock(builder.Clock, builder.Timers, legacyIrq0, irq8,
                input => input == 2 ? pin2.NewInput() : null, HpetTimerBlock.DefaultRouteCapability);
            builder.Memory.AddMmio(new Core.Memory.GuestAddress(HpetTimerBlock.DefaultBase), HpetTimerBlock.WindowSize, hpet, "hpet");
            irq0 = hpet.PitOutput;
            irq8 = hpet.RtcOutput;
            builder.AddDevice(hpet);
        }
        else
        {
            irq0 = IsaLine(pic, apic, 0);
        }

        var pit = new Pit8254(builder.Clock, builder.Timers, irq0);
        ports.Register(Pit8254.BasePort, Pit8254.PortCount, new BytePortAdapter(pit, Pit8254.PortCount), "pit");
        ports.Register(SystemControlPortB.Port, 1, new BytePortAdapter(pit.SpeakerPort, 1), "port61");

        var rtc = new CmosRtc(builder.Clock, builder.Timers, irq8);
        ulong below4G = Math.Min(options.MemorySizeInBytes, GuestMemoryLayout.LowMemoryEnd);
        ulong above4G = options.MemorySizeInBytes - below4G;
        rtc.SetMemoryLayout(below4G, above4G, vcpus);
        ports.Register(CmosRtc.BasePort, CmosRtc.PortCount, new BytePortAdapter(rtc, CmosRtc.PortCount), "rtc");

        var com1 = builder.AddSerialPort(pic, Uart16550.Com1Port, 4, options.SerialOutput, "com1");

        var a20 = new A20Gate();
        var i8042 = new I8042Controller(builder.Control, a20, IsaLine(pic, apic, 1), IsaLine(pic, apic, 12), ioLock);
        ports.Register(I8042Controller.DataPort, 1, new BytePortAdapter(i8042, 1), "i8042-data");
        ports.Register(I8042Controller.CommandPort, 1, new BytePortAdapter(i8042, 1, I8042Controller.CommandRegister), "i8042-command");
        var port92 = new FastA20Port(builder.Control, a20);
        ports.Register(FastA20Port.Port, 1, new BytePortAdapter(port92, 1), "port92");

        var debugCon = new DebugConsole(options.DebugConsoleOutput, ioLock: ioLock);
        ports.Register(DebugConsole.SeaBiosPort, 1, new BytePortAdapter(debugCon, 1), "debugcon-402");
        ports.Register(DebugConsole.BochsPort, 1, new BytePortAdapter(debugCon, 1), "debugcon-e9");

        var debugExit = new DebugExitDevice(builder.Control);
        ports.Register(DebugExitDevice.DefaultPort, DebugExitDevice.PortCount, debugExit, "isa-debug-exit");

        var ferr = new FerrLatch(IsaLine(pic, apic, FerrLatch.Irq), ioLock);
        ports.Register(FerrLatch.Port, 1, new BytePortAdapter(ferr, 1), "ferr-irq13");
        builder.FpuErrorLine = ferr;

        var post = new PostCodePort();
        ports.Register(PostCodePort.DefaultPort, 1, new BytePortAdapter(post, 1), "post");

        var fwCfg = new FwCfgDevice(builder.Memory);
        Span<byte> buffer = stackalloc byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(buffer, options.MemorySizeInBytes);
        fwCfg.SetItem(FwCfgDevice.RamSizeKey, buffer);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(buffer, (ushort)vcpus);
        fwCfg.SetItem(FwCfgDevice.CpuCountKey, buffer[..2]);
        fwCfg.SetItem(FwCfgDevice.MaxCpuCountKey, buffer[..2]);
        fwCfg.AddFile("etc/e820", FwCfgDevice.BuildE820(E820(below4G, above4G)));
        // QEMU's default reboot timeout (-1): after a failed boot, firmware waits instead of rebooting; a reboot would
        // end the run here anyway (MachineStopReason.Reset).
        fwCfg.AddFile("etc/boot-fail-wait", [0xFF, 0xFF, 0xFF, 0xFF]);
        if (options.FirmwareSerialConsole)
        {
            fwCfg.AddFile("etc/sercon-port", [Uart16550.Com1Port & 0xFF, Uart16550.Com1Port >> 8]);
        }

        ports.Register(FwCfgDevice.ControlPort, 2, fwCfg.ControlPorts, "fw_cfg");
        ports.Register(FwCfgDevice.DmaPort, 8, fwCfg.DmaPorts, "fw_cfg-dma");

        var devices = new PcDevices(com1, pic, pit, rtc, i8042, a20, port92, debugCon, debugExit, post, fwCfg) { Apic = apic, Hpet = hpet };
        builder.AddDevice(pic);
        builder.AddDevice(pit);
        builder.AddDevice(rtc);
        builder.AddDevice(i8042);
        builder.AddDevice(a20);
        builder.AddDevice(port92);
        builder.AddDevice(debugCon);
        builder.AddDevice(debugExit);
        builder.AddDevice(post);
        builder.AddDevice(ferr);
        builder.AddDevice(fwCfg);
        builder.AddDevice(devices);
        return devices;
    }

    /// <summary>Adds a 16550A at <paramref name="basePort"/> on IRQ <paramref name="irq"/> (COM2: 0x2F8/3, COM3: 0x3E8/4, COM4: 0x2E8/3).</summary>
    /// <exception cref="Core.HypervisorConfigurationException">The ports are taken.</exception>
    public static Uart16550 AddSerialPort(this VirtualMachineBuilder builder, DualPic pic, ushort basePort, int irq, Stream? output, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(pic);
        ApicBus? apic = builder.Devices.OfType<ApicBus>().FirstOrDefault();
        var uart = new Uart16550(IsaLine(pic, apic, irq), output, builder.IoLock);
        builder.Ports.Register(basePort, Uart16550.PortCount, new BytePortAdapter(uart, Uart16550.PortCount),
            name ?? $"uart-0x{basePort:X}");
        builder.AddDevice(uart);
        return uart;
    }

    /// <summary>
    /// ISA IRQ <paramref name="irq"/> as the board wires it: to the 8259 and, with an APIC, to the I/O APIC pin of the
    /// same number, except IRQ 0 (the PIT), which goes to pin 2 as on QEMU's <c>pc</c> (and as the MP table and ACPI
    /// interrupt-source override on such boards say).
    /// </summary>
    private static IInterruptLine IsaLine(DualPic pic, ApicBus? apic, int irq) =>
        apic is null || irq == DualPic.CascadeIrq
            ? pic.GetLine(irq)
            : new SplitLine(pic.GetLine(irq), apic.IoApic.GetPin(irq == 0 ? 2 : irq));

    private sealed class SplitLine(IInterruptLine first, IInterruptLine second) : IInterruptLine
    {
        public void SetLevel(bool high)
        {
            first.SetLevel(high);
            second.SetLevel(high);
        }
    }

    /// <summary>A line several sources drive: high while any of them drives it high (an open-collector wired OR).</summary>
    private sealed class WiredOrLine(IInterruptLine output)
    {
        private int _high;

        public IInterruptLine NewInput() => new Input(this);

        private void Change(int delta)
        {
            bool was = _high > 0;
            _high += delta;
            if (was != _high > 0)
            {
                output.SetLevel(_high > 0);
            }
        }

        private sealed class Input(WiredOrLine wire) : IInterruptLine
        {
            private bool _level;

            public void SetLevel(bool high)
            {
                if (high != _level)
                {
                    _level = high;
                    wire.Change(high ? 1 : -1);
                }
            }
        }
    }

    /// <summary>The 8259's INTR output: with an APIC it reaches every local APIC's LINT0; stops go to the machine.</summary>
    private sealed class PicOutput(IMachineControl machine) : IMachineControl
    {
        public ApicBus? Apic { get; set; }

        public void RequestStop(MachineStopReason reason, int exitStatus, string? detail = null) =>
            machine.RequestStop(reason, exitStatus, detail);

        public void NotifyInterruptPending()
        {
            if (Apic is { } apic)
            {
                apic.OnPicOutputRaised();
            }
            else
            {
                machine.NotifyInterruptPending();
            }
        }
    }

    /// <summary>
    /// Maps the image read-only so that it ends at 4 GiB, and a writable RAM copy of its last 128 KiB (or all of it)
    /// ending at 1 MiB.
    /// </summary>
    private static void AddFirmwareWithWritableLowCopy(VirtualMachineBuilder builder, ReadOnlySpan<byte> image)
    {
        builder.Memory.AddRom(new Core.Memory.GuestAddress(0x1_0000_0000UL - (ulong)image.Length), image, "firmware");
        int lowSize = Math.Min(image.Length, 128 * 1024);
        var lowStart = new Core.Memory.GuestAddress(0x100000UL - (ulong)lowSize);
        builder.Memory.AddRam(lowStart, (ulong)lowSize, "firmware-low");
        builder.Memory.Write(lowStart, image[^lowSize..]);
    }

    /// <summary>
    /// The e820 map QEMU's PC hands firmware in <c>etc/e820</c>: the RAM below 4 GiB as one range from 0 (firmware
    /// reserves the legacy areas itself) and the RAM from 4 GiB up, both type 1 (usable).
    /// </summary>
    private static IEnumerable<(ulong, ulong, uint)> E820(ulong below4G, ulong above4G)
    {
        yield return (0, below4G, 1);
        if (above4G > 0)
        {
            yield return (0x1_0000_0000, above4G, 1);
        }
    }
}
