using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Hypervisor.Benchmarks.Running;
using Hypervisor.Benchmarks.Workloads;

namespace Hypervisor.Benchmarks.Quick;

/// <summary>
/// <c>--quick</c>: every workload once per available accelerator and once under QEMU (tcg, and kvm where
/// <c>/dev/kvm</c> exists), interleaved so that both sides see the same machine load; outputs compared with the
/// host-computed checksums; a Markdown table on stdout.
/// </summary>
public static class QuickMode
{
    private const int StartupSamples = 3;

    /// <summary>Runs the quick mode; returns the process exit code (0 when every output was right).</summary>
    public static int Run(TextWriter output, IReadOnlyCollection<string> onlyWorkloads)
    {
        ArgumentNullException.ThrowIfNull(output);
        var total = Stopwatch.StartNew();
        int failures = 0;
        IReadOnlyList<Workload> workloads = WorkloadCatalog.All
            .Where(w => onlyWorkloads.Count == 0 || onlyWorkloads.Contains(w.Name)).ToArray();

        output.WriteLine("# Hypervisor quick benchmark");
        output.WriteLine();
        foreach (string line in MachineDescription())
        {
            output.WriteLine($"- {line}");
        }

        output.WriteLine();
        foreach (AcceleratorAvailability a in AcceleratorCatalog.All)
        {
            output.WriteLine(a.IsAvailable ? $"- accelerator {a.Spec}: runs ({a.Reason})" : $"- accelerator {a.Spec}: SKIPPED: {a.Reason}");
        }

        // QEMU peers.
        string? qemu = QemuRunner.FindBinary();
        var qemuAccels = new List<string>();
        var qemuStartup = new Dictionary<string, TimeSpan>();
        if (qemu is null)
        {
            output.WriteLine($"- QEMU peer: SKIPPED: {QemuRunner.Binary} is not on PATH (Debian package qemu-system-x86)");
        }
        else
        {
            foreach (string accel in File.Exists("/dev/kvm") ? new[] { "tcg", "kvm" } : ["tcg"])
            {
                if (accel == "kvm" && !AcceleratorCatalog.AvailableSpecs.Any(spec => spec.StartsWith("kvm", StringComparison.Ordinal)))
                {
                    // QEMU's kvm is only ever the peer of our kvm row. Without one it compares with nothing, and on a
                    // host whose /dev/kvm is emulated it passed the calibration yet took 30-120 s per workload.
                    output.WriteLine("- QEMU peer -accel kvm: SKIPPED: our kvm is skipped (above), so there is no row to compare it with");
                    continue;
                }

                QemuRun probe = QemuRunner.Run(qemu, accel, WorkloadCatalog.BootImage, TimeSpan.FromSeconds(30));
                if (probe.ExitCode != 1 || probe.Serial != WorkloadCatalog.BootLine)
                {
                    string why = probe.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "no message";
                    output.WriteLine($"- QEMU peer -accel {accel}: SKIPPED: the start-up image did not run (exit {probe.ExitCode}, serial {GuestRunner.Escape(probe.Serial)}): {why.Trim()}");
                    continue;
                }

                QemuRun calibration = QemuRunner.Run(qemu, accel, WorkloadCatalog.Calibration.Image, TimeSpan.FromSeconds(20));
                if (calibration.ExitCode != 1 || calibration.Serial != WorkloadCatalog.Calibration.ExpectedSerial
                    || calibration.Wall - probe.Wall > AcceleratorCatalog.CalibrationLimit)
                {
                    output.WriteLine($"- QEMU peer -accel {accel}: SKIPPED: too slow or wrong here: the calibration guest ({WorkloadCatalog.Calibration.Description}) took {calibration.Wall.TotalSeconds:0.0} s (exit {calibration.ExitCode}, limit {AcceleratorCatalog.CalibrationLimit.TotalSeconds:0.0} s beyond start-up)");
                    continue;
                }

                var samples = Enumerable.Range(0, StartupSamples)
                    .Select(_ => QemuRunner.Run(qemu, accel, WorkloadCatalog.BootImage, TimeSpan.FromSeconds(30)).Wall).ToList();
                qemuStartup[accel] = Median(samples);
                qemuAccels.Add(accel);
                output.WriteLine($"- QEMU peer -accel {accel}: start-up (image that prints one line and exits, median of {StartupSamples}) {Ms(qemuStartup[accel])} ms; measured again before every workload for the correction");
            }
        }

        // Our start-up per accelerator: one warm-up run (the first run also JIT-compiles our own .NET code), then the median.
        var ourStartup = new Dictionary<string, TimeSpan>();
        Workload boot = WorkloadCatalog.Get("boot-first-line");
        foreach (string spec in AcceleratorCatalog.AvailableSpecs)
        {
            GuestRunner.Run(spec, boot);
            ourStartup[spec] = Median(Enumerable.Range(0, StartupSamples).Select(_ => GuestRunner.Run(spec, boot).Wall).ToList());
            output.WriteLine($"- ours {spec}: start-up (same image, after one warm-up run, median of {StartupSamples}) {Ms(ourStartup[spec])} ms");
        }

        output.WriteLine();
        var table = new StringBuilder();
        string qemuHeader = string.Concat(qemuAccels.Select(a => $" QEMU {a} ms |"));
        table.AppendLine($"| workload | accelerator | ours ms | guest instructions | ours Minstr/s | exits/s |{qemuHeader} peer start-up ms | peer | ours/peer raw | ours/peer start-up-corrected | output |");
        table.AppendLine("|" + string.Concat(Enumerable.Repeat(" --- |", 11 + qemuAccels.Count)));
        output.Flush();
        var ourRuns = new Dictionary<(string Workload, string Spec), OurRun>();
        var qemuTcg = new Dictionary<string, QemuRun>();

        foreach (Workload w in workloads)
        {
            // QEMU first, then ours, per workload: side by side in time.
            var qemuRuns = new Dictionary<string, (QemuRun Run, bool Right)>();
            if (qemu is not null && w.Kind == WorkloadKind.RunToExit)
            {
                foreach (string accel in qemuAccels)
                {
                    // QEMU's start-up is measured again right before each workload, so that the correction sees the
                    // same machine load as the run it corrects (other work on a shared box moves it by 100s of ms).
                    qemuStartup[accel] = QemuRunner.Run(qemu, accel, WorkloadCatalog.BootImage, TimeSpan.FromSeconds(30)).Wall;
                    QemuRun q = QemuRunner.Run(qemu, accel, w.Image, GuestRunner.Timeout);
                    bool right = q.ExitCode == 1 && q.Serial == w.ExpectedSerial;
                    if (!right)
                    {
                        failures++;
                        Console.Error.WriteLine($"QEMU -accel {accel} {w.Name}: exit {q.ExitCode}, printed {GuestRunner.Escape(q.Serial)}, expected {GuestRunner.Escape(w.ExpectedSerial)}");
                    }

                    qemuRuns[accel] = (q, right);
                    if (accel == "tcg" && right)
                    {
                        qemuTcg[w.Name] = q;
                    }
                }
            }

            if (!AcceleratorCatalog.AvailableSpecs.Any())
            {
                string cells = string.Concat(qemuAccels.Select(a =>
                    qemuRuns.TryGetValue(a, out var q) ? $" {Ms(q.Run.Wall)}{(q.Right ? string.Empty : " WRONG")} |" : " — |"));
                table.AppendLine($"| {w.Name} | (none of ours runs) | — | — | — | — |{cells} — | — | — | — | {GuestRunner.Escape(w.ExpectedSerial)} expected |");
            }

            foreach (string spec in AcceleratorCatalog.AvailableSpecs)
            {
                string qemuCells = string.Concat(qemuAccels.Select(a =>
                    qemuRuns.TryGetValue(a, out var q) ? $" {Ms(q.Run.Wall)}{(q.Right ? string.Empty : " WRONG")} |" : " — |"));
                OurRun ours;
                try
                {
                    ours = GuestRunner.Run(spec, w);
                }
                catch (WrongResultException e)
                {
                    failures++;
                    Console.Error.WriteLine(e.Message);
                    table.AppendLine($"| {w.Name} | {spec} | — | — | — | — |{qemuCells} — | — | — | — | WRONG (not timed) |");
                    continue;
                }

                ourRuns[(w.Name, spec)] = ours;

                // The peer is QEMU with the same kind of accelerator: software for tcg, kvm for kvm.
                string peerAccel = spec.StartsWith("kvm", StringComparison.Ordinal) ? "kvm" : "tcg";
                string raw = "—", corrected = "—", peerName = "—", peerStartup = "—";
                if (qemuRuns.TryGetValue(peerAccel, out var peer) && peer.Right)
                {
                    peerName = "QEMU " + peerAccel;
                    peerStartup = Ms(qemuStartup[peerAccel]);
                    raw = Ratio(ours.Wall, peer.Run.Wall);
                    TimeSpan ourWork = ours.Wall - ourStartup[spec];
                    TimeSpan qemuWork = peer.Run.Wall - qemuStartup[peerAccel];
                    // Below ~20 ms of work on either side the difference is start-up noise, not a speed.
                    corrected = ourWork.TotalMilliseconds > 20 && qemuWork.TotalMilliseconds > 20
                        ? Ratio(ourWork, qemuWork)
                        : "— (work below start-up noise)";
                }

                string mips = ours.InstructionsPerSecond is double ips ? (ips / 1e6).ToString("0.0", CultureInfo.InvariantCulture) : "n/a";
                string instructions = ours.Result.Instructions >= 0 ? ours.Result.Instructions.ToString("N0", CultureInfo.InvariantCulture) : "n/a";
                string check = w.Kind == WorkloadKind.FirstInstruction ? "stopped after 1 instruction" : "ok " + w.ExpectedSerial.TrimEnd();
                table.AppendLine(
                    $"| {w.Name} | {spec} | {Ms(ours.Wall)} | {instructions} | {mips} | {ours.ExitsPerSecond.ToString("N0", CultureInfo.InvariantCulture)} |{qemuCells} {peerStartup} | {peerName} | {raw} | {corrected} | {check} |");
                Console.Error.WriteLine($"  done {w.Name} on {spec}: {Ms(ours.Wall)} ms");
            }
        }

        output.Write(table.ToString());
        output.WriteLine();
        output.WriteLine("ours ms: wall time of machine creation plus the run, in this process. QEMU ms: wall time of the whole");
        output.WriteLine($"`{QemuRunner.CommandLine("tcg")}` process, including its start-up.");
        output.WriteLine("peer: QEMU with the same kind of accelerator (tcg for our tcg, kvm for our kvm).");
        output.WriteLine("raw = ours ms / peer ms. start-up-corrected = (ours ms - our start-up) / (peer ms - peer start-up ms), with the");
        output.WriteLine("peer's start-up measured right before that row; '—' where either side's work is under 20 ms (start-up noise).");
        output.WriteLine("Ratios above 1 mean we are slower than QEMU. Minstr/s counts the run alone (not machine creation).");
        if (File.Exists("/proc/loadavg"))
        {
            output.WriteLine($"Load average at the end: {string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3))}.");
        }

        WriteJitSummary(output, workloads, ourRuns, qemuTcg);
        output.WriteLine($"Total quick-mode time: {total.Elapsed.TotalSeconds:0.0} s; {failures} wrong output(s).");
        return failures == 0 ? 0 : 1;
    }

    /// <summary>
    /// The JIT side by side with the interpreter and QEMU TCG on each workload both tcg engines ran: guest instructions
    /// per second of the run alone (JIT / interpreter), and wall time against QEMU's (QEMU / JIT, so above 1 means the
    /// JIT is faster), raw and start-up-corrected as in the main table.
    /// </summary>
    private static void WriteJitSummary(TextWriter output, IReadOnlyList<Workload> workloads,
        Dictionary<(string Workload, string Spec), OurRun> ours, Dictionary<string, QemuRun> qemuTcg)
    {
        const string Jit = "tcg,jit=on", Interpreter = "tcg,jit=off";
        var rows = new StringBuilder();
        foreach (Workload w in workloads)
        {
            if (w.Kind != WorkloadKind.RunToExit || !ours.TryGetValue((w.Name, Jit), out OurRun? jit) ||
                !ours.TryGetValue((w.Name, Interpreter), out OurRun? interpreter))
            {
                continue;
            }

            string speedup = jit.InstructionsPerSecond is double j && interpreter.InstructionsPerSecond is double i && i > 0
                ? (j / i).ToString("0.00", CultureInfo.InvariantCulture)
                : "—";
            string qemuMs = "—", vsQemu = "—";
            if (qemuTcg.TryGetValue(w.Name, out QemuRun? q))
            {
                qemuMs = Ms(q.Wall);
                vsQemu = (q.Wall.TotalMilliseconds / jit.Wall.TotalMilliseconds).ToString("0.00", CultureInfo.InvariantCulture);
            }

            string jitMips = jit.InstructionsPerSecond is double jm ? (jm / 1e6).ToString("0.0", CultureInfo.InvariantCulture) : "n/a";
            string intMips = interpreter.InstructionsPerSecond is double im ? (im / 1e6).ToString("0.0", CultureInfo.InvariantCulture) : "n/a";
            rows.AppendLine($"| {w.Name} | {Ms(jit.Wall)} | {jitMips} | {Ms(interpreter.Wall)} | {intMips} | {speedup} | {qemuMs} | {vsQemu} |");
        }

        if (rows.Length == 0)
        {
            return;
        }

        output.WriteLine();
        output.WriteLine("## JIT against the interpreter and QEMU TCG");
        output.WriteLine();
        output.WriteLine("| workload | JIT ms | JIT Minstr/s | interpreter ms | interpreter Minstr/s | JIT/interpreter (instr/s) | QEMU tcg ms | QEMU ms / JIT ms |");
        output.WriteLine("| --- | --- | --- | --- | --- | --- | --- | --- |");
        output.Write(rows.ToString());
        output.WriteLine();
        output.WriteLine("JIT/interpreter: guest instructions per second of the run alone, JIT over interpreter (the issue's goal: at least 5).");
        output.WriteLine("QEMU ms / JIT ms: wall times as in the main table (QEMU's includes its process start-up); above 1 the JIT is faster.");
        output.WriteLine();
    }

    private static IEnumerable<string> MachineDescription()
    {
        yield return $"date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC";
        yield return $"nproc: {Environment.ProcessorCount}";
        string? model = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
            : null;
        yield return $"CPU: {model ?? RuntimeInformation.ProcessArchitecture.ToString()}";
        yield return $"OS: {RuntimeInformation.OSDescription}";
        yield return $".NET: {RuntimeInformation.FrameworkDescription}";
        yield return $"QEMU: {QemuRunner.Version() ?? "not installed"}";
        if (File.Exists("/proc/loadavg"))
        {
            yield return $"load average at start (1, 5, 15 min; other work on this machine competes for the 2 cores): {string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3))}";
        }
    }

    private static TimeSpan Median(List<TimeSpan> samples)
    {
        samples.Sort();
        return samples[samples.Count / 2];
    }

    private static string Ms(TimeSpan t) => t.TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture);

    private static string Ratio(TimeSpan ours, TimeSpan theirs) =>
        (ours.TotalMilliseconds / theirs.TotalMilliseconds).ToString("0.00", CultureInfo.InvariantCulture);
}
