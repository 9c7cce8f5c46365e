namespace Hypervisor.Benchmarks.Workloads;

/// <summary>Every benchmark guest, built once per process, with its independently computed expected output.</summary>
public static class WorkloadCatalog
{
    /// <summary>What the boot image prints before it exits.</summary>
    public const string BootLine = "ready\r\n";

    // Repetitions: sized so that each compute workload is some tens of millions of guest instructions.
    private const int SieveRepeats = 48, CrcRepeats = 280, FibRepeats = 80, SortRepeats = 48, PagingPasses = 24;

    private static readonly Lazy<IReadOnlyList<Workload>> s_all = new(Build);

    /// <summary>All workloads in table order.</summary>
    public static IReadOnlyList<Workload> All => s_all.Value;

    /// <summary>The workload named <paramref name="name"/>.</summary>
    public static Workload Get(string name) =>
        All.FirstOrDefault(w => w.Name == name) ?? throw new ArgumentException($"No workload named '{name}'.", nameof(name));

    /// <summary>The image that prints <see cref="BootLine"/> and exits at once (machine start-up, for us and for QEMU).</summary>
    public static byte[] BootImage { get; } = FirmwareImage.BuildPrintAndExit(BootLine);

    /// <summary>
    /// One sieve pass in 64-bit code (about a million guest instructions): run once per accelerator before anything is
    /// measured, to warm up and to find accelerators far too slow to benchmark here.
    /// </summary>
    public static Workload Calibration { get; } = new("calibration", "one sieve pass, 64-bit code", WorkloadKind.RunToExit,
        FirmwareImage.Build(GuestMode.Long64, g => ComputeWorkloads.EmitSieve(g, 1)), Workload.ChecksumLine(ComputeWorkloads.ExpectedSieve(1)));

    private static IReadOnlyList<Workload> Build()
    {
        Crc32Table.SelfCheck();
        var list = new List<Workload>
        {
            new("boot-first-instruction", "create the machine and retire the first guest instruction", WorkloadKind.FirstInstruction,
                BootImage, string.Empty),
            new("boot-first-line", "create the machine, run from the reset vector to the first COM1 line and exit", WorkloadKind.RunToExit,
                BootImage, BootLine),
        };

        foreach (GuestMode mode in new[] { GuestMode.Real16, GuestMode.Protected32, GuestMode.Long64 })
        {
            int bits = (int)mode;
            list.Add(new($"sieve-{bits}", $"sieve of Eratosthenes below {ComputeWorkloads.SieveSize}, x{SieveRepeats}, {bits}-bit code",
                WorkloadKind.RunToExit, FirmwareImage.Build(mode, g => ComputeWorkloads.EmitSieve(g, SieveRepeats)),
                Workload.ChecksumLine(ComputeWorkloads.ExpectedSieve(SieveRepeats))));
            list.Add(new($"crc32-{bits}", $"bitwise CRC-32 of {ComputeWorkloads.CrcBufferSize} bytes, x{CrcRepeats}, {bits}-bit code",
                WorkloadKind.RunToExit, FirmwareImage.Build(mode, g => ComputeWorkloads.EmitCrc32(g, CrcRepeats)),
                Workload.ChecksumLine(ComputeWorkloads.ExpectedCrc32(CrcRepeats))));
            list.Add(new($"fib-{bits}", $"recursive fib({ComputeWorkloads.FibArgument}), x{FibRepeats}, {bits}-bit code",
                WorkloadKind.RunToExit, FirmwareImage.Build(mode, g => ComputeWorkloads.EmitFib(g, FibRepeats)),
                Workload.ChecksumLine(ComputeWorkloads.ExpectedFib(FibRepeats))));
            list.Add(new($"sort-{bits}", $"insertion sort of {ComputeWorkloads.SortCount} dwords, x{SortRepeats}, {bits}-bit code",
                WorkloadKind.RunToExit, FirmwareImage.Build(mode, g => ComputeWorkloads.EmitSort(g, SortRepeats)),
                Workload.ChecksumLine(ComputeWorkloads.ExpectedSort(SortRepeats))));
        }

        list.Add(new("out-unclaimed", $"{SystemWorkloads.OutCount:N0} OUTs to unclaimed port 0x{SystemWorkloads.UnclaimedPort:X}, 64-bit code",
            WorkloadKind.RunToExit, FirmwareImage.Build(GuestMode.Long64, g => SystemWorkloads.EmitOutLoop(g, SystemWorkloads.UnclaimedPort)),
            Workload.ChecksumLine(SystemWorkloads.OutCount)));
        list.Add(new("out-post", $"{SystemWorkloads.OutCount:N0} OUTs to the POST port 0x{SystemWorkloads.PostPort:X2}, 64-bit code",
            WorkloadKind.RunToExit, FirmwareImage.Build(GuestMode.Long64, g => SystemWorkloads.EmitOutLoop(g, SystemWorkloads.PostPort)),
            Workload.ChecksumLine(SystemWorkloads.OutCount)));
        list.Add(new("paging-scatter", $"512 scattered 4 KiB pages, {PagingPasses}x{SystemWorkloads.TouchesPerPass} strided touches, CR3 reload every {SystemWorkloads.TouchesPerCr3Reload}",
            WorkloadKind.RunToExit, FirmwareImage.Build(GuestMode.Long64, g => SystemWorkloads.EmitPaging(g, PagingPasses)),
            Workload.ChecksumLine(SystemWorkloads.ExpectedPaging(PagingPasses))));
        list.Add(new("timer-irq0", $"PIT at {SystemWorkloads.PitInputHz / SystemWorkloads.PitDivisor:0} Hz, HLT until {SystemWorkloads.TimerInterrupts:N0} IRQ0s are handled (ideal: {SystemWorkloads.TimerInterrupts * SystemWorkloads.PitDivisor / SystemWorkloads.PitInputHz:0.000} s)",
            WorkloadKind.RunToExit, FirmwareImage.Build(GuestMode.Protected32, SystemWorkloads.EmitTimer, SystemWorkloads.EmitTimerHandler),
            Workload.ChecksumLine(SystemWorkloads.TimerInterrupts)));
        return list;
    }
}
