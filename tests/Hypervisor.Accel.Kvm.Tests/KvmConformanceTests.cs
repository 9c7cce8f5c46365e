using System.Runtime.Versioning;
using System.Text;
using Hypervisor.Core.Machine;
using Hypervisor.Guests;
using Hypervisor.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Hypervisor.Accel.Kvm.Tests;

/// <summary>
/// The built-in demo firmware (real mode → 32-bit protected mode → 64-bit long mode, COM1 output, isa-debug-exit) on
/// kvm, compared byte for byte with tcg in the same process (tcg itself is compared with QEMU in Hypervisor.Tests),
/// and with facts the guest computes (π(100000) = 9592, CRC-32 check value of "123456789").
/// </summary>
[TestFixture]
[Category("Kvm")]
[NonParallelizable]
[SupportedOSPlatform("linux")]
public sealed class KvmConformanceTests
{
    [SetUp]
    public void RequireKvm() => KvmHost.RequireKvm();

    [Test]
    public void DemoGuestGivesTheSameSerialOutputAndExitStatusOnKvmAsOnTcg()
    {
        byte[] image = WithAccessedBitsPreset(DemoGuest.Build());
        (string kvmSerial, MachineRunResult kvm, string kvmName) = RunDemo("kvm", image);
        (string tcgSerial, MachineRunResult tcg, string tcgName) = RunDemo("tcg", image);
        Assert.Multiple(() =>
        {
            Assert.That(kvmName, Is.EqualTo("kvm"));
            Assert.That(tcgName, Is.EqualTo("tcg"));
            Assert.That(kvm.Reason, Is.EqualTo(MachineStopReason.DebugExit), kvm.Detail);
            Assert.That(kvm.ExitStatus, Is.EqualTo((DemoGuest.DebugExitValue << 1) | 1));
            Assert.That(kvmSerial, Does.Contain("64-bit long mode\r\n"));
            Assert.That(kvmSerial, Does.Contain("primes below 100000: 9592\r\n"));
            Assert.That(kvmSerial, Does.Contain("crc32(\"123456789\") = 0xcbf43926\r\n"));
            Assert.That(kvmSerial, Is.EqualTo(tcgSerial));
            Assert.That(kvm.ExitStatus, Is.EqualTo(tcg.ExitStatus));
        });
    }

    /// <summary>
    /// Sets the accessed bit of the demo's GDT descriptors, as SeaBIOS does in its own GDT. The demo keeps its GDT in
    /// the firmware ROM with accessed bits clear, so loading CS makes the CPU write the descriptor; KVM maps ROM
    /// read-only and cannot complete that implicit write, so the far jump to protected mode never retires (the run
    /// stays cancellable). Real flash and tcg drop the write. The same patched image runs on both accelerators.
    /// </summary>
    private static byte[] WithAccessedBitsPreset(byte[] image)
    {
        ulong[] descriptors = [0x00CF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF, 0x00AF_9A00_0000_FFFF];
        foreach (ulong descriptor in descriptors)
        {
            for (int offset = 0; offset + 8 <= image.Length; offset += 8)
            {
                if (BitConverter.ToUInt64(image, offset) == descriptor)
                {
                    BitConverter.TryWriteBytes(image.AsSpan(offset), descriptor | (1UL << 40));
                }
            }
        }

        return image;
    }

    private static (string Serial, MachineRunResult Result, string Accelerator) RunDemo(string accelerator, byte[] image)
    {
        var services = new ServiceCollection();
        services.AddHypervisor(o => o.Accelerator = accelerator).AddAllAccelerators();
        using ServiceProvider provider = services.BuildServiceProvider();
        using var serial = new MemoryStream();
        using VirtualMachine vm = provider.GetRequiredService<IVirtualMachineFactory>().Create(new MachineRequest { Firmware = image, SerialOutput = serial });
        // The tcg interpreter inside the kvm-guest tool's emulated machine runs the demo's prime sieve in about a minute,
        // more when the suite has loaded the process; only a hang should fail here.
        MachineRunResult result = vm.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(KvmHost.InEmulatedGuest ? 300 : 60)));
        return (Encoding.Latin1.GetString(serial.ToArray()), result, vm.AcceleratorName);
    }
}
