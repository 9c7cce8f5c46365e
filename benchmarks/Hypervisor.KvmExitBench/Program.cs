// Port-I/O exit round trips through our kvm backend, side by side with the kvm-guest tool's C reference in the same
// boot (issue 5): run -- dotnet Hypervisor.KvmExitBench.dll [EXITS] [ROUNDS] [LAYERS, e.g. c,ioctl,vcpu,pc] [CHUNK]
//
// The guest is real-mode code that makes EXITS port exits (OUT DX,AL to port 0x80) in chunks of CHUNK (default: one
// chunk), with an OUT to a marker port before every chunk and after the last, then HLT. Every layer is timed twice:
//   steady  from the first marker exit to the last, chunk by chunk (CHUNK + 1 round trips each): what the C reference
//           times too (its loop starts after the VM, the vCPU and a first run exist and ends at the last exit);
//   whole   the whole run as the caller sees it, per exit: adds the first entry into a fresh vCPU, the final HLT and,
//           for the machine layers, the vCPU thread's start, the stop and the join.
// With CHUNK < EXITS the C reference is started EXITS / CHUNK times with --bench CHUNK, one chunk each.
// Layers (run in the order given; per-round ratios are taken against the first, normally c):
//   c        the tool's static C program ($KVM_GUEST_TOOLS/kvmtest --bench N, a child process), when present;
//   ioctl    a bare P/Invoke loop over KVM_RUN on one of our vCPUs (what any .NET caller pays);
//   wrapper  KvmVcpu.Run() and the exit view (fd lease, run-state checks, kick handling);
//   vcpu     the adapter's IVcpu.Run() called on this thread (a machine with memory only, port 0x80 unclaimed);
//   thread   the same IVcpu.Run() on a fresh thread that this one joins (the machine's thread without its timer loop);
//   adapter  the memory-only machine through VirtualMachine.Run (its vCPU thread and its timer loop);
//   pcvcpu   IVcpu.Run() of the PC machine (PcLayout: 8259s, local and I/O APIC, PIT, RTC, UART ..., port 0x80 answered
//            by the POST device) on this thread;
//   pc       the whole PC machine through VirtualMachine.Run: what a user of the library runs;
// In the PC layers the guest first masks the 8259s, as firmware does before polling with interrupts off. Without that
// (the probe 'pcirq') the PIT, which counts from power-on (IRQ 0 every 55 ms), leaves IRQ 0 pending while the loop
// runs with IF=0, so every KVM_RUN asks KVM for an interrupt window, as it must (the interrupt is taken at the STI).
// The probe 'pcquiet' also stops the PIT's counter 0 (a control word without a count), so that the machine's timer
// thread has no deadline and wakes only every 100 ms instead of at every edge of OUT0 (every 27.5 ms).
// Two probes of the bottom layer (not in the default set):
//   tmds     the ioctl loop through Tmds.LibC's ioctl, declared with SetLastError (errno cleared before and saved
//            after every call), which the backend used for KVM_RUN before; 'ioctl' is the backend's Libc.RunVcpu;
//   pages    the ioctl loop touching 16 more distinct pages per exit (the per-page cost under emulated AMD-V).
// Rounds interleave the layers so that load changes on the (emulated, shared) host hit all of them alike. The summary
// gives per layer the median and quartiles of the per-round ratios (layer / first layer of the same round), with a
// distribution-free 95 % confidence interval of that median, for the steady and the whole times, and the fixed cost
// of a run (whole minus steady). With chunks it also gives the low quantiles of all chunks' per-exit times: the host's
// load only ever adds time to a chunk, so the fastest chunks show a layer's own cost best.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Hypervisor.Accel.Kvm;
using Hypervisor.Accel.Kvm.Interop;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Devices;
using Hypervisor.Devices.Post;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

const double Goal = 1.15;
if (args is ["host", ..])
{
    HostPath.Run(args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10_000_000);
    return 0;
}

int exits = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 20_000;
int rounds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 3;
string[] allLayers = ["c", "ioctl", "wrapper", "vcpu", "thread", "adapter", "pcvcpu", "pc", "pcirq", "pcquiet", "tmds", "pages"];
string[] layers = args.Length > 2
    ? args[2].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
    : ["c", "ioctl", "vcpu", "adapter", "pc"];
int chunk = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : exits;
if (exits is < 1 or > 100_000_000 || rounds is < 1 or > 1000 || chunk < 1 || exits % chunk != 0 || !OperatingSystem.IsLinux()
    || layers.Except(allLayers).Any())
{
    Console.Error.WriteLine($"usage: Hypervisor.KvmExitBench [EXITS (1..100000000)] [ROUNDS (1..1000)] [LAYERS: comma-separated of {string.Join(',', allLayers)}] [CHUNK (divides EXITS)] (Linux only)");
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
string[] ours = [.. layers.Distinct().Where(l => l != "c")];
foreach (string layer in ours)
{
    Bench.Time(layer, kvm, 5_000, 5_000);
}

// Layers run in the order given; per-round ratios are taken against the first (normally c).
string[] timed = [.. layers.Distinct().Where(l => l != "c" || reference is not null)];
string baseLayer = timed[0];
var samples = timed.ToDictionary(l => l, _ => new List<Sample>());
for (int round = 1; round <= rounds; round++)
{
    var line = new System.Text.StringBuilder(string.Create(CultureInfo.InvariantCulture, $"round {round}:"));
    foreach (string layer in timed)
    {
        Sample s = layer == "c" ? Bench.CReference(reference!, exits, chunk) : Bench.Time(layer, kvm, exits, chunk);
        samples[layer].Add(s);
        line.Append(layer == "c"
            ? string.Create(CultureInfo.InvariantCulture, $" c {s.Steady:0.00}")
            : string.Create(CultureInfo.InvariantCulture, $" {layer} {s.Steady:0.00}/{s.Whole:0.00} w{s.Waited * 100:0}%{(s.KvmExits is long k ? $" x{k}" : "")}"));
        if (s.TimerCpu is double tc)
        {
            line.Append(CultureInfo.InvariantCulture, $" t{tc:0}us/{s.TimerSlices:0}");
        }

        if (s.BytesPerExit is double b)
        {
            line.Append(CultureInfo.InvariantCulture, $" ({b:0.0} B/exit)");
        }
    }

    Console.WriteLine(line.Append(" us/exit (steady/whole, w: the share of the steady window the vCPU thread waited for the CPU; t: the timer thread's CPU and slices per 1000 exits)"));
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"{exits} exits x {rounds} rounds (chunks of {chunk}); ratios per round against {baseLayer}; [a-b] is the 95 % confidence interval of the median"));
foreach (string layer in timed)
{
    List<Sample> values = samples[layer];
    var text = new System.Text.StringBuilder(string.Create(CultureInfo.InvariantCulture,
        $"{layer,-8} steady {Median([.. values.Select(v => v.Steady)]),8:0.00} us/exit"));
    if (layer != baseLayer)
    {
        List<double> steady = [.. values.Select((v, i) => v.Steady / samples[baseLayer][i].Steady)];
        List<double> whole = [.. values.Select((v, i) => v.Whole / samples[baseLayer][i].Whole)];
        text.Append("  ratio ").Append(Describe(steady)).Append("; whole run ").Append(Describe(whole));
        if (layer != "c")
        {
            text.Append(CultureInfo.InvariantCulture,
                $"; vCPU thread waited {Median([.. values.Select(v => v.Waited ?? 0)]) * 100:0.0} % of the window, {Median([.. values.Select(v => v.Slices ?? 0)]):0.0} slices per 1000 exits");
            if (values[0].TimerCpu is not null)
            {
                text.Append(CultureInfo.InvariantCulture,
                    $"; timer thread {Median([.. values.Select(v => v.TimerCpu ?? 0)]):0} us CPU, {Median([.. values.Select(v => v.TimerSlices ?? 0)]):0.0} slices per 1000 exits (whole run)");
            }

            text.Append(CultureInfo.InvariantCulture,
                $"; fixed cost per run {Median([.. values.Select(v => ((v.Whole * exits) - (v.Steady * (exits + (exits / chunk)))) / 1000)]):0.0} ms");
        }

        if (baseLayer == "c")
        {
            (double low, double high) = MedianInterval(steady);
            text.Append(high <= Goal ? $"  goal {Goal}: met" : low > Goal ? $"  goal {Goal}: missed" : $"  goal {Goal}: undecided");
        }
    }

    Console.WriteLine(text);
}

if (Environment.GetEnvironmentVariable("KVM_EXIT_BENCH_THREADS") is "1")
{
    // Which threads of this process used the CPU (utime + stime, clock ticks), to find what competes with the vCPU.
    foreach (string task in Directory.GetDirectories("/proc/self/task"))
    {
        string stat = File.ReadAllText(Path.Combine(task, "stat"));
        int close = stat.LastIndexOf(')');
        string[] f = stat[(close + 2)..].Split(' ');
        long ticks = long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
        Console.WriteLine($"thread {Path.GetFileName(task)} {stat[(stat.IndexOf('(') + 1)..close]}: {ticks} ticks");
    }
}

if (chunk < exits)
{
    // Every chunk of every round, pooled: the low quantiles are the chunks the host's load disturbed least.
    double[] quantiles = [0.05, 0.10, 0.25, 0.50];
    Dictionary<string, double[]> pooled = timed.ToDictionary(l => l, l => quantiles.Select(q => Quantile([.. samples[l].SelectMany(v => v.Chunks)], q)).ToArray());
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"chunks of {chunk} exits, pooled ({rounds * (exits / chunk)} per layer): us/exit at the quantiles {string.Join(' ', quantiles.Select(q => $"p{q * 100:0}"))}, and the ratio to {baseLayer}"));
    foreach (string layer in timed)
    {
        double[] mine = pooled[layer];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{layer,-8} {string.Join(' ', mine.Select(v => $"{v,8:0.00}"))}   {string.Join(' ', mine.Select((v, i) => $"{v / pooled[baseLayer][i]:0.000}x"))}"));
    }
}

return 0;

static string Describe(List<double> r)
{
    (double low, double high) = MedianInterval(r);
    return string.Create(CultureInfo.InvariantCulture,
        $"median {Median(r):0.000}x [{low:0.000}-{high:0.000}] (quartiles {Quantile(r, 0.25):0.00}-{Quantile(r, 0.75):0.00})");
}

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

// The distribution-free confidence interval of a median: the order statistics x(k) and x(n+1-k) with the largest k for
// which P(k <= B <= n-k) >= 95 % for B ~ Binomial(n, 1/2). It assumes only independent rounds, not a distribution.
static (double Low, double High) MedianInterval(List<double> values)
{
    double[] sorted = [.. values.Order()];
    int n = sorted.Length;
    double[] pmf = new double[n + 1];
    double logHalf = n * Math.Log(0.5);
    double logChoose = 0;
    for (int i = 0; i <= n; i++)
    {
        pmf[i] = Math.Exp(logChoose + logHalf);
        logChoose += Math.Log(n - i) - Math.Log(i + 1);
    }

    int best = 0;
    for (int k = 1; 2 * k <= n; k++)
    {
        double covered = 0;
        for (int i = k; i <= n - k; i++)
        {
            covered += pmf[i];
        }

        if (covered >= 0.95)
        {
            best = k;
        }
    }

    return best == 0 ? (sorted[0], sorted[n - 1]) : (sorted[best - 1], sorted[n - best]);
}

/// <summary>One timed run: microseconds per exit over the marked window, over the whole run, and in every chunk.</summary>
internal sealed record Sample(double Steady, double Whole, double[] Chunks, double? BytesPerExit = null)
{
    /// <summary>The share of the steady window in which the vCPU thread was runnable but another thread of the guest ran.</summary>
    public double? Waited { get; init; }

    /// <summary>Times the vCPU thread got the CPU, per 1000 exits of the steady window.</summary>
    public double? Slices { get; init; }

    /// <summary>KVM_RUN returns the vCPU counted over the whole run (machine layers).</summary>
    public long? KvmExits { get; init; }

    /// <summary>Machine layers: the CPU time of the timer thread (the caller's, in VirtualMachine.Run) over the whole run, microseconds per 1000 exits.</summary>
    public double? TimerCpu { get; init; }

    /// <summary>Machine layers: the times the timer thread got the CPU over the whole run, per 1000 exits.</summary>
    public double? TimerSlices { get; init; }
}

/// <summary>
/// /proc/thread-self/schedstat (Documentation/scheduler/sched-stats.rst): time on the CPU, time runnable but waiting
/// for it, and the number of times the thread got it. In the one-vCPU kvm guest, the wait is what every other thread
/// of the guest (the machine's timer thread, kernel threads, other processes) took from the vCPU thread.
/// </summary>
internal readonly record struct SchedStat(long RunNs, long WaitNs, long Slices)
{
    internal static SchedStat OfThisThread()
    {
        string[] f = File.ReadAllText("/proc/thread-self/schedstat").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return new SchedStat(long.Parse(f[0], CultureInfo.InvariantCulture), long.Parse(f[1], CultureInfo.InvariantCulture),
            long.Parse(f[2], CultureInfo.InvariantCulture));
    }
}

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal static unsafe partial class Bench
{
    private const int RamSize = 0x10000;
    private const ushort CodeAddress = 0x1000;
    private const ushort LoopPort = 0x80;

    /// <summary>A port no PC device claims (QEMU's DMA page registers start at 0x81; ours has none).</summary>
    private const ushort MarkerPort = 0x88;

    /// <summary>
    /// EXITS / CHUNK times: OUT to the marker port, CHUNK times OUT DX,AL to port 0x80; then OUT to the marker port; HLT.
    /// With <paramref name="maskPic"/> the code first masks every 8259 input (OCW1 0xFF to ports 0x21 and 0xA1), as
    /// firmware does before it polls with interrupts off.
    /// </summary>
    private static byte[] LoopCode(int exits, int chunk, bool maskPic = false, bool stopPit = false)
    {
        var a = new Assembler(16);
        Label outer = a.CreateLabel();
        Label loop = a.CreateLabel();
        a.cli();
        if (maskPic)
        {
            a.mov(al, 0xFF);
            a.@out(0x21, al);
            a.@out(0xA1, al);
        }

        if (stopPit)
        {
            a.mov(al, 0x30); // counter 0, LSB then MSB, mode 0; no count follows, so the counter stays idle
            a.@out(0x43, al);
        }

        a.mov(esi, exits / chunk);
        a.Label(ref outer);
        a.mov(dx, MarkerPort);
        a.@out(dx, al);
        a.mov(dx, LoopPort);
        a.mov(ecx, chunk);
        a.Label(ref loop);
        a.@out(dx, al);
        a.dec(ecx);
        a.jnz(loop);
        a.dec(esi);
        a.jnz(outer);
        a.mov(dx, MarkerPort);
        a.@out(dx, al);
        a.hlt();
        using var code = new MemoryStream();
        a.Assemble(new StreamCodeWriter(code), 0);
        return code.ToArray();
    }

    /// <summary>One run of a layer other than c.</summary>
    internal static Sample Time(string layer, KvmAccelerator kvm, int exits, int chunk) => layer switch
    {
        "ioctl" => Ioctl(exits, chunk),
        "wrapper" => Wrapper(exits, chunk),
        "tmds" => Ioctl(exits, chunk, tmds: true),
        "pages" => Ioctl(exits, chunk, touchPages: 16),
        "vcpu" => Vcpu(kvm, exits, chunk, pc: false, thread: false),
        "thread" => Vcpu(kvm, exits, chunk, pc: false, thread: true),
        "pcvcpu" => Vcpu(kvm, exits, chunk, pc: true, thread: false),
        "adapter" => Machine(kvm, exits, chunk, pc: false),
        "pc" => Machine(kvm, exits, chunk, pc: true),
        "pcirq" => Machine(kvm, exits, chunk, pc: true, maskPic: false),
        "pcquiet" => Machine(kvm, exits, chunk, pc: true, stopPit: true),
        _ => throw new ArgumentOutOfRangeException(nameof(layer), layer, "unknown layer"),
    };

    /// <summary>The C reference, started once per chunk (each start times one loop of CHUNK exits).</summary>
    internal static Sample CReference(string path, int exits, int chunk)
    {
        double[] chunks = new double[exits / chunk];
        for (int i = 0; i < chunks.Length; i++)
        {
            chunks[i] = CReference(path, chunk);
        }

        double mean = chunks.Average();
        return new Sample(mean, mean, chunks);
    }

    private static double CReference(string path, int exits)
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

    /// <summary>The sample of a run from the marker timestamps (one per chunk boundary) and the run's start and end.</summary>
    private static Sample Per(int exits, int chunk, long start, Marks marks, long end, double? bytes = null)
    {
        double window = Stopwatch.GetElapsedTime(marks.Times[0], marks.Times[^1]).TotalNanoseconds;
        double waited = (marks.Last.WaitNs - marks.First.WaitNs) / window;
        double slices = (marks.Last.Slices - marks.First.Slices) * 1000.0 / exits;
        int count = exits / chunk;
        if (marks.Count != count + 1)
        {
            throw new InvalidOperationException($"the guest made {marks.Count} marker exits, not {count + 1}");
        }

        double[] chunks = new double[count];
        for (int i = 0; i < count; i++)
        {
            chunks[i] = Stopwatch.GetElapsedTime(marks.Times[i], marks.Times[i + 1]).TotalMicroseconds / (chunk + 1);
        }

        return new Sample(Stopwatch.GetElapsedTime(marks.Times[0], marks.Times[count]).TotalMicroseconds / (exits + count),
            Stopwatch.GetElapsedTime(start, end).TotalMicroseconds / exits, chunks, bytes) { Waited = waited, Slices = slices };
    }

    /// <summary>Timestamps of the marker exits, preallocated so that taking one allocates nothing.</summary>
    private sealed class Marks(int exits, int chunk)
    {
        internal long[] Times { get; } = new long[(exits / chunk) + 1];

        internal int Count { get; private set; }

        /// <summary>The vCPU thread's scheduler figures at the first and the last mark (see <see cref="SchedStat"/>).</summary>
        internal SchedStat First { get; private set; }

        internal SchedStat Last { get; private set; }

        internal void Take()
        {
            long now = Stopwatch.GetTimestamp();
            if (Count < Times.Length)
            {
                Times[Count] = now;
            }

            if (Count == 0)
            {
                First = SchedStat.OfThisThread();
            }
            else if (Count == Times.Length - 1)
            {
                Last = SchedStat.OfThisThread();
            }

            Count++;
        }
    }

    private sealed class RealModeVcpu : IDisposable
    {
        private readonly byte* _ram;

        internal RealModeVcpu(int exits, int chunk)
        {
            _ram = (byte*)NativeMemory.AlignedAlloc(RamSize, 4096);
            NativeMemory.Clear(_ram, RamSize);
            LoopCode(exits, chunk).CopyTo(new Span<byte>(_ram + CodeAddress, RamSize - CodeAddress));
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

    internal static Sample Ioctl(int exits, int chunk, bool tmds = false, int touchPages = 0)
    {
        using var vm = new RealModeVcpu(exits, chunk);
        var marks = new Marks(exits, chunk);
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

            if (run->io.port == MarkerPort)
            {
                marks.Take();
            }
            else
            {
                seen++;
            }
        }

        long end = Stopwatch.GetTimestamp();
        NativeMemory.AlignedFree(pages);
        vm.Vcpu.Handle.DangerousRelease();
        Check(seen, exits, run->exit_reason);
        return Per(exits, chunk, start, marks, end);
    }

    internal static Sample Wrapper(int exits, int chunk)
    {
        using var vm = new RealModeVcpu(exits, chunk);
        var marks = new Marks(exits, chunk);
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

            if (exit.Io.port == MarkerPort)
            {
                marks.Take();
            }
            else
            {
                seen++;
            }
        }

        long end = Stopwatch.GetTimestamp();
        Check(seen, exits, reason);
        return Per(exits, chunk, start, marks, end);
    }

    private static void Check(int seen, int exits, uint reason)
    {
        if (seen != exits || reason != KvmConstants.KVM_EXIT_HLT)
        {
            throw new InvalidOperationException($"expected {exits} port exits and HLT, got {seen} and exit reason {reason}");
        }
    }

    /// <summary>Takes the time of every write to the marker port (called with the I/O lock held).</summary>
    private sealed class Marker(Marks marks) : IPortDevice
    {
        public uint Read(ushort offset, int size) => uint.MaxValue;

        public void Write(ushort offset, int size, uint value) => marks.Take();
    }

    /// <summary>
    /// A machine whose firmware runs the loop: memory only (port 0x80 unclaimed) or the PC layout (8259s, local and
    /// I/O APIC, PIT, RTC, UART ..., port 0x80 answered by the POST device).
    /// </summary>
    private static VirtualMachine Build(KvmAccelerator kvm, int exits, int chunk, bool pc, Marks marks, bool maskPic = true, bool stopPit = false)
    {
        var image = new byte[64 * 1024];
        LoopCode(exits, chunk, pc && maskPic, pc && stopPit).CopyTo(image, 0);
        new byte[] { 0xEA, 0x00, 0x00, 0x00, 0xF0 }.CopyTo(image, 0xFFF0); // JMP F000:0000 at the reset vector
        using var builder = new VirtualMachineBuilder();
        if (pc)
        {
            builder.AddPcDevices(new PcOptions { MemorySizeInBytes = 16 << 20, Firmware = image, WritableLowFirmware = false });
        }
        else
        {
            GuestMemoryLayout.AddRam(builder.Memory, 16 << 20);
            GuestMemoryLayout.AddFirmware(builder.Memory, image);
        }

        builder.Ports.Register(MarkerPort, 1, new Marker(marks), "bench-marker");
        var selector = new AcceleratorSelector([kvm]);
        return builder.Build(selector, selector.Parse("kvm"));
    }

    /// <summary>The port 0x80 writes the loop made: unclaimed ones on the memory-only machine, POST codes on the PC.</summary>
    private static long PortWrites(VirtualMachine vm) => vm.GetDevice<PostCodePort>() is { } post ? post.WriteCount : vm.Ports.UnclaimedWriteCount;

    /// <summary>IVcpu.Run() on this thread, or on a fresh thread that this one joins.</summary>
    internal static Sample Vcpu(KvmAccelerator kvm, int exits, int chunk, bool pc, bool thread)
    {
        var marks = new Marks(exits, chunk);
        using VirtualMachine vm = Build(kvm, exits, chunk, pc, marks);
        VcpuExit exit = default;
        long start = Stopwatch.GetTimestamp();
        if (thread)
        {
            var t = new Thread(() => exit = vm.Vcpus[0].Run()) { IsBackground = true };
            t.Start();
            t.Join();
        }
        else
        {
            exit = vm.Vcpus[0].Run();
        }

        long end = Stopwatch.GetTimestamp();
        if (exit.Reason != VcpuExitReason.Halted || PortWrites(vm) != exits)
        {
            throw new InvalidOperationException($"unexpected exit: {exit.Reason}, {PortWrites(vm)} port writes seen");
        }

        return Per(exits, chunk, start, marks, end) with { KvmExits = vm.Vcpus[0].Statistics.Exits };
    }

    /// <summary>The whole machine through the public API: the vCPU thread, the timer loop, the stop and the join.</summary>
    internal static Sample Machine(KvmAccelerator kvm, int exits, int chunk, bool pc, bool maskPic = true, bool stopPit = false)
    {
        var marks = new Marks(exits, chunk);
        using VirtualMachine vm = Build(kvm, exits, chunk, pc, marks, maskPic, stopPit);
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        SchedStat timerBefore = SchedStat.OfThisThread();
        long start = Stopwatch.GetTimestamp();
        MachineRunResult result = vm.Run(new MachineRunOptions(TimeSpan.FromMinutes(10)));
        long end = Stopwatch.GetTimestamp();
        SchedStat timerAfter = SchedStat.OfThisThread();
        long bytes = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        if (result.Reason != MachineStopReason.Halted || PortWrites(vm) != exits)
        {
            throw new InvalidOperationException($"unexpected run: {result.Reason} {result.Detail}, {PortWrites(vm)} port writes seen");
        }

        return Per(exits, chunk, start, marks, end, (double)bytes / exits) with
        {
            KvmExits = result.Exits,
            TimerCpu = (timerAfter.RunNs - timerBefore.RunNs) / 1000.0 * 1000 / exits,
            TimerSlices = (timerAfter.Slices - timerBefore.Slices) * 1000.0 / exits,
        };
    }
}

/// <summary>
/// What the calls the kvm adapter can make around one port exit cost on the host, without kvm (single thread, the I/O
/// lock uncontended): the port bus for an unclaimed port and for the PC's POST device, and the local APIC's accessors
/// (each takes the I/O lock but HasPendingInterrupt). Nanoseconds per call.
/// </summary>
internal static class HostPath
{
    internal static void Run(int n)
    {
        using var bare = new VirtualMachineBuilder();
        using var pc = new VirtualMachineBuilder();
        pc.AddPcDevices(new PcOptions { MemorySizeInBytes = 16 << 20 });
        ILocalInterruptController lapic = pc.LocalInterruptControllers!(0)!;
        pc.Ports.Write(0x21, 1, 0xFF); // as the PC layers' guest does: every 8259 input masked
        pc.Ports.Write(0xA1, 1, 0xFF);
        Thread.Sleep(60); // the PIT counts from power-on: two IRQ 0 edges
        pc.Timers.RunDue();
        Console.WriteLine($"8259s masked, 60 ms of PIT: PIC INTR {pc.InterruptSource!.HasPendingInterrupt}, local APIC INTR {lapic.HasPendingInterrupt}");
        (string Name, Action Call)[] calls =
        [
            ("bus, unclaimed port 0x80", () => bare.Ports.Write(0x80, 1, 0)),
            ("bus, PC POST port 0x80", () => pc.Ports.Write(0x80, 1, 0)),
            ("local APIC TakeStartupRequest", () => lapic.TakeStartupRequest()),
            ("local APIC TakeNmi", () => lapic.TakeNmi()),
            ("local APIC TaskPriorityClass", () => _ = lapic.TaskPriorityClass),
            ("local APIC ApicBase", () => _ = lapic.ApicBase),
            ("local APIC HasPendingInterrupt", () => _ = lapic.HasPendingInterrupt),
        ];
        for (int pass = 0; pass < 3; pass++)
        {
            var line = new System.Text.StringBuilder(string.Create(CultureInfo.InvariantCulture, $"host pass {pass}:"));
            foreach ((string name, Action call) in calls)
            {
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < n; i++)
                {
                    call();
                }

                line.Append(CultureInfo.InvariantCulture, $" {name} {Stopwatch.GetElapsedTime(t0).TotalNanoseconds / n:0.0};");
            }

            Console.WriteLine(line.Append(" ns/call"));
        }
    }
}
