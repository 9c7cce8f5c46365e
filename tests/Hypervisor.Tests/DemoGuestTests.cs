using System.Text;
using Hypervisor.Core.Machine;
using Hypervisor.Guests;
using Hypervisor.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Hypervisor.Tests;

public class DemoGuestTests
{
    // Independent facts the demo computes: pi(100000) = 9592, and the CRC-32 check value of "123456789".
    private const string ExpectedPrimes = "primes below 100000: 9592\r\n";
    private const string ExpectedCrc = "crc32(\"123456789\") = 0xcbf43926\r\n";

    [Test]
    public void DemoRunsThroughEveryModeOnTcgWithCorrectResults()
    {
        (string serial, MachineRunResult result, string accelerator) = RunDemo("tcg");
        Assert.That(accelerator, Is.EqualTo("tcg"));
        Assert.That(serial, Does.Contain("real mode\r\n"));
        Assert.That(serial, Does.Contain("32-bit protected mode\r\n"));
        Assert.That(serial, Does.Contain("64-bit long mode\r\n"));
        Assert.That(serial, Does.Contain(ExpectedPrimes));
        Assert.That(serial, Does.Contain(ExpectedCrc));
        Assert.That(result.Reason, Is.EqualTo(MachineStopReason.DebugExit));
        Assert.That(result.ExitStatus, Is.EqualTo((DemoGuest.DebugExitValue << 1) | 1));
        Assert.That(result.Instructions, Is.GreaterThan(100_000));
    }

    [Test]
    public void DemoPrintsExactlyWhatQemuPrintsAndExitsTheSame()
    {
        byte[] image = DemoGuest.Build();
        (byte[] qemuSerial, int qemuExit) = Qemu.RunFirmware(image, TimeSpan.FromSeconds(60));
        (string serial, MachineRunResult result, _) = RunDemo("tcg");
        Assert.That(serial, Is.EqualTo(Encoding.Latin1.GetString(qemuSerial)));
        Assert.That(result.ExitStatus, Is.EqualTo(qemuExit));
    }

    internal static (string Serial, MachineRunResult Result, string Accelerator) RunDemo(string accelerator, byte[]? firmware = null)
    {
        var services = new ServiceCollection();
        services.AddHypervisor(o => o.Accelerator = accelerator).AddAllAccelerators();
        using ServiceProvider provider = services.BuildServiceProvider();
        using var serial = new MemoryStream();
        using VirtualMachine vm = provider.GetRequiredService<IVirtualMachineFactory>().Create(new MachineRequest
        {
            Firmware = firmware,
            SerialOutput = serial,
        });
        MachineRunResult result = vm.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(60)));
        return (Encoding.Latin1.GetString(serial.ToArray()), result, vm.AcceleratorName);
    }
}
