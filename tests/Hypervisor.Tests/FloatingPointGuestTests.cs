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

    private static readonly string[] FreestandingFlags =
    [
        "-O2", "-msse4.2", "-ffreestanding", "-nostdlib", "-fno-pic", "-fno-pie", "-no-pie", "-static", "-fno-stack-protector",
        "-fno-asynchronous-unwind-tables", "-fno-math-errno", "-mno-red-zone", "-Wl,--build-id=none", "-Wl,--no-warn-rwx-segments",
    ];

    /// <summary>
    /// A C numeric kernel (<see cref="NumericKernel"/>) compiled by gcc -O2 -msse4.2: as a flat image on our tcg and on
    /// QEMU, and as a host process. All three must print the same bytes; the image must actually contain the SSE4.1
    /// forms gcc's vectoriser picks (checked by decoding it), so that those are what is being compared.
    /// </summary>
    [Test]
    public void GccNumericKernelPrintsTheSameOnTcgQemuAndTheHost()
    {
        string gcc = FindTool("gcc") ?? throw new IgnoreException("gcc is not installed");
        string objcopy = FindTool("objcopy") ?? throw new IgnoreException("objcopy (binutils) is not installed");
        if (!System.Runtime.Intrinsics.X86.Sse42.IsSupported)
        {
            Assert.Ignore("the host cannot run SSE4.2 code natively");
        }

        string dir = Path.Combine(Path.GetTempPath(), $"hv-numeric-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "kernel.c"), NumericKernel.Source);
            File.WriteAllText(Path.Combine(dir, "link.ld"), NumericKernel.LinkerScript);
            Tool(gcc, dir, [.. FreestandingFlags, "-T", "link.ld", "-o", "kernel.elf", "kernel.c"]);
            Tool(objcopy, dir, ["-O", "binary", "kernel.elf", "kernel.bin"]);
            Tool(gcc, dir, ["-O2", "-msse4.2", "-fno-math-errno", "-DHOSTED", "-o", "native", "kernel.c"]);
            byte[] flat = File.ReadAllBytes(Path.Combine(dir, "kernel.bin"));
            string native = Tool(Path.Combine(dir, "native"), dir, []);

            Assert.That(Sse41Mnemonics(flat), Is.SupersetOf(new[] { "Pmulld", "Pminsd", "Pcmpgtq", "Roundsd", "Pmovsxwd" }),
                "gcc's SSE4.1 forms are in the image");
            Assert.That(native, Does.StartWith("numeric kernel\r\n").And.EndWith(NumericKernel.EndLine));

            byte[] image = FloatingPointGuests.FlatKernel(flat);
            (string serial, MachineRunResult result) = Run(image);
            Assert.That(result.Reason, Is.EqualTo(MachineStopReason.DebugExit), result.Detail + Environment.NewLine + serial);
            Assert.That(serial, Is.EqualTo(native), "tcg vs the host");
            Assert.That(result.ExitStatus, Is.EqualTo((FloatingPointGuests.ExitValue << 1) | 1));

            (byte[] qemuSerial, int qemuExit) = Qemu.RunFirmware(image, Timeout, null, QemuArguments);
            Assert.That(Encoding.Latin1.GetString(qemuSerial), Is.EqualTo(native), "QEMU vs the host");
            Assert.That(qemuExit, Is.EqualTo(result.ExitStatus));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static SortedSet<string> Sse41Mnemonics(byte[] code)
    {
        var found = new SortedSet<string>(StringComparer.Ordinal);
        var decoder = Iced.Intel.Decoder.Create(64, code, NumericKernel.LoadAddress);
        while (decoder.IP < NumericKernel.LoadAddress + (ulong)code.Length)
        {
            decoder.Decode(out Iced.Intel.Instruction ins);
            if (ins.CpuidFeatures.Contains(Iced.Intel.CpuidFeature.SSE4_1) || ins.CpuidFeatures.Contains(Iced.Intel.CpuidFeature.SSE4_2))
            {
                found.Add(ins.Mnemonic.ToString());
            }
        }

        return found;
    }

    private static string? FindTool(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':')
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    private static string Tool(string file, string workingDirectory, IEnumerable<string> arguments)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(file)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        using System.Diagnostics.Process p = System.Diagnostics.Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(60_000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{Path.GetFileName(file)} did not finish in 60 s");
        }

        Assert.That(p.ExitCode, Is.Zero, $"{Path.GetFileName(file)} {string.Join(' ', arguments)}: {stderr.Result}");
        return stdout.Result;
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
