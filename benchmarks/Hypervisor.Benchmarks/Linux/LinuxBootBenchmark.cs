using System.Diagnostics;
using Hypervisor.Benchmarks.Running;
using Hypervisor.Core.Machine;
using Hypervisor.Hosting;
using Hypervisor.Tests;

namespace Hypervisor.Benchmarks.Linux;

/// <summary>
/// <c>--linux [--kernel BZIMAGE]</c>: wall time from machine creation to the /init marker, booting Debian's kernel with
/// an initramfs built here from busybox-static, on our accelerator and on <c>qemu-system-x86_64 -accel tcg</c> with the
/// same files and command line, printed side by side with their ratio. Without <c>--accelerator</c> it boots on the
/// interpreter (<c>tcg,jit=off</c>) and on the JIT (<c>tcg,jit=on</c>) so the two tiers are compared in one run;
/// <c>--no-qemu</c> leaves QEMU out. The kernel defaults to HV_LINUX_KERNEL (set by
/// tests/assets/fetch-linux-kernel.sh's users).
/// </summary>
public static class LinuxBootBenchmark
{
    private const string Marker = LinuxInitramfs.Marker;
    private const string CommandLine = LinuxInitramfs.CommandLine;

    /// <summary>
    /// Boots once on each accelerator of <paramref name="specs"/> (in order) and once on QEMU unless
    /// <paramref name="withQemu"/> is false, and prints the times and their ratios; returns 0 when all reached the marker.
    /// </summary>
    public static int Run(TextWriter output, string? kernelPath, IReadOnlyList<string> specs, bool withQemu = true)
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

        // Ours: from the factory call (machine creation, kernel load) to the marker on COM1, once per accelerator.
        // Process CPU time (all threads, the JIT's background compiler included) is printed too: on a shared machine it
        // is steadier than wall time.
        var rows = new List<(string Spec, TimeSpan? Time, MachineRunResult Result, string Counters)>();
        foreach (string spec in specs)
        {
            var serial = new MarkerStream(Marker + " release=");
            var serialOut = new ThreadCpuAtMarker(serial);
            var clock = Stopwatch.StartNew();
            TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            TimeSpan? ours = null;
            MachineRunResult result;
            string counters = "";
            using (VirtualMachine vm = BenchMachine.Factory.Create(new MachineRequest
                   {
                       Accelerator = spec, Kernel = kernel, Initrd = initrd, KernelCommandLine = CommandLine, SerialOutput = serialOut,
                   }))
            {
                serial.MarkerSeen.ContinueWith(_ => ours = clock.Elapsed, TaskScheduler.Default);
                result = vm.Run(new MachineRunOptions(TimeSpan.FromMinutes(15)));
                if (vm.Vcpus[0].Statistics.Details is { } details)
                {
                    counters = string.Join(", ", details.Where(kv => kv.Key.StartsWith("jit.", StringComparison.Ordinal)).Select(kv => $"{kv.Key}={kv.Value}"));
                }
            }

            serial.MarkerSeen.Wait(TimeSpan.FromSeconds(1));
            TimeSpan cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
            string vcpu = serialOut.AtMarker is { } at ? $", {at.Thread} thread cpu at the marker {at.Cpu.TotalSeconds:0.00} s" : "";
            counters = $"process cpu {cpu.TotalSeconds:0.00} s{vcpu}" + (counters.Length > 0 ? "; " + counters : "");
            rows.Add((spec, ours, result, counters));
        }

        // QEMU: from process start to the marker on its stdout.
        TimeSpan? qemu = null;
        if (withQemu)
        {
            string initrdPath = Path.Combine(Path.GetTempPath(), $"hv-bench-initrd-{Guid.NewGuid():N}.cpio");
            File.WriteAllBytes(initrdPath, initrd);
            try
            {
                qemu = RunQemu(kernelPath, initrdPath);
            }
            finally
            {
                File.Delete(initrdPath);
            }
        }

        output.WriteLine($"linux boot to /init ({Path.GetFileName(kernelPath)}, -append \"{CommandLine}\")");
        foreach ((string spec, TimeSpan? time, MachineRunResult result, string counters) in rows)
        {
            output.WriteLine($"  {spec,-14} {Format(time)}   (run ended: {result.Reason}, {result.Instructions} instructions)");
            output.WriteLine($"  {"",-14} {counters}");
        }

        if (withQemu)
        {
            output.WriteLine($"  {"qemu tcg",-14} {Format(qemu)}");
        }

        bool all = rows.All(r => r.Time is not null);
        if (all && rows.Count > 1)
        {
            for (int i = 1; i < rows.Count; i++)
            {
                output.WriteLine($"  ratio {rows[i].Spec}/{rows[0].Spec}: {rows[i].Time!.Value.TotalSeconds / rows[0].Time!.Value.TotalSeconds:0.00}x");
            }
        }

        if (all && qemu is { } q)
        {
            foreach ((string spec, TimeSpan? time, _, _) in rows)
            {
                output.WriteLine($"  ratio {spec}/qemu: {time!.Value.TotalSeconds / q.TotalSeconds:0.0}x");
            }
        }

        return all && (qemu is not null || !withQemu) ? 0 : 1;
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
