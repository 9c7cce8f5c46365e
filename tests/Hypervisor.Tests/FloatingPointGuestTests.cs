using System.Text;
using Hypervisor.Core.Machine;
using Hypervisor.Guests;
using Hypervisor.Hosting;
using Hypervisor.Tests.Guests;
using Microsoft.Extensions.DependencyInjection;

namespace Hypervisor.Tests;

/// <summary>
/// Issue 7's guests on the tcg CPU, compared with <c>qemu-system-x86_64 -accel tcg -cpu max</c> running the same image
/// (QEMU's TCG checks CPUID before it decodes SSE4.x and XSAVE, and its default qemu64 model lacks them).
/// </summary>
public class FloatingPointGuestTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static readonly string[] QemuArguments =
        ["-M", "pc", "-cpu", "max", "-display", "none", "-serial", "stdio", "-monitor", "none", "-m", "128"];

    [TestCase(StateSwitch.Fxsave)]
    [TestCase(StateSwitch.Xsave)]
    [TestCase(StateSwitch.Xsaveopt)]
    public void TaskSwitchKeepsEachTasksX87AndSseStateAsQemuDoes(StateSwitch how)
    {
        byte[] image = FloatingPointGuests.TaskSwitch(how);
        (string serial, MachineRunResult result) = Run(image);
        TestContext.Out.WriteLine(serial);
        Assert.That(result.Reason, Is.EqualTo(MachineStopReason.DebugExit), result.Detail + Environment.NewLine + serial);
        Assert.That(result.ExitStatus, Is.EqualTo((FloatingPointGuests.ExitValue << 1) | 1));
        Assert.That(serial, Does.EndWith(FloatingPointGuests.Done));

        (byte[] qemuSerial, int qemuExit) = Qemu.RunFirmware(image, Timeout, null, QemuArguments);
        Assert.That(serial, Is.EqualTo(Encoding.Latin1.GetString(qemuSerial)));
        Assert.That(result.ExitStatus, Is.EqualTo(qemuExit));
    }

    /// <summary>
    /// The switching itself matters: the same guest with every save and restore of one mechanism must print the same
    /// as with another (FXSAVE vs XSAVE vs XSAVEOPT), and differently from a run where task B never gets its state back.
    /// </summary>
    [Test]
    public void AllThreeMechanismsPrintTheSameTaskStates()
    {
        (string fx, _) = Run(FloatingPointGuests.TaskSwitch(StateSwitch.Fxsave));
        (string xs, _) = Run(FloatingPointGuests.TaskSwitch(StateSwitch.Xsave));
        (string xo, _) = Run(FloatingPointGuests.TaskSwitch(StateSwitch.Xsaveopt));
        Assert.That(xs, Is.EqualTo(fx));
        Assert.That(xo, Is.EqualTo(fx));
        string[] lines = fx.Split("\r\n");
        Assert.That(lines[0], Is.Not.EqualTo(lines[2].Replace("task B", "task A", StringComparison.Ordinal)), "the tasks' XMM states differ");
    }

    private static ServiceProvider Provider()
    {
        var services = new ServiceCollection();
        services.AddHypervisor(o => o.Accelerator = "tcg").AddAllAccelerators();
        return services.BuildServiceProvider();
    }

    internal static (string Serial, MachineRunResult Result) Run(byte[] image)
    {
        using ServiceProvider provider = Provider();
        using var serial = new MemoryStream();
        using VirtualMachine vm = provider.GetRequiredService<IVirtualMachineFactory>().Create(new MachineRequest
        {
            Firmware = image,
            SerialOutput = serial,
        });
        Assert.That(vm.AcceleratorName, Is.EqualTo("tcg"));
        MachineRunResult result = vm.Run(new MachineRunOptions(Timeout: Timeout));
        return (Encoding.Latin1.GetString(serial.ToArray()), result);
    }
}
