using System.Runtime.Versioning;
using System.Text;
using Hypervisor.Core.Machine;
using Hypervisor.Hosting;
using Hypervisor.Tests.Guests;
using Microsoft.Extensions.DependencyInjection;

namespace Hypervisor.Accel.Kvm.Tests;

/// <summary>
/// The userspace local APIC and I/O APIC under real KVM (no in-kernel irqchip): the 64-bit APIC guest (local APIC
/// timer periodic and one-shot, CR8 against a self-IPI, the PIT through the I/O APIC with the 8259 masked) and an 8259
/// timer guest that never touches the APIC, each compared with tcg in the same process and with the SDM's expectations
/// (tcg is compared with QEMU in Hypervisor.Tests).
/// </summary>
[TestFixture]
[Category("Kvm")]
[NonParallelizable]
[SupportedOSPlatform("linux")]
public sealed class KvmApicTests
{
    [SetUp]
    public void RequireKvm() => KvmHost.RequireKvm();

    [Test]
    public void ApicGuestGivesTheSameOutputOnKvmAsOnTcg()
    {
        byte[] image = ApicGuests.Build();
        (string kvmSerial, MachineRunResult kvm, string kvmName) = Run("kvm", image);
        (string tcgSerial, MachineRunResult tcg, _) = Run("tcg", image);
        Assert.Multiple(() =>
        {
            Assert.That(kvmName, Is.EqualTo("kvm"));
            Assert.That(kvm.Reason, Is.EqualTo(MachineStopReason.DebugExit), kvm.Detail);
            Assert.That(kvmSerial, Is.EqualTo(ApicGuests.ExpectedOutput));
            Assert.That(kvm.ExitStatus, Is.EqualTo((ApicGuests.ExitValue << 1) | 1));
            Assert.That(kvmSerial, Is.EqualTo(tcgSerial));
            Assert.That(kvm.ExitStatus, Is.EqualTo(tcg.ExitStatus));
        });
    }

    [Test]
    public void PicTimerGuestWorksThroughLint0OnKvm()
    {
        byte[] image = DeviceGuests.Timer(GuestMode.Long, 20, DeviceGuests.OneKilohertzDivisor);
        (string serial, MachineRunResult result, _) = Run("kvm", image);
        Assert.That(serial, Is.EqualTo(DeviceGuests.TimerLine(GuestMode.Long, 20)), result.Detail);
        Assert.That(result.ExitStatus, Is.EqualTo((DeviceGuests.TimerExitValue(GuestMode.Long) << 1) | 1));
    }

    private static (string Serial, MachineRunResult Result, string Accelerator) Run(string accelerator, byte[] image)
    {
        var services = new ServiceCollection();
        services.AddHypervisor(o => o.Accelerator = accelerator).AddAllAccelerators();
        using ServiceProvider provider = services.BuildServiceProvider();
        using var serial = new MemoryStream();
        using VirtualMachine vm = provider.GetRequiredService<IVirtualMachineFactory>().Create(new MachineRequest { Firmware = image, SerialOutput = serial });
        MachineRunResult result = vm.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(120)));
        return (Encoding.Latin1.GetString(serial.ToArray()), result, vm.AcceleratorName);
    }
}
