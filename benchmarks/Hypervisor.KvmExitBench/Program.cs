// Port-I/O exit round trips through our kvm backend, side by side with the kvm-guest tool's C reference in the same
// boot (issue 5): run -- dotnet Hypervisor.KvmExitBench.dll [EXITS] [ROUNDS] [LAYERS, e.g. c,adapter]
// Each iteration is a real-mode OUT DX,AL that exits to user space and re-enters. Every round times, back to back:
//   c        the tool's static C program ($KVM_GUEST_TOOLS/kvmtest --bench N, a child process), when present;
//   ioctl    a bare P/Invoke loop over KVM_RUN on one of our vCPUs (what any .NET caller pays);
//   wrapper  KvmVcpu.Run() and the exit view (fd lease, run-state checks, kick handling);
//   vcpu     the adapter's IVcpu.Run() called on this thread (the machine built, but its run loop not used);
//   adapter  the whole machine: IVcpu.Run() answering the OUT through the port bus, on the machine's vCPU thread;
// and two probes of the bottom layer (not part of the default set):
//   tmds     the ioctl loop through Tmds.LibC's ioctl, declared with SetLastError (errno cleared before and saved
//            after every call), which the backend used for KVM_RUN before; 'ioctl' is the backend's Libc.RunVcpu;
//   pages    the ioctl loop touching 16 more distinct pages per exit, to measure what a page touched in user space
//            costs per exit under emulated AMD-V (QEMU's software TLB is flushed at every VMRUN and #VMEXIT).
// Rounds interleave the layers so that load changes on the (emulated, shared) host hit all of them alike, and each
// round starts with C followed at once by the machine. The summary gives each layer's median, its ratio to the C
// median, and the median and quartiles of the per-round ratios (layer / C of the same round): on a loaded host the
// per-exit time drifts by 2x within seconds, and a ratio of neighbours cancels most of that drift.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Hypervisor.Accel.Kvm;
using Hypervisor.Accel.Kvm.Interop;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

int exits = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 20_000;
int rounds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 3;
string[] allLayers = ["c", "adapter", "ioctl", "wrapper", "vcpu", "tmds", "pages"];
string[] layers = args.Length > 2 ? args[2].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : allLayers[..5];
if (exits is < 1 or > 100_000_000 || rounds is < 1 or > 1000 || !OperatingSystem.IsLinux() || layers.Except(allLayers).Any())
{
    Console.Error.WriteLine("usage: Hypervisor.KvmExitBench [EXITS (1..100000000)] [ROUNDS (1..1000)] [LAYERS: comma-separated of c,adapter,ioctl,wrapper,vcpu] (Linux only)");
    return 64;
}

var kvm = new KvmAccelerator();
AcceleratorProbeResult probe = kvm.Probe();
if (!probe.IsAvailable)
{
    Console.Error.WriteLine($"kvm unavailable: {probe.Reason}");
    return 68;
}

string? tools = Environment.GetEnvironmentVariable("KVM_GUEST_TOOLS");
string? reference = tools is null ? null : Path.Combine(tools, "kvmtest");
if (reference is not null && !File.Exists(reference))
{
    reference = null;
}

// Warm-up: the runtime compiles the exit paths in tiers; run each layer long enough to reach the optimized code.
Bench.Ioctl(5_000);
Bench.Wrapper(5_000);
Bench.Vcpu(kvm, 5_000);
Bench.Adapter(kvm, 5_000);

// Layers run in the order given; per-round ratios are taken against the first (normally c).
var results = layers.Distinct().Where(l => l != "c" || reference is not null).ToDictionary(l => l, _ => new List<double>());
string baseLayer = results.Keys.First();
var ratios = results.Keys.ToDictionary(l => l, _ => new List<double>());
for (int round = 1; round <= rounds; round++)
{
    var line = new System.Text.StringBuilder($"round {round}:");
    double? baseRound = null;
    foreach (string layer in results.Keys)
    {
        double us;
        if (layer == "adapter")
        {
            (us, double bytesPerExit) = Bench.Adapter(kvm, exits);
            line.Append(CultureInfo.InvariantCulture, $" adapter {us:0.00} ({bytesPerExit:0.0} B/exit)");
        }
        else
        {
            us = layer switch
            {
                "c" => Bench.CReference(reference!, exits),
                "ioctl" => Bench.Ioctl(exits),
                "wrapper" => Bench.Wrapper(exits),
                "tmds" => Bench.Ioctl(exits, tmds: true),
                "pages" => Bench.Ioctl(exits, touchPages: 16),
                _ => Bench.Vcpu(kvm, exits),
            };
            line.Append(CultureInfo.InvariantCulture, $" {layer} {us:0.00}");
        }

        results[layer].Add(us);
        if (layer == baseLayer)
        {
            baseRound = us;
        }
        else if (baseRound is double b)
        {
            ratios[layer].Add(us / b);
        }
    }

    Console.WriteLine(line.Append(" us/exit"));
}

double? c = results.TryGetValue("c", out List<double>? cValues) && cValues.Count > 0 ? Median(cValues) : null;
foreach ((string layer, List<double> values) in results)
{
    if (values.Count == 0)
    {
        continue;
    }

    double m = Median(values);
    string ratio = c is null ? "no C reference ($KVM_GUEST_TOOLS/kvmtest)" : string.Create(CultureInfo.InvariantCulture, $"{m / c.Value:0.00}x C");
    if (ratios[layer].Count > 0)
    {
        List<double> r = ratios[layer];
        ratio += string.Create(CultureInfo.InvariantCulture,
            $"; per-round ratio to {baseLayer}: median {Median(r):0.00}x (quartiles {Quantile(r, 0.25):0.00}-{Quantile(r, 0.75):0.00}, {r.Count} rounds)");
    }

    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"median {layer,-8} {m,8:0.00} us/exit  {ratio}"));
}

return 0;

static double Median(List<double> values) => Quantile(values, 0.5);

// Linear interpolation between order statistics (the "type 7" estimator of R and NumPy).
static double Quantile(List<double> values, double q)
{
    double[] sorted = [.. values.Order()];
    double position = q * (sorted.Length - 1);
    int low = (int)Math.Floor(position);
    int high = Math.Min(low + 1, sorted.Length - 1);
    return sorted[low] + ((position - low) * (sorted[high] - sorted[low]));
}

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal static unsafe partial class Bench
{
    private const int RamSize = 0x10000;
    private const ushort CodeAddress = 0x1000;

    /// <summary>OUT DX,AL; DEC ECX; JNZ back; HLT — ECX loaded by the caller.</summary>
    private static byte[] LoopCode(bool setCount, int exits)
    {
        var a = new Assembler(16);
        Label loop = a.CreateLabel();
        a.cli();
        a.mov(dx, 0x80);
        if (setCount)
        {
            a.mov(ecx, exits);
        }

        a.Label(ref loop);
        a.@out(dx, al);
        a.dec(ecx);
        a.jnz(loop);
        a.hlt();
        using var code = new MemoryStream();
        a.Assemble(new StreamCodeWriter(code), 0);
        return code.ToArray();
    }

    internal static double CReference(string path, int exits)
    {
        var start = new ProcessStartInfo(path, ["--bench", exits.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
        };
        using Process process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Match m = UsPerExit().Match(output);
        if (process.ExitCode != 0 || !m.Success)
        {
            throw new InvalidOperationException($"{path} --bench failed ({process.ExitCode}): {output}");
        }

        return double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"([0-9.]+) us/exit")]
    private static partial Regex UsPerExit();

    private sealed class RealModeVcpu : IDisposable
    {
        private readonly byte* _ram;

        internal RealModeVcpu(int exits)
        {
            _ram = (byte*)NativeMemory.AlignedAlloc(RamSize, 4096);
            NativeMemory.Clear(_ram, RamSize);
            LoopCode(setCount: true, exits).CopyTo(new Span<byte>(_ram + CodeAddress, RamSize - CodeAddress));
            System = KvmSystem.Open();
            Vm = System.CreateVm();
            Vm.SetUserMemoryRegion(0, 0, RamSize, (nint)_ram, readOnly: false);
            Vcpu = Vm.CreateVcpu(0);
            Vcpu.SetCpuid(System.GetSupportedCpuid());
            kvm_sregs sregs = Vcpu.GetSregs();
            sregs.cs.@base = 0;
            sregs.cs.selector = 0;
            Vcpu.SetSregs(sregs);
            kvm_regs regs = Vcpu.GetRegs();
            regs.rip = CodeAddress;
            regs.rflags = 2;
            Vcpu.SetRegs(regs);
        }

        internal KvmSystem System { get; }

        internal KvmVm Vm { get; }

        internal KvmVcpu Vcpu { get; }

        public void Dispose()
        {
            Vm.Dispose();
            System.Dispose();
            NativeMemory.AlignedFree(_ram);
        }
    }

    internal static double Ioctl(int exits, bool tmds = false, int touchPages = 0)
    {
        using var vm = new RealModeVcpu(exits);
        kvm_run* run = vm.Vcpu.RunStructure;
        bool added = false;
        vm.Vcpu.Handle.DangerousAddRef(ref added);
        int fd = vm.Vcpu.Handle.Fd;
        uint request = Hypervisor.Accel.Kvm.Interop.Ioctl.KVM_RUN;
        byte* pages = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, touchPages) * 4096, 4096);
        NativeMemory.Clear(pages, (nuint)Math.Max(1, touchPages) * 4096);
        long start = Stopwatch.GetTimestamp();
        int seen = 0;
        while (true)
        {
            int error;
            int result = tmds ? Libc.Ioctl(fd, request, 0, out error) : Libc.RunVcpu(fd, out error);
            if (result < 0)
            {
                throw new KvmException("KVM_RUN", error);
            }

            for (int p = 0; p < touchPages; p++)
            {
                pages[p * 4096]++;
            }

            if (run->exit_reason != KvmConstants.KVM_EXIT_IO)
            {
                break;
            }

            seen++;
        }

        double us = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        NativeMemory.AlignedFree(pages);
        vm.Vcpu.Handle.DangerousRelease();
        Check(seen, exits, run->exit_reason);
        return us / exits;
    }

    internal static double Wrapper(int exits)
    {
        using var vm = new RealModeVcpu(exits);
        long start = Stopwatch.GetTimestamp();
        int seen = 0;
        uint reason;
        while (true)
        {
            KvmExit exit = vm.Vcpu.Run();
            reason = exit.Reason;
            if (reason != KvmConstants.KVM_EXIT_IO || exit.IoData[0] != 0)
            {
                break;
            }

            seen++;
        }

        double us = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        Check(seen, exits, reason);
        return us / exits;
    }

    private static void Check(int seen, int exits, uint reason)
    {
        if (seen != exits || reason != KvmConstants.KVM_EXIT_HLT)
        {
            throw new InvalidOperationException($"expected {exits} port exits and HLT, got {seen} and exit reason {reason}");
        }
    }

    private static VirtualMachine Machine(KvmAccelerator kvm, int exits)
    {
        var image = new byte[64 * 1024];
        LoopCode(setCount: true, exits).CopyTo(image, 0);
        new byte[] { 0xEA, 0x00, 0x00, 0x00, 0xF0 }.CopyTo(image, 0xFFF0); // JMP F000:0000 at the reset vector
        using var builder = new VirtualMachineBuilder();
        GuestMemoryLayout.AddRam(builder.Memory, 16 << 20);
        GuestMemoryLayout.AddFirmware(builder.Memory, image);
        var selector = new AcceleratorSelector([kvm]);
        return builder.Build(selector, selector.Parse("kvm"));
    }

    internal static double Vcpu(KvmAccelerator kvm, int exits)
    {
        using VirtualMachine vm = Machine(kvm, exits);
        long start = Stopwatch.GetTimestamp();
        VcpuExit exit = vm.Vcpus[0].Run();
        double us = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        if (exit.Reason != VcpuExitReason.Halted || vm.Ports.UnclaimedWriteCount != exits)
        {
            throw new InvalidOperationException($"unexpected exit: {exit.Reason}, {vm.Ports.UnclaimedWriteCount} port writes seen");
        }

        return us / exits;
    }

    /// <summary>The whole machine through the public API; the time includes starting the vCPU thread and the final HLT.</summary>
    internal static (double UsPerExit, double BytesPerExit) Adapter(KvmAccelerator kvm, int exits)
    {
        using VirtualMachine vm = Machine(kvm, exits);
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        MachineRunResult result = vm.Run(new MachineRunOptions(TimeSpan.FromMinutes(10)));
        long bytes = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        if (result.Reason != MachineStopReason.Halted || vm.Ports.UnclaimedWriteCount != exits)
        {
            throw new InvalidOperationException($"unexpected run: {result.Reason} {result.Detail}, {vm.Ports.UnclaimedWriteCount} port writes seen");
        }

        return (result.Elapsed.TotalMicroseconds / exits, (double)bytes / exits);
    }
}
