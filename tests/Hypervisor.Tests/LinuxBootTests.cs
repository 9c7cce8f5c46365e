using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Hypervisor.Core.Boot;
using Hypervisor.Core.Machine;
using Hypervisor.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Hypervisor.Tests;

// Debian's stock cloud kernel boots directly (no firmware) on tcg to an /init built here from busybox-static, which
// prints a marker with the kernel release it sees and powers off through ACPI; the same files boot under
// qemu-system-x86_64 -kernel/-initrd/-append in the same test.
public partial class LinuxBootTests
{
    private const string Marker = LinuxInitramfs.Marker;
    private const string CommandLine = LinuxInitramfs.CommandLine;

    private static byte[] BuildInitramfs() => LinuxInitramfs.Build();

    [Test]
    public void DebianKernelBootsToInitAndPowersOffOnTcgAsUnderQemu()
    {
        (string ours, string qemuSerial, VirtualMachine vm, MachineRunResult result) = BootBoth(vcpus: 1);
        using VirtualMachine machine = vm;

        Assert.That(result.Reason, Is.EqualTo(MachineStopReason.PowerOff), $"stopped by {result.Reason}: {result.Detail}\n{Tail(ours)}");
        Assert.That(result.ExitStatus, Is.Zero);

        // The banner is the kernel's own: the same line on both machines, naming the release /init reports.
        string banner = Banner().Match(ours).Value;
        Assert.That(banner, Is.Not.Empty, Tail(ours));
        Assert.That(banner, Is.EqualTo(Banner().Match(qemuSerial).Value));
        string release = banner.Split(' ')[2];
        string markerLine = MarkerLine().Match(ours).Value.TrimEnd('\r');
        Assert.That(markerLine, Is.EqualTo($"{Marker} release={release}"));
        Assert.That(MarkerLine().Match(qemuSerial).Value.TrimEnd('\r'), Is.EqualTo(markerLine));

        // The kernel read what the loader wrote: the command line and the e820 map it prints from boot_params.
        Assert.That(ours, Does.Contain("Command line: " + CommandLine));
        IReadOnlyList<E820Entry> expected = E820Entry.FromMemoryMap(vm.Memory);
        var seen = E820Line().Matches(ours).Select(m => (
            ulong.Parse(m.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            ulong.Parse(m.Groups[2].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture) + 1,
            m.Groups[3].Value)).ToArray();
        Assert.That(seen, Is.EqualTo(expected.Select(e => (e.Start.Value, e.End.Value, e.Type == E820Type.Ram ? "usable" : "reserved")).ToArray()));

        // ACPI: the kernel found our RSDP in the BIOS area, interpreted the DSDT's \_S5 and used it to power off.
        Assert.That(ours, Does.Contain("ACPI: RSDP 0x00000000000E0000"));
        Assert.That(ours, Does.Contain("ACPI: PM: (supports S0 S5)"));
        Assert.That(ours, Does.Not.Contain("Incorrect checksum"));
        Assert.That(ours, Does.Contain("reboot: Power down"));
        if (vm.GetDevice<Hypervisor.Devices.PcDevices>()?.Apic is not null)
        {
            // The MADT: the kernel took its interrupt configuration from it and routes the timer through the IOAPIC.
            Assert.That(ours, Does.Contain("ACPI: Using ACPI (MADT) for SMP configuration information"));
            Assert.That(IoApicLine().Match(ours).Value, Is.EqualTo("IOAPIC[0]: apic_id 0, version 32, address 0xfec00000, GSI 0-23"));
            Assert.That(IoApicLine().Match(ours).Value, Is.EqualTo(IoApicLine().Match(qemuSerial).Value));
        }

        if (vm.GetDevice<Hypervisor.Devices.PcDevices>()?.Hpet is not null)
        {
            // The HPET: the kernel found it through the ACPI HPET table and describes it as it does QEMU's (same address,
            // IRQs, comparators and frequency). With it as the clocksource watchdog instead of PIT jiffies, which a slow
            // host loses, the TSC stays stable and becomes the clocksource, as under QEMU.
            string[] hpetLines = HpetLine().Matches(ours).Select(m => m.Value.TrimEnd('\r')).ToArray();
            Assert.That(hpetLines, Has.Length.EqualTo(2), Tail(ours));
            Assert.That(hpetLines[0], Is.EqualTo("hpet0: at MMIO 0xfed00000, IRQs 2, 8, 0"));
            Assert.That(hpetLines, Is.EqualTo(HpetLine().Matches(qemuSerial).Select(m => m.Value.TrimEnd('\r')).ToArray()));
            Assert.That(ours, Does.Not.Contain("Marking TSC unstable"));
            Assert.That(SwitchedToTsc().IsMatch(ours), Is.True, "the kernel did not switch to the TSC clocksource");
        }
    }

    [Test]
    public void DebianKernelBringsUpTwoVcpusOnTcgAsUnderQemu()
    {
        // Two vCPUs, each on its own host thread: the kernel starts CPU 1 with INIT and start-up IPIs through our local
        // APIC, runs its real-mode trampoline, and schedules /init on either. QEMU is given the same topology (one core
        // per package, as our CPUID describes it; QEMU 7.2's plain -smp 2 would be one package of two cores).
        (string ours, string qemuSerial, VirtualMachine vm, MachineRunResult result) = BootBoth(vcpus: 2, "-smp", "2,sockets=2,cores=1");
        using VirtualMachine machine = vm;

        Assert.That(result.Reason, Is.EqualTo(MachineStopReason.PowerOff), $"stopped by {result.Reason}: {result.Detail}\n{Tail(ours)}");
        Assert.That(qemuSerial, Does.Contain("smp: Brought up 1 node, 2 CPUs"), $"QEMU's reference boot did not bring up two CPUs:\n{Tail(qemuSerial)}");
        Assert.That(SmpLines(ours), Is.EqualTo(SmpLines(qemuSerial)), Tail(ours));
        Assert.That(SmpLines(ours), Has.Length.EqualTo(4), Tail(ours));
        Assert.That(CpusLine().Match(ours).Value, Is.EqualTo($"{LinuxInitramfs.CpusMarker} 2"), Tail(ours));
        Assert.That(CpusLine().Match(qemuSerial).Value, Is.EqualTo($"{LinuxInitramfs.CpusMarker} 2"));
        Assert.That(ours, Does.Contain("reboot: Power down"));

        // What the kernel found in our MADT: two processors, allowed and booted.
        static string[] SmpLines(string log) => SmpLine().Matches(log).Select(m => m.Value.TrimEnd('\r')).ToArray();
    }

    /// <summary>
    /// Boots the kernel and the /init archive under QEMU (with <paramref name="qemuArguments"/>) and then on tcg with
    /// <paramref name="vcpus"/> vCPUs; the caller owns the returned machine.
    /// </summary>
    private static (string Ours, string Qemu, VirtualMachine Machine, MachineRunResult Result) BootBoth(int vcpus, params string[] qemuArguments)
    {
        string kernelPath = LinuxKernelAsset.Require();
        byte[] initrd = BuildInitramfs();
        string initrdPath = Path.Combine(Path.GetTempPath(), $"hv-initrd-{Guid.NewGuid():N}.cpio");
        File.WriteAllBytes(initrdPath, initrd);
        string qemuSerial;
        int qemuExit;
        try
        {
            (qemuSerial, qemuExit) = RunQemu(kernelPath, initrdPath, TimeSpan.FromMinutes(3), qemuArguments);
        }
        finally
        {
            File.Delete(initrdPath);
        }

        Assert.That(qemuSerial, Does.Contain(Marker), $"QEMU itself did not reach /init (exit {qemuExit}); the reference run is broken:\n{Tail(qemuSerial)}");

        var services = new ServiceCollection();
        services.AddHypervisor(o =>
        {
            o.Accelerator = "tcg";
            o.Vcpus = vcpus;
        }).AddAllAccelerators();
        using ServiceProvider provider = services.BuildServiceProvider();
        var serial = new MarkerStream(Marker + " release=");
        var clock = Stopwatch.StartNew();
        VirtualMachine vm = provider.GetRequiredService<IVirtualMachineFactory>().Create(new MachineRequest
        {
            Kernel = File.ReadAllBytes(kernelPath),
            Initrd = initrd,
            KernelCommandLine = CommandLine,
            Memory = "128M",
            SerialOutput = serial,
        });
        TimeSpan toMarker = TimeSpan.Zero;
        serial.MarkerSeen.ContinueWith(_ => toMarker = clock.Elapsed, TaskScheduler.Default);
        MachineRunResult result = vm.Run(new MachineRunOptions(Timeout: TimeSpan.FromMinutes(12)));
        TestContext.Out.WriteLine(
            $"tcg, {vcpus} vCPU(s): machine creation to /init marker {toMarker.TotalSeconds:0.0} s, run {result.Elapsed.TotalSeconds:0.0} s, " +
            $"{result.Instructions} instructions, {result.Exits} exits");
        return (Encoding.Latin1.GetString(serial.ToArray()), qemuSerial, vm, result);
    }

    /// <summary>Boots the kernel under QEMU TCG; returns COM1's output and QEMU's exit code (-1 on timeout).</summary>
    internal static (string Serial, int ExitCode) RunQemu(string kernel, string initrd, TimeSpan timeout, params string[] extraArguments)
    {
        string qemu = Qemu.RequireBinary();
        var psi = new ProcessStartInfo(qemu)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string a in new[]
                 {
                     "-accel", "tcg", "-m", "128", "-kernel", kernel, "-initrd", initrd, "-append", CommandLine,
                     "-nographic", "-no-reboot",
                 }.Concat(extraArguments))
        {
            psi.ArgumentList.Add(a);
        }

        using Process p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = new MemoryStream();
        Task copy = p.StandardOutput.BaseStream.CopyToAsync(stdout);
        Task<string> err = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            copy.Wait(TimeSpan.FromSeconds(5));
            return (Encoding.Latin1.GetString(stdout.ToArray()), -1);
        }

        copy.Wait(TimeSpan.FromSeconds(10));
        err.Wait(TimeSpan.FromSeconds(5));
        return (Encoding.Latin1.GetString(stdout.ToArray()), p.ExitCode);
    }

    private static string Tail(string log) => log.Length <= 4000 ? log : log[^4000..];

    [GeneratedRegex(@"Linux version \S+ \([^\r\n]*")]
    private static partial Regex Banner();

    // A release never holds '[': the kernel's own console lines may interleave with /init's ("...-amd64[   50.75] hpet: ...").
    [GeneratedRegex(Marker + @" release=[^\s\[]*")]
    private static partial Regex MarkerLine();

    [GeneratedRegex(@"IOAPIC\[0\]: [^\r\n]*")]
    private static partial Regex IoApicLine();

    [GeneratedRegex(@"(smpboot: Allowing [^\r\n]*|smp: Brought up [^\r\n]*|smpboot: Max logical packages: [^\r\n]*|smpboot: Total of \d+ processors activated)")]
    private static partial Regex SmpLine();

    [GeneratedRegex(LinuxInitramfs.CpusMarker + @" \d+")]
    private static partial Regex CpusLine();

    [GeneratedRegex(@"hpet0: [^\r\n]*")]
    private static partial Regex HpetLine();

    [GeneratedRegex(@"clocksource: Switched to clocksource tsc\r?\n")]
    private static partial Regex SwitchedToTsc();

    [GeneratedRegex(@"BIOS-e820: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] (usable|reserved)")]
    private static partial Regex E820Line();
}
