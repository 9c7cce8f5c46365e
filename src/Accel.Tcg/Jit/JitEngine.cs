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
internal readonly record struct JitStatistics(long Translations, long Invalidations, long Evictions, long CachedRegions,
    long CacheBytes, long TranslationTicks, long RegionRuns, long JitInstructions)
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
    };
}

/// <summary>
/// The translation cache and tiering policy of one vCPU: a direct-mapped table keyed like the decoded-block cache
/// (guest-physical address, RIP, code size), an execution counter per block, translation at
/// <see cref="JitOptions.Threshold"/> executions, and FIFO eviction when the estimated size passes
/// <see cref="JitOptions.CacheBytes"/>. A translation is valid while the generation of its code page is unchanged.
/// Used from the vCPU thread only; the counters are read from any thread.
/// </summary>
internal sealed class JitEngine
{
    private const int Slots = 8192;

    private sealed class Entry
    {
        public ulong Phys;
        public ulong Rip;
        public int Bitness;
        public uint Generation;
        public int Hits;
        public bool Declined;
        public JitRegion? Region;
    }

    private readonly Entry?[] _entries = new Entry?[Slots];
    private readonly Queue<Entry> _fifo = new();
    private long _translations, _invalidations, _evictions, _cachedRegions, _cacheBytes, _ticks, _runs, _instructions;

    public JitEngine(JitOptions options) => Options = options;

    public JitOptions Options { get; }

    public JitStatistics Statistics => new(Interlocked.Read(ref _translations), Interlocked.Read(ref _invalidations),
        Interlocked.Read(ref _evictions), Interlocked.Read(ref _cachedRegions), Interlocked.Read(ref _cacheBytes),
        Interlocked.Read(ref _ticks), Interlocked.Read(ref _runs), Interlocked.Read(ref _instructions));

    private static int SlotOf(ulong phys, ulong rip, int bitness) =>
        (int)((phys ^ (phys >> 13) ^ (rip >> 3) ^ (ulong)bitness) & (Slots - 1));

    /// <summary>Counts one execution of <paramref name="block"/> and returns its translation when it has (or now gets) one.</summary>
    public JitRegion? Lookup(Interpreter.TcgCpu cpu, DecodedBlock block)
    {
        int slot = SlotOf(block.PhysicalAddress, block.Rip, block.Bitness);
        Entry? e = _entries[slot];
        if (e is not null && e.Phys == block.PhysicalAddress && e.Rip == block.Rip && e.Bitness == block.Bitness)
        {
            if (e.Generation != block.Generation)
            {
                if (e.Region is not null)
                {
                    Drop(e);
                    Interlocked.Increment(ref _invalidations);
                }

                e.Generation = block.Generation;
                e.Hits = 0;
                e.Declined = false;
            }
        }
        else
        {
            if (e?.Region is not null)
            {
                Drop(e);
                Interlocked.Increment(ref _evictions);
            }

            e = new Entry { Phys = block.PhysicalAddress, Rip = block.Rip, Bitness = block.Bitness, Generation = block.Generation };
            _entries[slot] = e;
        }

        if (e.Region is not null)
        {
            return e.Region;
        }

        if (e.Declined || ++e.Hits <= Options.Threshold)
        {
            return null;
        }

        // A block with no native instruction would only add spills around interpreter calls: it stays interpreted.
        if (block.Count == 0 || JitTranslator.NativeCount(block) == 0)
        {
            e.Declined = true;
            return null;
        }

        long start = Stopwatch.GetTimestamp();
        JitRegion region = JitTranslator.Translate(cpu.JitFormRegion(block));
        Interlocked.Add(ref _ticks, Stopwatch.GetTimestamp() - start);
        Interlocked.Increment(ref _translations);
        MakeRoom(region.CostBytes);
        e.Region = region;
        _fifo.Enqueue(e);
        if (_fifo.Count > 4 * Slots)
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

    /// <summary>The live translation of the block at <paramref name="phys"/>/<paramref name="rip"/> if its page is unchanged.</summary>
    public JitRegion? Find(ulong phys, ulong rip, int bitness, uint generation)
    {
        Entry? e = _entries[SlotOf(phys, rip, bitness)];
        return e is not null && e.Phys == phys && e.Rip == rip && e.Bitness == bitness && e.Region is { } r &&
               r.Generation == generation
            ? r
            : null;
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
        }

        Array.Clear(_entries);
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
