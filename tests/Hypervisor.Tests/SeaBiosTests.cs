using System.Text;
using System.Text.RegularExpressions;
using Hypervisor.Core.Machine;
using Hypervisor.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Hypervisor.Tests;

// Debian's SeaBIOS, a firmware nobody here wrote, boots on our PC model to "No bootable device." as it does under
// qemu-system-x86_64 -M isapc; both runs happen in the test.
public partial class SeaBiosTests
{
    private const string BiosPath = "/usr/share/seabios/bios.bin";
    private const string Marker = "No bootable device.";

    [Test]
    public void SeaBiosBootsToNoBootableDeviceOnTcgAsUnderQemu()
    {
        if (!File.Exists(BiosPath))
        {
            Assert.Ignore($"{BiosPath} is missing (Debian package seabios; .ci/run installs it)");
        }

        byte[] bios = File.ReadAllBytes(BiosPath);
        string qemuDebugcon = Path.Combine(Path.GetTempPath(), $"hv-seabios-{Guid.NewGuid():N}.log");
        string qemuSerial;
        try
        {
            // -nographic is what makes QEMU hand SeaBIOS its serial console (fw_cfg etc/sercon-port); SeaBIOS's
            // debug output goes to port 0x402, so debugcon is placed there.
            (byte[] serial, _) = Qemu.RunFirmware(bios, TimeSpan.FromSeconds(60), Marker,
            [
                "-M", "isapc", "-nographic", "-m", "128",
                "-chardev", $"file,id=dbg,path={qemuDebugcon}", "-device", "isa-debugcon,iobase=0x402,chardev=dbg",
            ]);
            qemuSerial = Encoding.Latin1.GetString(serial);
        }
        finally
        {
            if (!File.Exists(qemuDebugcon))
            {
                File.WriteAllText(qemuDebugcon, string.Empty);
            }
        }

        string qemuDebug = File.ReadAllText(qemuDebugcon, Encoding.Latin1);
        File.Delete(qemuDebugcon);
        Assert.That(qemuSerial, Does.Contain(Marker), "QEMU itself did not reach the marker; the reference run is broken");

        var services = new ServiceCollection();
        services.AddHypervisor(o => o.Accelerator = "tcg").AddAllAccelerators();
        using ServiceProvider provider = services.BuildServiceProvider();
        var serialOut = new MarkerStream(Marker);
        var debugOut = new MemoryStream();
        using VirtualMachine vm = provider.GetRequiredService<IVirtualMachineFactory>().Create(new MachineRequest
        {
            Firmware = bios,
            SerialOutput = serialOut,
            DebugconOutput = debugOut,
        });
        using var stop = new CancellationTokenSource();
        serialOut.MarkerSeen.ContinueWith(_ => stop.Cancel(), TaskScheduler.Default);
        MachineRunResult result = vm.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(120)), stop.Token);
        string ourSerial = Encoding.Latin1.GetString(serialOut.ToArray());
        string ourDebug = Encoding.Latin1.GetString(debugOut.ToArray());

        Assert.That(result.Reason, Is.EqualTo(MachineStopReason.Cancelled), $"stopped by {result.Reason}: {result.Detail}\n{ourDebug}");
        Assert.That(ourSerial, Does.Contain(Marker));
        string qemuBanner = Banner().Match(qemuSerial).Value;
        Assert.That(qemuBanner, Is.Not.Empty);
        Assert.That(Banner().Match(ourSerial).Value, Is.EqualTo(qemuBanner));
        // The debug console's first lines (version and build) are the same firmware speaking on both machines.
        Assert.That(FirstLines(ourDebug, 2), Is.EqualTo(FirstLines(qemuDebug, 2)));
        Assert.That(Lines(ourSerial).Where(l => l.StartsWith("Booting from", StringComparison.Ordinal)),
            Is.SubsetOf(Lines(qemuSerial).Where(l => l.StartsWith("Booting from", StringComparison.Ordinal))));
    }

    private static string[] Lines(string text) =>
        text.Replace("\r", string.Empty, StringComparison.Ordinal).Split('\n').Select(l => Ansi().Replace(l, string.Empty)).ToArray();

    private static string[] FirstLines(string text, int count) => Lines(text).Take(count).ToArray();

    [GeneratedRegex(@"SeaBIOS \(version [^)]+\)")]
    private static partial Regex Banner();

    [GeneratedRegex(@"\x1b(\[[0-9;?]*[A-Za-z]|c)")]
    private static partial Regex Ansi();
}
