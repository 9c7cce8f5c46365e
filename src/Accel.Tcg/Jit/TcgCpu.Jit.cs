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

    private GuestFault? _jitFault;

    /// <summary>The JIT of this vCPU, or null when the interpreter runs alone (<c>jit=off</c>).</summary>
    internal JitEngine? Jit { get; set; }

    /// <summary>
    /// Runs <paramref name="block"/> (and same-page successors it links to) as translated code when it has a
    /// translation; returns false to let the interpreter run it. Sets <see cref="_lastExecuted"/>; a guest fault is
    /// rethrown here with RIP and state already as the interpreter leaves them.
    /// </summary>
    private bool RunJit(DecodedBlock block, long budget)
    {
        JitEngine jit = Jit!;
        JitRegion? region = jit.Lookup(block);
        if (region is null || (region.Bitness != 64 && region.MaxBranchTarget > S.Seg[Seg.CS].Limit))
        {
            return false;
        }

        ulong csBase = region.Bitness == 64 ? 0 : S.Seg[Seg.CS].Base;
        ulong linearPage = ((csBase + S.Rip) & (region.Bitness == 64 ? ulong.MaxValue : 0xFFFF_FFFFUL)) >> 12;
        long total = 0, runs = 0;
        while (true)
        {
            JitExitSlot = -1;
            runs++;
            total += region.Code(region, this, budget - total);
            if (_jitFault is { } fault)
            {
                _jitFault = null;
                _lastExecuted = total;
                jit.CountRun(total, runs);
                throw fault;
            }

            int slot = JitExitSlot;
            if (slot < 0 || total >= budget || _kick != 0 || _irqHint != 0 || _halted || _shutdownDetail is not null)
            {
                break;
            }

            // Direct link: only to a region on the same linear (hence physical) page, whose code is unchanged.
            ulong target = S.Rip;
            ulong linear = (csBase + target) & (region.Bitness == 64 ? ulong.MaxValue : 0xFFFF_FFFFUL);
            if (linear >> 12 != linearPage)
            {
                break;
            }

            uint generation = Physical.Generation(region.Page);
            JitRegion? next = region.Successors[slot];
            if (next is null || next.Dead || next.Rip != target || next.Generation != generation)
            {
                next = jit.Find((region.Page << 12) | (linear & 0xFFF), target, region.Bitness, generation);
                region.Successors[slot] = next;
                if (next is null)
                {
                    break;
                }
            }

            if (next.Count > budget - total || (next.Bitness != 64 && next.MaxBranchTarget > S.Seg[Seg.CS].Limit))
            {
                break;
            }

            region = next;
        }

        jit.CountRun(total, runs);
        _lastExecuted = total;
        return true;
    }

    /// <summary>Runs instruction <paramref name="index"/> of <paramref name="region"/> in the interpreter: 0 continue, 1 the region ends after it, 2 it faulted.</summary>
    internal int JitStep(JitRegion region, int index)
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

        return index == region.Count - 1 || _nextRip != next ? 1 : 0;
    }

    /// <summary>A read that missed the inline TLB path (or needs segmentation): false, with the fault kept, when it faults.</summary>
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
    internal void JitNoteWrite(ulong physPage)
    {
        Physical.NoteWrite(physPage);
        if (physPage == _currentPage)
        {
            EndBlock();
        }
    }

    /// <summary>Records #GP(0) for the translated code's fault exit.</summary>
    internal void JitFaultGp0() => _jitFault = Gp0();
}
