using Hypervisor.Accel.Tcg.State;

namespace Hypervisor.Accel.Tcg.Interpreter;

// Debug registers (Intel SDM Vol. 3B, chapter 18: 18.2 DR0-DR7, 18.3.1 debug exception conditions, 18.3.1.1 RF).
// Nothing here runs while DR7 enables no breakpoint and RFLAGS.RF is clear: the run loop then executes blocks as
// usual. With a breakpoint enabled it steps one instruction at a time (checking instruction breakpoints before
// each), and the TLB keeps no host pointer for a page that holds a data breakpoint, so every access to such a page
// takes the slow path where it is compared with DR0-DR3.
internal sealed partial class TcgCpu
{
    /// <summary>DR6 status bits (SDM Vol. 3B, 18.2.3).</summary>
    private const ulong Dr6Bd = 1UL << 13, Dr6Bs = 1UL << 14, Dr6Bt = 1UL << 15;

    /// <summary>DR7.GD, general detect (SDM Vol. 3B, 18.2.4).</summary>
    private const ulong Dr7Gd = 1UL << 13;

    /// <summary>True while DR7 enables at least one of DR0-DR3 (L or G bit): the run loop steps and checks.</summary>
    private bool _breakpointsEnabled;

    /// <summary>Whether the run loop currently steps for breakpoints (tests).</summary>
    internal bool BreakpointsEnabled => _breakpointsEnabled;

    /// <summary>True while an enabled breakpoint watches data accesses (R/W = 01 or 11).</summary>
    private bool _dataBreakpoints;

    /// <summary>DR6 bits of a debug trap to deliver before the next instruction (with <see cref="_singleStepTrap"/>).</summary>
    private ulong _pendingDr6;

    /// <summary>B0-B3 of data breakpoints hit by the instruction in progress (discarded if it faults).</summary>
    private int _dataHits;

    /// <summary>Queues a trap-class #DB with <paramref name="dr6Bits"/>, delivered at the next instruction boundary.</summary>
    private void PendDebugTrap(ulong dr6Bits)
    {
        _pendingDr6 |= dr6Bits;
        _singleStepTrap = true;
        EndBlock();
    }

    /// <summary>Delivers the pending debug trap (single-step, data or I/O breakpoint, task-switch T flag) as #DB.</summary>
    private void DeliverDebugTrap()
    {
        _singleStepTrap = false;
        ulong bits = _pendingDr6 == 0 ? Dr6Bs : _pendingDr6;
        _pendingDr6 = 0;
        S.Dr6 |= bits;
        DeliverEvent(Vec.DB, 0, false, EventKind.Debug, S.Rip);
    }

    /// <summary>Recomputes what the run loop must check after DR7 changed (MOV DR7, task switch, reset, host).</summary>
    private void OnDebugRegistersChanged()
    {
        ulong dr7 = S.Dr7;
        bool any = false, data = false;
        for (int i = 0; i < 4; i++)
        {
            if (((dr7 >> (i * 2)) & 3) != 0)
            {
                any = true;
                int rw = (int)((dr7 >> (16 + (i * 4))) & 3);
                data |= rw is 1 or 3;
            }
        }

        bool flush = data || _dataBreakpoints;
        _breakpointsEnabled = any;
        _dataBreakpoints = data;
        if (flush)
        {
            FlushTlb(); // TLB entries for watched pages must lose their host pointers (and regain them after)
        }
    }

    private ulong DebugAddress(int i) => i switch { 0 => S.Dr0, 1 => S.Dr1, 2 => S.Dr2, _ => S.Dr3 };

    /// <summary>Breakpoint length in bytes from DR7.LENn (00 = 1, 01 = 2, 11 = 4, 10 = 8).</summary>
    private ulong DebugLength(int i) => ((S.Dr7 >> (18 + (i * 4))) & 3) switch { 0 => 1, 1 => 2, 3 => 4, _ => 8 };

    /// <summary>
    /// Called before each instruction while breakpoints are enabled or RF is set: reports an instruction breakpoint
    /// as a fault-class #DB (true: the event was delivered, nothing ran), else clears RF, as the processor does at
    /// the start of every instruction after the code-breakpoint check (SDM Vol. 3B, 18.3.1.1).
    /// </summary>
    private bool DebugBeforeInstruction()
    {
        _dataHits = 0;
        if (_breakpointsEnabled && (S.Rflags & Fl.RF) == 0)
        {
            ulong linear = CodeLinearWrap(S.Seg[Seg.CS].Base + S.Rip);
            if (Is64)
            {
                linear = S.Rip;
            }

            int hits = 0;
            ulong dr7 = S.Dr7;
            for (int i = 0; i < 4; i++)
            {
                if (((dr7 >> (i * 2)) & 3) != 0 && ((dr7 >> (16 + (i * 4))) & 3) == 0 && DebugAddress(i) == linear)
                {
                    hits |= 1 << i;
                }
            }

            if (hits != 0)
            {
                S.Dr6 = (S.Dr6 & ~0xFUL) | (uint)hits;
                DeliverEvent(Vec.DB, 0, false, EventKind.Debug, S.Rip);
                return true;
            }
        }

        S.Rflags &= ~Fl.RF;
        return false;
    }

    /// <summary>After an instruction completed: data breakpoints it hit become a trap-class #DB.</summary>
    private void DebugAfterInstruction()
    {
        if (_dataHits != 0)
        {
            S.Dr6 &= ~0xFUL;
            PendDebugTrap((uint)_dataHits);
            _dataHits = 0;
        }
    }

    /// <summary>Whether a data breakpoint watches the 4-KiB linear page of <paramref name="linear"/> (so the TLB must not short-cut it).</summary>
    private bool DataBreakpointOnPage(ulong linear)
    {
        ulong dr7 = S.Dr7;
        for (int i = 0; i < 4; i++)
        {
            if (((dr7 >> (i * 2)) & 3) != 0 && ((dr7 >> (16 + (i * 4))) & 1) != 0)
            {
                ulong a = DebugAddress(i);
                if (((a >> 12) == (linear >> 12)) || (((a + DebugLength(i) - 1) >> 12) == (linear >> 12)))
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>Records data breakpoints that the access of <paramref name="size"/> bytes at <paramref name="linear"/> hits (SDM Vol. 3B, 18.2.5).</summary>
    private void CheckDataBreakpoints(ulong linear, int access, int size)
    {
        if (access == AccessFetch)
        {
            return;
        }

        ulong dr7 = S.Dr7;
        for (int i = 0; i < 4; i++)
        {
            int rw = (int)((dr7 >> (16 + (i * 4))) & 3);
            if (((dr7 >> (i * 2)) & 3) == 0 || !(rw == 3 || (rw == 1 && access == AccessWrite)))
            {
                continue;
            }

            ulong len = DebugLength(i);
            ulong start = DebugAddress(i) & ~(len - 1);
            if (linear <= start + len - 1 && start <= linear + (ulong)size - 1)
            {
                _dataHits |= 1 << i;
            }
        }
    }

    /// <summary>
    /// I/O breakpoints (R/W = 10, only with CR4.DE): an IN/OUT/INS/OUTS touching a watched port reports a trap after
    /// the instruction.
    /// </summary>
    private void CheckIoBreakpoints(ushort port, int size)
    {
        if (!_breakpointsEnabled || (S.Cr4 & Cr.Cr4De) == 0)
        {
            return;
        }

        ulong dr7 = S.Dr7;
        for (int i = 0; i < 4; i++)
        {
            if (((dr7 >> (i * 2)) & 3) == 0 || ((dr7 >> (16 + (i * 4))) & 3) != 2)
            {
                continue;
            }

            ulong len = DebugLength(i);
            ulong start = DebugAddress(i) & 0xFFFF & ~(len - 1);
            if (port <= start + len - 1 && start <= (ulong)port + (ulong)size - 1)
            {
                _dataHits |= 1 << i;
            }
        }
    }

    /// <summary>MOV to or from a debug register with DR7.GD set: #DB (fault) with DR6.BD, and GD cleared for the handler.</summary>
    private void CheckGeneralDetect()
    {
        if ((S.Dr7 & Dr7Gd) != 0)
        {
            S.Dr6 |= Dr6Bd;
            S.Dr7 &= ~Dr7Gd;
            throw new GuestFault(Vec.DB, 0, false);
        }
    }
}
