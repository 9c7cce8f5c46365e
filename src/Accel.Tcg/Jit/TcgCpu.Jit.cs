using System.Runtime.CompilerServices;
using Hypervisor.Accel.Tcg.Decoding;
using Hypervisor.Accel.Tcg.Jit;
using Hypervisor.Accel.Tcg.State;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Interpreter;

// The JIT's side of the vCPU: the dispatcher loop over translated regions (called from ExecuteBlock) and the helpers
// translated code calls. Kept in the Jit folder so the interpreter files carry a single call site.
internal sealed partial class TcgCpu
{
    /// <summary>The exit slot of the last region exit that may be linked to a successor (-1: none).</summary>
    internal int JitExitSlot;

    /// <summary>
    /// Test hook called after every region exit other than a fault, with the instructions retired in this dispatch so
    /// far (add <see cref="Statistics"/>.Instructions for the total): the lockstep test compares the state here.
    /// </summary>
    internal Action<TcgCpu, long>? JitRegionExitHook { get; set; }

    private GuestFault? _jitFault;

    /// <summary>The JIT of this vCPU, or null when the interpreter runs alone (<c>jit=off</c>).</summary>
    internal JitEngine? Jit { get; set; }

    /// <summary>
    /// Runs <paramref name="block"/> as translated code when it has a translation, and then follows region exits to
    /// other translated regions without going back through the decoded-block cache (direct exits remember their
    /// successor; RET looks its target up through the fetch TLB); returns false to let the interpreter run the block.
    /// Sets <see cref="_lastExecuted"/>; a guest fault is rethrown here with RIP and state as the interpreter leaves them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool RunJit(DecodedBlock block, long budget)
    {
        JitEngine jit = Jit!;
        int countdown = block.JitCountdown;
        if (countdown > 0)
        {
            block.JitCountdown = countdown - 1; // not translated: the next lookup counts the skipped executions
            return false;
        }

        JitRegion? region = jit.Lookup(this, block);
        if (region is null || !JitCanEnter(region))
        {
            return false;
        }

        // Translated code reads and writes S.Rflags directly: settle the fast path's lazy flags first.
        MaterializeFlags();

        long total = 0, runs = 0;
        while (true)
        {
            JitExitSlot = -1;
            runs++;
            _currentPage = region.Page;
            total += region.Code(region, this, budget - total);
            if (_jitFault is { } fault)
            {
                _jitFault = null;
                _lastExecuted += total; // ExecuteBlocks counts across the blocks it chains
                jit.CountRun(total, runs);
                throw fault;
            }

            int slot = JitExitSlot;
            JitRegionExitHook?.Invoke(this, _lastExecuted + total); // blocks chained before this dispatch count too
            if (slot < 0 || total >= budget || _kick != 0 || (_irqHint != 0 && (S.Rflags & Fl.IF) != 0) || _halted || _shutdownDetail is not null ||
                _nmiPending || (_lapicHint != 0 && _lapic is not null))
            {
                break;
            }

            JitRegion? next = slot < region.Successors.Length ? region.Successors[slot] : null;
            uint generation = next is null ? 0 : Physical.Generation(next.Page);
            if (next is null || next.Dead || next.Rip != S.Rip || next.Generation != generation || next.Bitness != region.Bitness)
            {
                next = FindRegion(jit, region.Bitness);
                if (slot < region.Successors.Length)
                {
                    region.Successors[slot] = next;
                }

                if (next is null)
                {
                    break;
                }
            }
            else if (!SameLinearPage(region, S.Rip) && !SameFetchPage(next))
            {
                // A link across pages stays valid only while the target page is mapped where it was.
                region.Successors[slot] = null;
                break;
            }

            if (next.Count > budget - total || !JitCanEnter(next))
            {
                break;
            }

            region = next;
        }

        jit.CountRun(total, runs);
        _lastExecuted += total; // ExecuteBlocks counts across the blocks it chains
        return true;
    }

    /// <summary>The translation of the code at RIP, found as GetBlock would find the block: CS checks, then the fetch TLB.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private JitRegion? FindRegion(JitEngine jit, int bitness)
    {
        if (CodeBitness != bitness)
        {
            return null;
        }

        ulong rip = S.Rip;
        ulong linear = bitness == 64 ? rip : (S.Seg[Seg.CS].Base + rip) & 0xFFFF_FFFF;
        if (bitness == 64 ? !IsCanonical(linear) : rip > S.Seg[Seg.CS].Limit)
        {
            return null;
        }

        ref Mmu.TlbEntry e = ref _tlb.Fetch[(int)((linear >> 12) & (Mmu.Tlb.Size - 1))];
        if (e.Tag != (linear >> 12) + 1 || (!e.User && _cpl == 3))
        {
            return null; // not in the fetch TLB: the dispatcher walks the page tables
        }

        ulong phys = (e.PhysPage << 12) | (linear & 0xFFF);
        return jit.Find(phys, rip, bitness, Physical.Generation(e.PhysPage));
    }

    /// <summary>Whether <paramref name="target"/> lies on the linear page <paramref name="region"/> is running from (then it maps to the same physical page).</summary>
    private bool SameLinearPage(JitRegion region, ulong target)
    {
        ulong csBase = region.Bitness == 64 ? 0 : S.Seg[Seg.CS].Base;
        ulong mask = region.Bitness == 64 ? ulong.MaxValue : 0xFFFF_FFFFUL;
        return (((csBase + target) & mask) >> 12) == (((csBase + region.Rip) & mask) >> 12);
    }

    private bool SameFetchPage(JitRegion next)
    {
        ulong linear = next.Bitness == 64 ? S.Rip : (S.Seg[Seg.CS].Base + S.Rip) & 0xFFFF_FFFF;
        ref Mmu.TlbEntry e = ref _tlb.Fetch[(int)((linear >> 12) & (Mmu.Tlb.Size - 1))];
        return e.Tag == (linear >> 12) + 1 && e.PhysPage == next.Page && (e.User || _cpl != 3);
    }

    /// <summary>
    /// The blocks of a new region: <paramref name="entry"/> and the blocks on its page that direct branches reach
    /// (breadth first, bounded), decoded the way GetBlock decodes them. Blocks that spill into the next page stay out,
    /// and so do blocks that have hardly run in the interpreter (<see cref="JitEngine.IsWarm"/>).
    /// </summary>
    internal List<DecodedBlock> JitFormRegion(DecodedBlock entry)
    {
        const int MaxBlocks = 32, MaxInstructions = 320;
        var blocks = new List<DecodedBlock> { entry };
        int bitness = entry.Bitness;
        if (bitness != CodeBitness || entry.Rip != S.Rip)
        {
            return blocks;
        }

        ulong ripMask = bitness == 64 ? ulong.MaxValue : bitness == 32 ? 0xFFFF_FFFFUL : 0xFFFFUL;
        ulong csBase = bitness == 64 ? 0 : S.Seg[Seg.CS].Base;
        ulong linearMask = bitness == 64 ? ulong.MaxValue : 0xFFFF_FFFFUL;
        ulong limit = bitness == 64 ? ulong.MaxValue : S.Seg[Seg.CS].Limit;
        ulong page = ((csBase + entry.Rip) & linearMask) >> 12;
        var seen = new HashSet<ulong> { entry.Rip };
        var queue = new Queue<ulong>();
        int total = entry.Count;
        Successors(entry, queue, seen, ripMask);
        ulong cr2 = S.Cr2;
        while (queue.Count > 0 && blocks.Count < MaxBlocks && total < MaxInstructions)
        {
            ulong rip = queue.Dequeue();
            ulong linear = (csBase + rip) & linearMask;
            if (linear >> 12 != page || rip > limit || (bitness == 64 && !IsCanonical(rip)))
            {
                continue;
            }

            ulong phys = (entry.Page << 12) | (linear & 0xFFF);
            if (Jit is { } jit && !jit.IsWarm(phys, rip, bitness))
            {
                continue; // never ran (or hardly): it would only make the region slower to compile
            }

            var b = new DecodedBlock();
            Decode(b, bitness, rip, linear, phys, entry.Page, limit);
            if (b.Count == 0)
            {
                continue;
            }

            ulong lastByte = (csBase + (b.Instructions[b.Count - 1].NextIP & ripMask) - 1) & linearMask;
            if (lastByte >> 12 != page)
            {
                continue;
            }

            b.Generation = entry.Generation;
            b.Cached = true;
            blocks.Add(b);
            total += b.Count;
            Successors(b, queue, seen, ripMask);
        }

        S.Cr2 = cr2; // decoding must not leave a trace (a fetch fault while decoding sets CR2)
        if (Physical.Generation(entry.Page) != entry.Generation)
        {
            blocks.RemoveRange(1, blocks.Count - 1);
        }

        return blocks;
    }

    private static void Successors(DecodedBlock b, Queue<ulong> queue, HashSet<ulong> seen, ulong ripMask)
    {
        // Return sites of the block's calls (the decoder follows a same-page call, so one may sit mid-block): a RET
        // of the region returns there without leaving it (JitTranslator, RET).
        for (int i = 0; i < b.Count; i++)
        {
            ref Instruction ins = ref b.Instructions[i];
            if (ins.Mnemonic == Mnemonic.Call && ins.Op0Kind is OpKind.NearBranch16 or OpKind.NearBranch32 or OpKind.NearBranch64 &&
                seen.Add(ins.NextIP & ripMask))
            {
                queue.Enqueue(ins.NextIP & ripMask);
            }
        }

        ref Instruction last = ref b.Instructions[b.Count - 1];
        if (last.Op0Kind is OpKind.NearBranch16 or OpKind.NearBranch32 or OpKind.NearBranch64 &&
            last.Mnemonic is not (Mnemonic.Loop or Mnemonic.Loope or Mnemonic.Loopne or Mnemonic.Jcxz or Mnemonic.Jecxz or Mnemonic.Jrcxz) &&
            seen.Add(last.NearBranchTarget))
        {
            queue.Enqueue(last.NearBranchTarget);
        }

        if ((last.FlowControl == FlowControl.Next || last.FlowControl == FlowControl.ConditionalBranch) && seen.Add(last.NextIP & ripMask))
        {
            queue.Enqueue(last.NextIP & ripMask);
        }
    }

    /// <summary><see cref="JitStep"/>: the instruction lies inside its decoded block (the region goes on after it unless it branched).</summary>
    internal const int JitStepContinues = 0;

    /// <summary><see cref="JitStep"/>: the region ends after the instruction (it ends its decoded block, or changes what the region read at entry).</summary>
    internal const int JitStepEnds = 1;

    /// <summary>
    /// <see cref="JitStep"/>: IN or OUT at the end of its decoded block. The interpreter ends the block there so that
    /// the run loop sees what the device did; the region goes on to the next instruction when the device did nothing
    /// the run loop must see (the dispatcher's own checks between regions) and left the region's code page alone.
    /// </summary>
    internal const int JitStepPortIo = 2;

    /// <summary>
    /// Runs instruction <paramref name="index"/> of <paramref name="region"/> in the interpreter: 0 continue, 1 the
    /// region ends after it (it branched, asked to end the block, or ends its decoded block as in the interpreter), 2 it
    /// faulted. <paramref name="mode"/> is <see cref="JitStepContinues"/>, <see cref="JitStepEnds"/> or <see cref="JitStepPortIo"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal int JitStep(JitRegion region, int index, int mode)
    {
        ref Instruction ins = ref region.Instructions[index];
        ulong next = ins.NextIP & region.RipMask;
        _nextRip = next;
        try
        {
            Execute(ref ins);
        }
        catch (GuestFault f)
        {
            _jitFault = f;
            return 2;
        }

        S.Rip = _nextRip;
        if (_endBlock)
        {
            _endBlock = false;
            return 1;
        }

        switch (mode)
        {
            case JitStepContinues:
                // A JMP or CALL the decoder followed continues its block at the target: the next instruction of the region.
                return _nextRip != (ulong)region.Rips[index + 1] ? 1 : 0;
            case JitStepPortIo:
                return _nextRip != next || _kick != 0 || (_irqHint != 0 && (S.Rflags & Fl.IF) != 0) || _halted || _shutdownDetail is not null ||
                       _nmiPending || (_lapicHint != 0 && _lapic is not null) || _singleStepTrap || _breakpointsEnabled ||
                       Physical.Generation(region.Page) != region.Generation ? 1 : 0;
            default:
                return 1;
        }
    }

    /// <summary>A read that missed the inline TLB path (or needs segmentation): false, with the fault kept, when it faults.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal bool JitReadSlow(int seg, ulong offset, int size, out ulong value)
    {
        try
        {
            value = ReadMem(seg, offset, size);
            return true;
        }
        catch (GuestFault f)
        {
            _jitFault = f;
            value = 0;
            return false;
        }
    }

    /// <summary>A write that missed the inline TLB path (or needs segmentation): false, with the fault kept, when it faults.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal bool JitWriteSlow(int seg, ulong offset, int size, ulong value)
    {
        try
        {
            WriteMem(seg, offset, size, value);
            return true;
        }
        catch (GuestFault f)
        {
            _jitFault = f;
            return false;
        }
    }

    /// <summary>Code-page tracking after an inline RAM write, as WriteLinear does it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void JitNoteWrite(ulong physPage)
    {
        Physical.NoteWrite(physPage);
        if (physPage == _currentPage)
        {
            EndBlock();
        }
    }

    /// <summary>Guest instructions retired by this vCPU so far (the tiering clock; blocks being chained not yet counted).</summary>
    internal long JitClock => _retired + _lastExecuted;

    /// <summary>The CS limit (translated 16/32-bit RET checks its target against it).</summary>
    internal uint JitCsLimit() => S.Seg[Seg.CS].Limit;

    /// <summary>The stack address size stack instructions use now: 64 in 64-bit mode, else 32 or 16 by SS.B.</summary>
    internal int JitStackBits => CodeBitness == 64 ? 64 : S.Seg[Seg.SS].Big ? 32 : 16;

    /// <summary>
    /// Whether <paramref name="region"/> may run in the current state: outside 64-bit mode its static branch targets
    /// lie within the CS limit and its stack instructions were translated for the current SS.B.
    /// </summary>
    private bool JitCanEnter(JitRegion region) =>
        region.Bitness == 64 ||
        (region.MaxBranchTarget <= S.Seg[Seg.CS].Limit && (region.StackBits == 0 || region.StackBits == JitStackBits));

    /// <summary>Base of segment <paramref name="seg"/> (read at the entry of a 16/32-bit region).</summary>
    internal ulong JitSegmentBase(int seg) => S.Seg[seg].Base;

    /// <summary>
    /// The highest offset translated 16/32-bit code may read or write inline in segment <paramref name="seg"/> (its
    /// limit when it is an expand-up writable data segment, or any segment outside protected mode or in virtual-8086
    /// mode), else -1: then every access goes through ReadMem/WriteMem, which apply all of Linear's checks.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal long JitSegmentLimit(int seg)
    {
        ref SegmentCache sc = ref S.Seg[seg];
        if (ProtectedMode && ((S.Rflags & Fl.VM) == 0 && (sc.Unusable || (sc.Type & 0xA) != 0x2) || sc.IsExpandDown))
        {
            return -1;
        }

        return sc.Limit;
    }

    /// <summary>Whether SMAP lets supervisor accesses reach user pages now (read at region entry).</summary>
    internal bool JitSmapAllows() => SmapAllows();

    /// <summary>Records #GP(0) for the translated code's fault exit.</summary>
    internal void JitFaultGp0() => _jitFault = Gp0();
}
