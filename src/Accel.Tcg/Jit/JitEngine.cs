using System.Diagnostics;
using Hypervisor.Accel.Tcg.Decoding;

namespace Hypervisor.Accel.Tcg.Jit;

/// <summary>Counters of one vCPU's JIT (a snapshot; see <see cref="JitEngine.Statistics"/>).</summary>
/// <param name="Translations">Regions translated.</param>
/// <param name="Invalidations">Translations dropped because their code page was written (self-modifying code, loaders).</param>
/// <param name="Evictions">Translations dropped to keep the cache within its bound or because their slot was reused.</param>
/// <param name="CachedRegions">Translations live in the cache now.</param>
/// <param name="CacheBytes">Estimated memory of the live translations.</param>
/// <param name="TranslationTicks">Time spent translating, in <see cref="Stopwatch"/> ticks.</param>
/// <param name="RegionRuns">Region entries (from the dispatcher or through a link).</param>
/// <param name="JitInstructions">Guest instructions retired inside translated regions.</param>
/// <param name="Discarded">Background translations thrown away because their code page was written while they compiled.</param>
internal readonly record struct JitStatistics(long Translations, long Invalidations, long Evictions, long CachedRegions,
    long CacheBytes, long TranslationTicks, long RegionRuns, long JitInstructions, long Discarded)
{
    public TimeSpan TranslationTime => Stopwatch.GetElapsedTime(0, TranslationTicks);

    /// <summary>The counters under the names <see cref="Hypervisor.Core.Machine.VcpuStatistics.Details"/> reports them with.</summary>
    public IReadOnlyDictionary<string, long> ToDetails() => new Dictionary<string, long>
    {
        ["jit.translations"] = Translations,
        ["jit.invalidations"] = Invalidations,
        ["jit.evictions"] = Evictions,
        ["jit.cached-regions"] = CachedRegions,
        ["jit.cache-bytes"] = CacheBytes,
        ["jit.translation-microseconds"] = (long)TranslationTime.TotalMicroseconds,
        ["jit.region-runs"] = RegionRuns,
        ["jit.instructions"] = JitInstructions,
        ["jit.discarded"] = Discarded,
    };
}

/// <summary>
/// The translation cache and tiering policy of one vCPU: a two-way set-associative table keyed like the decoded-block
/// cache (guest-physical address, RIP, code size), a count of the instructions each block retired in the interpreter,
/// translation once that passes <see cref="JitOptions.Threshold"/> (more for blocks whose page keeps being written, see
/// <see cref="ThresholdOf"/>), on the background compiler (<see cref="JitCompiler"/>) while the interpreter keeps
/// running the block, and FIFO eviction when the estimated size passes <see cref="JitOptions.CacheBytes"/>. A
/// translation is valid while the generation of its code page is unchanged. Used from the vCPU thread only (the
/// compiler thread touches only its <see cref="JitCompiler.Job"/>); the counters are read from any thread.
/// </summary>
internal sealed class JitEngine
{
    private const int Sets = 16384;

    /// <summary>Misses of a set whose two ways both hold translations before a new block may evict the older one.</summary>
    private const int FullSetPatience = 64;

    /// <summary>
    /// An epoch of the tiering clock is 2^EpochBits guest instructions retired by the vCPU (about 16.8 million, a
    /// few tenths of a second in the interpreter); a block's count is halved for every epoch it did not run in.
    /// </summary>
    internal const int EpochBits = 24;

    /// <summary>Instructions below which a region without a loop is not translated (<see cref="WorthTranslating"/>).</summary>
    internal const int MinStraightInstructions = 16;

    /// <summary>
    /// Most executions of an untranslated block between two tiering lookups (<see cref="Lookup"/>). A lookup costs the
    /// vCPU a dependent load of the block's table entry and the bookkeeping; done at every execution of every block it
    /// was the largest cost of the JIT on the Linux boot (about 1.2 s of the vCPU thread's CPU: Lookup, Use, Probe,
    /// RunJit). A block is looked up again after about 1/64 of the threshold's instructions (at most this many
    /// executions, at least one: with a small threshold every execution counts, as before), so a translation is
    /// queued at most that much later.
    /// </summary>
    internal const int MaxBatch = 256;

    private sealed class Entry
    {
        public ulong Phys;
        public ulong Rip;
        public int Bitness;
        public uint Generation;
        public long Hits;

        /// <summary>The tiering epoch (<see cref="EpochBits"/>) <see cref="Hits"/> was last decayed to.</summary>
        public long Epoch;
        public bool Declined;
        public int Invalidations;
        public JitRegion? Region;
        public JitCompiler.Job? Pending;

        /// <summary>Set when the entry left the table (a block's cached reference to it is then stale).</summary>
        public bool Gone;

        public bool Valuable => Region is not null || Pending is not null;
    }

    private readonly Entry?[] _entries = new Entry?[Sets * 2];
    private readonly byte[] _setMisses = new byte[Sets];
    private readonly Queue<Entry> _fifo = new();
    private long _translations, _invalidations, _evictions, _cachedRegions, _cacheBytes, _ticks, _runs, _instructions, _discarded;
    private int _queued;

    public JitEngine(JitOptions options) => Options = options;

    public JitOptions Options { get; }

    public JitStatistics Statistics => new(Interlocked.Read(ref _translations), Interlocked.Read(ref _invalidations),
        Interlocked.Read(ref _evictions), Interlocked.Read(ref _cachedRegions), Interlocked.Read(ref _cacheBytes),
        Interlocked.Read(ref _ticks), Interlocked.Read(ref _runs), Interlocked.Read(ref _instructions), Interlocked.Read(ref _discarded));

    /// <summary>Translations queued on the background compiler and not finished yet.</summary>
    internal int Queued => Volatile.Read(ref _queued);

    private static int SetOf(ulong phys, ulong rip, int bitness) =>
        (int)((phys ^ (phys >> 14) ^ (rip >> 2) ^ (ulong)bitness) & (Sets - 1));

    /// <summary>
    /// Instructions a block retires in the interpreter before it is translated: the configured threshold, quadrupled for every time a translation of
    /// this block was dropped because its page was written (pages written often, such as code next to data or code
    /// being patched, are translated later and later instead of again and again).
    /// </summary>
    private long ThresholdOf(Entry e) => (long)Options.Threshold << Math.Min(2 * e.Invalidations, 24);

    /// <summary>
    /// Counts one execution of <paramref name="block"/> and returns its translation when it has one; queues the
    /// translation (or translates at once without a background compiler) when the block has become hot.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public JitRegion? Lookup(Interpreter.TcgCpu cpu, DecodedBlock block)
    {
        int executions = Math.Max(block.JitBatch, 1);

        // The entry the block found last time, if it is still in the table and still this block's (decoded blocks are
        // reused for other code): the common case costs no hashing and no probe of the table.
        Entry? e = System.Runtime.CompilerServices.Unsafe.As<Entry?>(block.JitEntry);
        if (e is null || e.Gone || e.Phys != block.PhysicalAddress || e.Rip != block.Rip || e.Bitness != block.Bitness)
        {
            e = Probe(block);
            if (e is null)
            {
                Defer(block, MaxBatch);
                return null;
            }

            block.JitEntry = e;
        }

        JitRegion? region = Use(cpu, block, e, executions);
        if (region is null)
        {
            Defer(block, e.Declined ? MaxBatch : (int)Math.Clamp(Options.Threshold / (64L * Math.Max(block.Count, 1)), 1, MaxBatch));
        }
        else
        {
            block.JitBatch = 1;
        }

        return region;
    }

    /// <summary>Lets the block run <paramref name="batch"/> times before its next lookup, which counts them all.</summary>
    private static void Defer(DecodedBlock block, int batch)
    {
        block.JitBatch = batch;
        block.JitCountdown = batch - 1;
    }

    /// <summary>The table's entry for <paramref name="block"/>, inserted if missing; null when its set is full of translations.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private Entry? Probe(DecodedBlock block)
    {
        int set = SetOf(block.PhysicalAddress, block.Rip, block.Bitness);
        int way0 = set * 2;
        Entry? e = _entries[way0];
        if (e is null || e.Phys != block.PhysicalAddress || e.Rip != block.Rip || e.Bitness != block.Bitness)
        {
            Entry? other = _entries[way0 + 1];
            if (other is not null && other.Phys == block.PhysicalAddress && other.Rip == block.Rip && other.Bitness == block.Bitness)
            {
                // Most recently used first.
                _entries[way0 + 1] = e;
                _entries[way0] = other;
                e = other;
            }
            else
            {
                e = Insert(set, block);
            }
        }

        return e;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private JitRegion? Use(Interpreter.TcgCpu cpu, DecodedBlock block, Entry e, int executions)
    {
        if (e.Generation != block.Generation)
        {
            if (e.Region is not null || e.Pending is not null)
            {
                if (e.Region is not null)
                {
                    Drop(e);
                    Interlocked.Increment(ref _invalidations);
                }

                Cancel(e);
                e.Invalidations++;
            }

            e.Generation = block.Generation;
            e.Hits = 0;
            e.Declined = false;
        }

        if (e.Region is not null)
        {
            return e.Region;
        }

        if (e.Pending is { } job)
        {
            return job.Done ? Install(e, job) : null;
        }

        long epoch = cpu.JitClock >> EpochBits;
        if (e.Epoch != epoch)
        {
            // Halve the count for every epoch since the block last ran: only code that retires the threshold within a
            // few epochs (a loop running now) is translated, not code that collects it slowly over a whole boot and
            // has mostly finished running by the time its translation is ready.
            e.Hits >>= (int)Math.Min(epoch - e.Epoch, 63);
            e.Epoch = epoch;
        }

        e.Hits += (long)block.Count * executions;
        if (e.Declined || e.Hits <= ThresholdOf(e))
        {
            return null;
        }

        // A block with no native instruction would only add spills around interpreter calls: it stays interpreted
        // (except with threshold 0, the eager mode the test suites use to run everything through translated code).
        int stackBits = cpu.JitStackBits;
        if (block.Count == 0 || (Options.Threshold > 0 && JitTranslator.NativeCount(block, stackBits) == 0))
        {
            e.Declined = true;
            return null;
        }

        bool background = Options.Background && JitCompiler.Available;
        if (background && Volatile.Read(ref _queued) >= Options.MaxQueued)
        {
            return null; // the compiler is busy: try again at a later execution
        }

        List<DecodedBlock> blocks = cpu.JitFormRegion(block);
        if (Options.Threshold > 0 && !WorthTranslating(blocks, stackBits))
        {
            e.Declined = true;
            return null;
        }

        if (!background)
        {
            long start = Stopwatch.GetTimestamp();
            JitRegion region = JitTranslator.Translate(blocks, stackBits);
            Interlocked.Add(ref _ticks, Stopwatch.GetTimestamp() - start);
            return Add(e, region);
        }

        // The entry block belongs to the decoded-block cache, which may reuse it while the compiler reads it.
        blocks[0] = Snapshot(blocks[0]);
        Interlocked.Increment(ref _queued);
        e.Pending = new JitCompiler.Job(blocks, stackBits, this);
        JitCompiler.Enqueue(e.Pending);
        return null;
    }

    /// <summary>
    /// Whether a region of <paramref name="blocks"/> can repay its compilation: at least half of its instructions are
    /// translated natively (each of the others is an interpreter call with the registers spilled around it, no faster
    /// than the interpreter: on the Linux boot, SSE loops of the kernel's random-number code with a fifth of their
    /// instructions native ran at 140 ns per instruction translated), and it has a loop (a branch to one of its
    /// blocks) or at least <see cref="MinStraightInstructions"/> instructions (a short straight region runs a handful
    /// of instructions per entry, which the interpreter runs about as fast as entering and leaving translated code; on
    /// the boot a one-instruction region, the kernel's return thunk, was entered 2.9 million times).
    /// </summary>
    internal static bool WorthTranslating(List<DecodedBlock> blocks, int stackBits)
    {
        int total = 0, native = 0;
        foreach (DecodedBlock b in blocks)
        {
            total += b.Count;
            native += JitTranslator.NativeCount(b, stackBits);
        }

        if (native * 2 < total)
        {
            return false;
        }

        if (total >= MinStraightInstructions)
        {
            return true;
        }

        foreach (DecodedBlock b in blocks)
        {
            for (int i = 0; i < b.Count; i++)
            {
                ref Iced.Intel.Instruction ins = ref b.Instructions[i];
                if (ins.Op0Kind is Iced.Intel.OpKind.NearBranch16 or Iced.Intel.OpKind.NearBranch32 or Iced.Intel.OpKind.NearBranch64)
                {
                    ulong target = ins.NearBranchTarget;
                    if (blocks.Exists(t => t.Rip == target))
                    {
                        return true;
                    }
                }
            }
        }

        return false;
    }

    /// <summary>Called by the compiler thread when a job of this engine finished or was skipped.</summary>
    internal void JobFinished(long ticks)
    {
        Interlocked.Add(ref _ticks, ticks);
        Interlocked.Decrement(ref _queued);
    }

    /// <summary>Waits until the background compiler has no job of this engine left (tests; bounded by <paramref name="timeout"/>).</summary>
    internal bool WaitIdle(TimeSpan timeout)
    {
        long end = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (Volatile.Read(ref _queued) > 0)
        {
            if (Stopwatch.GetTimestamp() > end)
            {
                return false;
            }

            Thread.Sleep(1);
        }

        return true;
    }

    private JitRegion? Install(Entry e, JitCompiler.Job job)
    {
        e.Pending = null;
        job.Error?.Throw();
        if (job.Result is not { } region)
        {
            return null; // cancelled before it started
        }

        if (region.Generation != e.Generation)
        {
            Interlocked.Increment(ref _discarded);
            return null;
        }

        return Add(e, region);
    }

    private JitRegion Add(Entry e, JitRegion region)
    {

        Interlocked.Increment(ref _translations);
        MakeRoom(region.CostBytes);
        e.Region = region;
        _fifo.Enqueue(e);
        if (_fifo.Count > 8 * Sets)
        {
            // Entries invalidated or replaced since they were queued: keep the queue proportional to the live cache.
            Entry[] live = [.. _fifo.Where(x => x.Region is not null).Distinct()];
            _fifo.Clear();
            foreach (Entry x in live)
            {
                _fifo.Enqueue(x);
            }
        }

        Interlocked.Increment(ref _cachedRegions);
        Interlocked.Add(ref _cacheBytes, region.CostBytes);
        return region;
    }

    /// <summary>
    /// A new entry for <paramref name="block"/> in <paramref name="set"/>, in place of the less valuable way (one
    /// without translation, else the less recently used); null while both ways hold translations and the set has not
    /// missed <see cref="FullSetPatience"/> times (a cold block must not throw out hot code on every collision).
    /// </summary>
    private Entry? Insert(int set, DecodedBlock block)
    {
        int way0 = set * 2;
        Entry? a = _entries[way0], b = _entries[way0 + 1];
        if (a?.Valuable == true && b?.Valuable == true && ++_setMisses[set] < FullSetPatience)
        {
            return null;
        }

        _setMisses[set] = 0;
        Entry? victim = b?.Valuable == true && a?.Valuable != true ? a : b;
        if (victim is not null)
        {
            if (victim.Region is not null)
            {
                Drop(victim);
                Interlocked.Increment(ref _evictions);
            }

            Cancel(victim);
            victim.Gone = true;
        }

        var e = new Entry { Phys = block.PhysicalAddress, Rip = block.Rip, Bitness = block.Bitness, Generation = block.Generation };
        _entries[way0 + 1] = victim == a ? b : a;
        _entries[way0] = e;
        return e;
    }

    private static void Cancel(Entry e)
    {
        if (e.Pending is { } job)
        {
            job.Cancel();
            e.Pending = null;
        }
    }

    private static DecodedBlock Snapshot(DecodedBlock b)
    {
        var copy = new DecodedBlock
        {
            Count = b.Count, Rip = b.Rip, PhysicalAddress = b.PhysicalAddress, Page = b.Page, Generation = b.Generation,
            Bitness = b.Bitness, Cached = b.Cached,
        };
        Array.Copy(b.Instructions, copy.Instructions, b.Count);
        return copy;
    }

    /// <summary>
    /// Whether the block at <paramref name="phys"/>/<paramref name="rip"/> is worth a place in a region being formed:
    /// it ran in the interpreter since its page last changed, or has a translation (every block when the threshold is
    /// 0). Paths that never ran stay out, so regions stay small; a bar relative to the threshold was tried and left
    /// loop exits and outer loops out of the region (sieve-32: 17 times the region entries, 1.5 times the CPU time).
    /// </summary>
    public bool IsWarm(ulong phys, ulong rip, int bitness)
    {
        if (Options.Threshold == 0)
        {
            return true;
        }

        int way0 = SetOf(phys, rip, bitness) * 2;
        for (int w = way0; w < way0 + 2; w++)
        {
            Entry? e = _entries[w];
            if (e is not null && e.Phys == phys && e.Rip == rip && e.Bitness == bitness)
            {
                return e.Region is not null || e.Pending is not null || e.Hits > 0;
            }
        }

        return false;
    }

    /// <summary>The live translation of the block at <paramref name="phys"/>/<paramref name="rip"/> if its page is unchanged.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public JitRegion? Find(ulong phys, ulong rip, int bitness, uint generation)
    {
        int way0 = SetOf(phys, rip, bitness) * 2;
        for (int w = way0; w < way0 + 2; w++)
        {
            Entry? e = _entries[w];
            if (e is not null && e.Phys == phys && e.Rip == rip && e.Bitness == bitness)
            {
                return e.Region is { } r && r.Generation == generation ? r : null;
            }
        }

        return null;
    }

    internal void CountRun(long instructions, long runs)
    {
        Interlocked.Add(ref _instructions, instructions);
        Interlocked.Add(ref _runs, runs);
    }

    /// <summary>Drops every translation (the host replaced memory or reset the vCPU).</summary>
    public void Flush()
    {
        foreach (Entry? e in _entries)
        {
            if (e?.Region is not null)
            {
                Drop(e);
                Interlocked.Increment(ref _invalidations);
            }

            if (e is not null)
            {
                Cancel(e);
                e.Gone = true;
            }
        }

        Array.Clear(_entries);
        Array.Clear(_setMisses);
        _fifo.Clear();
    }

    private void MakeRoom(int bytes)
    {
        while (_fifo.Count > 0 && Interlocked.Read(ref _cacheBytes) + bytes > Options.CacheBytes)
        {
            Entry old = _fifo.Dequeue();
            if (old.Region is not null)
            {
                Drop(old);
                Interlocked.Increment(ref _evictions);
            }
        }
    }

    private void Drop(Entry e)
    {
        JitRegion r = e.Region!;
        r.Dead = true;
        e.Region = null;
        Interlocked.Decrement(ref _cachedRegions);
        Interlocked.Add(ref _cacheBytes, -r.CostBytes);
    }
}
