using System.Collections.Concurrent;
using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Hypervisor.Benchmarks.Running;

namespace Hypervisor.Benchmarks.Bdn;

/// <summary>
/// A job short enough for a 2-core machine: in-process (so the guest counters reach the columns below), monitoring
/// strategy (each invocation is a whole machine run of a fraction of a second to seconds: no pilot stage, no unrolling),
/// one warm-up and three measured iterations.
/// </summary>
public sealed class ShortRunConfig : ManualConfig
{
    /// <summary>Creates the configuration.</summary>
    public ShortRunConfig()
    {
        AddJob(Job.Default
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithStrategy(RunStrategy.Monitoring)
            .WithLaunchCount(1)
            .WithWarmupCount(1)
            .WithIterationCount(3)
            .WithInvocationCount(1)
            .WithUnrollFactor(1)
            .WithId("short"));
        AddColumn(new GuestColumn("Guest instr", s => s.Instructions >= 0 ? s.Instructions.ToString("N0", CultureInfo.InvariantCulture) : "n/a"));
        AddColumn(new GuestColumn("Minstr/s", s => s.InstructionsPerSecond is double v ? (v / 1e6).ToString("0.0", CultureInfo.InvariantCulture) : "n/a"));
        AddColumn(new GuestColumn("Exits/s", s => s.ExitsPerSecond.ToString("N0", CultureInfo.InvariantCulture)));
        AddColumn(new GuestColumn("Guest output", s => s.Output));
        WithOptions(ConfigOptions.DisableOptimizationsValidator);
    }

    private sealed class GuestColumn(string name, Func<RunStatistics.Entry, string> value) : IColumn
    {
        public string Id => "Guest." + name;

        public string ColumnName => name;

        public bool AlwaysShow => true;

        public ColumnCategory Category => ColumnCategory.Custom;

        public int PriorityInCategory => 0;

        public bool IsNumeric => false;

        public UnitType UnitType => UnitType.Dimensionless;

        public string Legend => name switch
        {
            "Guest instr" => "Guest instructions retired in the last measured run",
            "Minstr/s" => "Guest instructions per second of the run (machine creation excluded), mean of the measured runs",
            "Exits/s" => "Exits to the host per second of the run, mean of the measured runs",
            _ => "The verified COM1 output of the guest",
        };

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            string workload = (string)benchmarkCase.Parameters["Workload"];
            string accelerator = (string)benchmarkCase.Parameters["Accelerator"];
            return RunStatistics.TryGet(workload, accelerator, out RunStatistics.Entry? e) ? value(e) : "?";
        }

        public bool IsAvailable(Summary summary) => true;

        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    }
}

/// <summary>Guest counters of the runs BenchmarkDotNet made in this process (the toolchain is in-process).</summary>
public static class RunStatistics
{
    private static readonly ConcurrentDictionary<(string, string), Entry> s_entries = new();

    /// <summary>Counters of one workload on one accelerator.</summary>
    public sealed class Entry
    {
        private double _ipsSum, _exitsSum;
        private int _ipsCount, _count;

        /// <summary>Instructions of the last run.</summary>
        public long Instructions { get; private set; }

        /// <summary>Mean instructions per second, or null when not counted.</summary>
        public double? InstructionsPerSecond => _ipsCount == 0 ? null : _ipsSum / _ipsCount;

        /// <summary>Mean exits per second.</summary>
        public double ExitsPerSecond => _count == 0 ? 0 : _exitsSum / _count;

        /// <summary>The verified output.</summary>
        public string Output { get; private set; } = string.Empty;

        internal void Add(OurRun run)
        {
            Instructions = run.Result.Instructions;
            if (run.InstructionsPerSecond is double ips)
            {
                _ipsSum += ips;
                _ipsCount++;
            }

            _exitsSum += run.ExitsPerSecond;
            _count++;
            Output = run.Serial.Length == 0 ? "(stopped after 1 instr)" : run.Serial.TrimEnd();
        }
    }

    /// <summary>Adds a verified run.</summary>
    public static void Record(string workload, string accelerator, OurRun run) =>
        s_entries.GetOrAdd((workload, accelerator), _ => new Entry()).Add(run);

    /// <summary>The counters of a workload on an accelerator.</summary>
    public static bool TryGet(string workload, string accelerator, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Entry? entry) =>
        s_entries.TryGetValue((workload, accelerator), out entry);
}
