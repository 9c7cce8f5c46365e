using BenchmarkDotNet.Running;
using Hypervisor.Benchmarks.Bdn;
using Hypervisor.Benchmarks.Quick;
using Hypervisor.Benchmarks.Running;
using Hypervisor.Benchmarks.Workloads;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;

namespace Hypervisor.Benchmarks;

/// <summary>
/// Entry point. <c>--quick</c> runs the side-by-side quick mode (optionally <c>--workloads a,b</c>); anything else is
/// passed to BenchmarkDotNet's switcher (for example <c>--filter *</c>); <c>--workloads a,b</c> restricts
/// either mode to the named workloads, and <c>--accelerator SPEC</c> (repeatable) to the named accelerators.
/// <c>--linux [--kernel BZIMAGE] [--no-qemu]</c> times a Linux boot to /init on each accelerator (default: jit=off and
/// jit=on) against QEMU TCG.
/// </summary>
public static class Program
{
    /// <summary>Runs the chosen mode.</summary>
    public static int Main(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        int i = Array.IndexOf(args, "--workloads");
        string[] only = i >= 0 && i + 1 < args.Length ? args[i + 1].Split(',', StringSplitOptions.RemoveEmptyEntries) : [];
        if (i >= 0)
        {
            args = args.Where((_, k) => k != i && k != i + 1).ToArray();
        }

        var accelerators = new List<string>();
        for (int k; (k = Array.IndexOf(args, "--accelerator")) >= 0 && k + 1 < args.Length;)
        {
            accelerators.Add(args[k + 1]);
            args = args.Where((_, j) => j != k && j != k + 1).ToArray();
        }

        AcceleratorCatalog.Only = accelerators;
        int image = Array.IndexOf(args, "--write-image");
        if (image >= 0 && image + 2 < args.Length)
        {
            // For reproducing a row by hand: qemu-system-x86_64 -bios FILE ... or hv run --bios FILE.
            File.WriteAllBytes(args[image + 2], WorkloadCatalog.Get(args[image + 1]).Image);
            return 0;
        }

        int once = Array.IndexOf(args, "--once");
        if (once >= 0 && once + 1 < args.Length)
        {
            return RunOnce(args[once + 1], accelerators.Count > 0 ? accelerators[0] : "tcg,jit=off");
        }

        if (args.Contains("--linux"))
        {
            int kernel = Array.IndexOf(args, "--kernel");
            return Linux.LinuxBootBenchmark.Run(Console.Out, kernel >= 0 && kernel + 1 < args.Length ? args[kernel + 1] : null,
                accelerators.Count > 0 ? accelerators : ["tcg,jit=off", "tcg,jit=on"], !args.Contains("--no-qemu"));
        }

        if (args.Contains("--quick"))
        {
            return QuickMode.Run(Console.Out, only);
        }

        GuestBenchmarks.OnlyWorkloads = only;

        // Say which accelerators are not benchmarked, and why, before and after BenchmarkDotNet's own output.
        AcceleratorCatalog.PrintSkipped(Console.Out);
        var summaries = BenchmarkSwitcher.FromTypes([typeof(GuestBenchmarks)]).Run(args);
        AcceleratorCatalog.PrintSkipped(Console.Out);
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }

    // --once NAME: one run with a 10 s budget, printing how it ended and the workload variables (for diagnosing a guest).
    private static int RunOnce(string name, string spec)
    {
        Workload w = WorkloadCatalog.Get(name);
        using var serial = new MemoryStream();
        using VirtualMachine vm = BenchMachine.Create(spec, w.Image, serial);
        MachineRunResult r = vm.Run(new MachineRunOptions(TimeSpan.FromSeconds(10)));
        var vars = new byte[32];
        vm.Memory.Read(new GuestAddress(GuestAsm.DataBase + GuestAsm.VarArea), vars);
        Console.WriteLine($"{name} on {spec}: {r.Reason} status {r.ExitStatus} ({r.Detail}); {r.Instructions} instructions, {r.Exits} exits in {r.Elapsed.TotalMilliseconds:0.0} ms");
        Console.WriteLine($"serial: {GuestRunner.Escape(System.Text.Encoding.Latin1.GetString(serial.ToArray()))}, expected {GuestRunner.Escape(w.ExpectedSerial)}");
        Console.WriteLine("variables: " + string.Join(' ', Enumerable.Range(0, 8).Select(i => BitConverter.ToUInt32(vars, i * 4).ToString("x8", System.Globalization.CultureInfo.InvariantCulture))));
        if (vm.Vcpus[0].Statistics.Details is { } details)
        {
            Console.WriteLine("counters: " + string.Join(", ", details.Select(kv => $"{kv.Key}={kv.Value}")));

        }
        return serial.ToArray().AsSpan().SequenceEqual(System.Text.Encoding.Latin1.GetBytes(w.ExpectedSerial)) ? 0 : 1;
    }
}
