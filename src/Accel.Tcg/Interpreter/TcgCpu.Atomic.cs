using Hypervisor.Accel.Tcg.State;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Interpreter;

// Locked read-modify-write instructions (a LOCK prefix, and XCHG with a memory operand, which is always locked: SDM
// Vol. 2, XCHG) are atomic across the vCPU threads of a machine, as on hardware (SDM Vol. 3A, 9.1.2.2).
//
// The instruction runs once against a snapshot of its memory operand (ReadOp, WriteOp, the bit tests and CMPXCHG8B read
// `_locked` instead of memory while it is active), and its result is stored with one host compare-and-swap on the
// naturally aligned 8 bytes that hold the operand. If anything changed those 8 bytes in between (another vCPU's locked
// or plain store, a device), the registers and flags the instruction changed are put back and it runs again, so it
// takes effect exactly once, indivisibly, and never overwrites a store it did not see (a spin lock released by a plain
// MOV while another vCPU's LOCK CMPXCHG fails and writes the old value back is not lost).
//
// An operand that the host cannot swap in one go (one that crosses an 8-byte boundary: a split lock; CMPXCHG16B; MMIO
// or ROM) runs under a lock of the machine's memory instead: atomic against every other locked instruction of the
// machine, though not against a plain store of another vCPU to the same bytes in the same instant.
internal sealed partial class TcgCpu
{
    /// <summary>The memory operand of the locked instruction being executed, while <see cref="LockedOperand.Active"/>.</summary>
    private LockedOperand _locked;

    /// <summary>True while a locked instruction executes (its nested <see cref="Execute"/> call runs it plainly).</summary>
    private bool _inLocked;

    private struct LockedOperand
    {
        public bool Active;
        public ulong Value;
        public bool Written;
        public ulong NewValue;
    }

    /// <summary>Whether <paramref name="ins"/> is a locked read-modify-write (LOCK prefix, or XCHG with memory).</summary>
    private static bool IsLocked(ref Instruction ins) =>
        ins.HasLockPrefix || (ins.Mnemonic == Mnemonic.Xchg && (ins.Op0Kind == OpKind.Memory || ins.Op1Kind == OpKind.Memory));

    /// <summary>Executes a locked read-modify-write atomically (see the file comment).</summary>
    private unsafe void ExecuteLocked(ref Instruction ins)
    {
        int size = ins.MemorySize.GetSize();
        if (size is 1 or 2 or 4 or 8)
        {
            int seg = SegIndex(ins.MemorySegment);
            ulong ea = LockedOperandAddress(ref ins, size);
            ulong lin = Linear(seg, ea, size, true);
            if ((lin & 0xFFF) <= (ulong)(0x1000 - size))
            {
                ulong pa = TranslateChecked(lin, AccessWrite, _cpl == 3, size);
                nint page = Physical.HostPage(pa >> 12, write: true);
                nint host = page + (nint)(pa & 0xFFF);
                if (page != 0 && (host & 7) + size <= 8)
                {
                    ExecuteCompareAndSwap(ref ins, (long*)(host & ~(nint)7), (int)(host & 7) * 8, size, pa >> 12);
                    return;
                }
            }
        }

        _inLocked = true;
        try
        {
            lock (Physical.AtomicLock)
            {
                Execute(ref ins);
            }
        }
        finally
        {
            _inLocked = false;
        }
    }

    private unsafe void ExecuteCompareAndSwap(ref Instruction ins, long* word, int shift, int size, ulong page)
    {
        ulong mask = SizeMask(size);
        GprFile gpr = S.Gpr;
        ulong flags = S.Rflags;
        _inLocked = true;
        try
        {
            while (true)
            {
                ulong before = (ulong)Volatile.Read(ref *word);
                _locked = new LockedOperand { Active = true, Value = (before >> shift) & mask };
                Execute(ref ins);
                _locked.Active = false;
                ulong after = _locked.Written ? (before & ~(mask << shift)) | ((_locked.NewValue & mask) << shift) : before;
                if ((ulong)Interlocked.CompareExchange(ref *word, (long)after, (long)before) == before)
                {
                    if (_locked.Written)
                    {
                        Physical.NoteWrite(page);
                        if (page == _currentPage)
                        {
                            EndBlock();
                        }
                    }

                    return;
                }

                // Another writer came in between: undo what this attempt did to the registers and try again.
                S.Gpr = gpr;
                S.Rflags = flags;
            }
        }
        finally
        {
            _locked.Active = false;
            _inLocked = false;
        }
    }

    /// <summary>
    /// The offset of the bytes a locked instruction reads and writes: its memory operand, or for BTS/BTR/BTC with a
    /// register bit offset, the operand-sized piece of the bit string that holds the bit (SDM Vol. 2, BT).
    /// </summary>
    private ulong LockedOperandAddress(ref Instruction ins, int size)
    {
        ulong ea = EffectiveAddress(ref ins);
        if (ins.Mnemonic is Mnemonic.Bts or Mnemonic.Btr or Mnemonic.Btc && ins.Op1Kind == OpKind.Register)
        {
            ea = BitStringAddress(ref ins, ea, GetReg(ins.Op1Register) & SizeMask(size), size * 8);
        }

        return ea;
    }

    /// <summary>Reads the memory operand of the instruction: the locked snapshot while a locked instruction runs.</summary>
    private ulong ReadLockable(int seg, ulong ea, int size) => _locked.Active ? _locked.Value : ReadMem(seg, ea, size);

    /// <summary>Writes the memory operand of the instruction: into the locked result while a locked instruction runs.</summary>
    private void WriteLockable(int seg, ulong ea, int size, ulong value)
    {
        if (_locked.Active)
        {
            _locked.Written = true;
            _locked.NewValue = value;
        }
        else
        {
            WriteMem(seg, ea, size, value);
        }
    }
}
