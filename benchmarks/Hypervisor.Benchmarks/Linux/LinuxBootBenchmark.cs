using System.Diagnostics;
using Hypervisor.Benchmarks.Running;
using Hypervisor.Core.Machine;
using Hypervisor.Hosting;
using Hypervisor.Tests;

namespace Hypervisor.Benchmarks.Linux;

/// <summary>
/// <c>--linux [--kernel BZIMAGE]</c>: wall time from machine creation to the /init marker, booting Debian's kernel with
/// an initramfs built here from busybox-static, on our accelerator and on <c>qemu-system-x86_64 -accel tcg</c> with the
/// same files and command line, printed side by side with their ratio. The kernel defaults to HV_LINUX_KERNEL (set by
/// tests/assets/fetch-linux-kernel.sh's users).
/// </summary>
public static class LinuxBootBenchmark
{
    private const string Marker = LinuxInitramfs.Marker;
    private const string CommandLine = LinuxInitramfs.CommandLine;

    /// <summary>Runs both boots once and prints the figures; returns 0 when both reached the marker.</summary>
    public static int Run(TextWriter output, string? kernelPath, string spec)
    {
        ArgumentNullException.ThrowIfNull(output);
        kernelPath ??= Environment.GetEnvironmentVariable("HV_LINUX_KERNEL");
        if (kernelPath is null || !File.Exists(kernelPath))
        {
            output.WriteLine("linux: no kernel: pass --kernel BZIMAGE or set HV_LINUX_KERNEL (tests/assets/fetch-linux-kernel.sh prints the path)");
            return 2;
        }

        if (LinuxInitramfs.MissingReason is { } missing)
        {
            output.WriteLine("linux: " + missing);
            return 2;
        }

        byte[] initrd = LinuxInitramfs.BuildArchive();
        byte[] kernel = File.ReadAllBytes(kernelPath);

        // Ours: from the factory call (machine creation, kernel load) to the marker on COM1.
        var serial = new MarkerStream(Marker + " release=");
        var clock = Stopwatch.StartNew();
        TimeSpan? ours = null;
        MachineRunResult result;
        using (VirtualMachine vm = BenchMachine.Factory.Create(new MachineRequest
               {
                   Accelerator = spec, Kernel = kernel, Initrd = initrd, KernelCommandLine = CommandLine, SerialOutput = serial,
               }))
        {
            serial.MarkerSeen.ContinueWith(_ => ours = clock.Elapsed, TaskScheduler.Default);
            result = vm.Run(new MachineRunOptions(TimeSpan.FromMinutes(15)));
        }

        // QEMU: from process start to the marker on its stdout.
        string initrdPath = Path.Combine(Path.GetTempPath(), $"hv-bench-initrd-{Guid.NewGuid():N}.cpio");
        File.WriteAllBytes(initrdPath, initrd);
        TimeSpan? qemu = null;
        try
        {
            qemu = RunQemu(kernelPath, initrdPath);
        }
        finally
        {
            File.Delete(initrdPath);
        }

        output.WriteLine($"linux boot to /init ({Path.GetFileName(kernelPath)}, -append \"{CommandLine}\")");
        output.WriteLine($"  {spec,-14} {Format(ours)}   (run ended: {result.Reason}, {result.Instructions} instructions)");
        output.WriteLine($"  {"qemu tcg",-14} {Format(qemu)}");
        if (ours is { } o && qemu is { } q)
        {
            output.WriteLine($"  ratio ours/qemu: {o.TotalSeconds / q.TotalSeconds:0.0}x");
            return 0;
        }

        return 1;
    }

    private static string Format(TimeSpan? t) => t is { } v ? $"{v.TotalSeconds,8:0.00} s" : "  no marker";

    private static TimeSpan? RunQemu(string kernel, string initrd)
    {
        string? binary = QemuRunner.FindBinary();
        if (binary is null)
        {
            return null;
        }

        var psi = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        foreach (string a in new[] { "-accel", "tcg", "-m", BenchMachine.Memory, "-kernel", kernel, "-initrd", initrd, "-append", CommandLine, "-nographic", "-no-reboot" })
        {
            psi.ArgumentList.Add(a);
        }

        var clock = Stopwatch.StartNew();
        using Process p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = new MarkerStream(Marker + " release=");
        Task copy = p.StandardOutput.BaseStream.CopyToAsync(stdout);
        _ = p.StandardError.ReadToEndAsync();
        TimeSpan? seen = null;
        stdout.MarkerSeen.ContinueWith(_ => seen = clock.Elapsed, TaskScheduler.Default);
        if (!p.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            p.Kill(entireProcessTree: true);
        }

        p.WaitForExit();
        copy.Wait(TimeSpan.FromSeconds(5));
        stdout.MarkerSeen.Wait(TimeSpan.FromSeconds(1));
        return seen;
    }
}
