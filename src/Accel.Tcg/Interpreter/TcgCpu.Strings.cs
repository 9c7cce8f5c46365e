using System.Runtime.CompilerServices;
using Hypervisor.Accel.Tcg.State;
using Iced.Intel;
using static Hypervisor.Accel.Tcg.Alu.Alu;

namespace Hypervisor.Accel.Tcg.Interpreter;

// String instructions with REP/REPE/REPNE and address-size overrides, and port I/O (SDM Vol. 1, 7.3.9 and 19).
internal sealed partial class TcgCpu
{
    /// <summary>Iterations of a REP string instruction done before the interpreter looks at kicks and interrupts again.</summary>
    private const int RepChunk = 4096;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ExecString(ref Instruction ins)
    {
        Mnemonic m = ins.Mnemonic;
        int size = m switch
        {
            Mnemonic.Movsb or Mnemonic.Cmpsb or Mnemonic.Stosb or Mnemonic.Lodsb or Mnemonic.Scasb or Mnemonic.Insb or Mnemonic.Outsb => 1,
            Mnemonic.Movsw or Mnemonic.Cmpsw or Mnemonic.Stosw or Mnemonic.Lodsw or Mnemonic.Scasw or Mnemonic.Insw or Mnemonic.Outsw => 2,
            Mnemonic.Movsd or Mnemonic.Cmpsd or Mnemonic.Stosd or Mnemonic.Lodsd or Mnemonic.Scasd or Mnemonic.Insd or Mnemonic.Outsd => 4,
            _ => 8,
        };

        // The address size shows in the operand kinds Iced reports (SI/ESI/RSI, DI/EDI/RDI).
        int asz = 8;
        for (int i = 0; i < ins.OpCount; i++)
        {
            switch (ins.GetOpKind(i))
            {
                case OpKind.MemorySegSI:
                case OpKind.MemoryESDI:
                    asz = 2;
                    break;
                case OpKind.MemorySegESI:
                case OpKind.MemoryESEDI:
                    asz = 4;
                    break;
            }
        }

        ulong amask = SizeMask(asz);
        bool rep = ins.HasRepPrefix || ins.HasRepnePrefix;
        bool compare = m is Mnemonic.Cmpsb or Mnemonic.Cmpsw or Mnemonic.Cmpsd or Mnemonic.Cmpsq or
            Mnemonic.Scasb or Mnemonic.Scasw or Mnemonic.Scasd or Mnemonic.Scasq;
        bool io = m is Mnemonic.Insb or Mnemonic.Insw or Mnemonic.Insd or Mnemonic.Outsb or Mnemonic.Outsw or Mnemonic.Outsd;
        int srcSeg = SegIndex(ins.MemorySegment);
        ulong step = (S.Rflags & Fl.DF) != 0 ? (ulong)-size : (ulong)size;
        if (io)
        {
            CheckIoPermission((ushort)S.Gpr[2], size);
        }

        // TF when the instruction starts: a single-step trap follows each iteration of a REP string instruction, which
        // then resumes (the 8086 and its successors; 18.3.1.1 gives such a trap RF = 1 unless it is the last).
        bool stepping = (S.Rflags & Fl.TF) != 0;
        if (rep)
        {
            // RF is cleared when an instruction starts; a REP instruction resumed after a pause may still carry it.
            S.Rflags &= ~Fl.RF;
        }

        int iterations = 0;
        while (true)
        {
            if (rep)
            {
                if ((S.Gpr[1] & amask) == 0)
                {
                    return;
                }

                if (iterations == RepChunk)
                {
                    // Resume the instruction later (RIP stays on it) so kicks and interrupts are seen. An interrupt
                    // taken after an iteration that is not the last pushes RF = 1 (SDM Vol. 3B, 18.3.1.1).
                    PauseRepString();
                    return;
                }
            }

            ulong si = S.Gpr[6] & amask, di = S.Gpr[7] & amask;
            switch (m)
            {
                case Mnemonic.Movsb:
                case Mnemonic.Movsw:
                case Mnemonic.Movsd:
                case Mnemonic.Movsq:
                    WriteMem(Seg.ES, di, size, ReadMem(srcSeg, si, size));
                    AdvanceIndex(6, asz, step);
                    AdvanceIndex(7, asz, step);
                    break;
                case Mnemonic.Stosb:
                case Mnemonic.Stosw:
                case Mnemonic.Stosd:
                case Mnemonic.Stosq:
                    WriteMem(Seg.ES, di, size, S.Gpr[0]);
                    AdvanceIndex(7, asz, step);
                    break;
                case Mnemonic.Lodsb:
                case Mnemonic.Lodsw:
                case Mnemonic.Lodsd:
                case Mnemonic.Lodsq:
                    SetGpr(0, size, ReadMem(srcSeg, si, size));
                    AdvanceIndex(6, asz, step);
                    break;
                case Mnemonic.Cmpsb:
                case Mnemonic.Cmpsw:
                case Mnemonic.Cmpsd:
                case Mnemonic.Cmpsq:
                {
                    ulong a = ReadMem(srcSeg, si, size);
                    ulong b = ReadMem(Seg.ES, di, size);
                    ulong f = S.Rflags;
                    Cmp(a, b, size * 8, ref f);
                    S.Rflags = f;
                    AdvanceIndex(6, asz, step);
                    AdvanceIndex(7, asz, step);
                    break;
                }

                case Mnemonic.Scasb:
                case Mnemonic.Scasw:
                case Mnemonic.Scasd:
                case Mnemonic.Scasq:
                {
                    ulong b = ReadMem(Seg.ES, di, size);
                    ulong f = S.Rflags;
                    Cmp(S.Gpr[0], b, size * 8, ref f);
                    S.Rflags = f;
                    AdvanceIndex(7, asz, step);
                    break;
                }

                case Mnemonic.Insb:
                case Mnemonic.Insw:
                case Mnemonic.Insd:
                {
                    ProbeWrite(Seg.ES, di, size);
                    ulong v = PortRead((ushort)S.Gpr[2], size);
                    WriteMem(Seg.ES, di, size, v);
                    AdvanceIndex(7, asz, step);
                    break;
                }

                default:
                    PortWrite((ushort)S.Gpr[2], size, ReadMem(srcSeg, si, size));
                    AdvanceIndex(6, asz, step);
                    break;
            }

            if (!rep)
            {
                return;
            }

            SetGpr(1, asz, (S.Gpr[1] - 1) & amask);
            iterations++;
            if (compare)
            {
                bool zf = (S.Rflags & Fl.ZF) != 0;
                if (ins.HasRepePrefix ? !zf : zf)
                {
                    return;
                }
            }

            if (((_dataHits != 0 && _breakpointsEnabled) || stepping) && (S.Gpr[1] & amask) != 0)
            {
                // A data breakpoint hit by an iteration that is not the last: the #DB trap comes after this iteration,
                // with RCX/RSI/RDI as it left them, RIP still on the instruction and RF = 1 in the EFLAGS image
                // (SDM Vol. 3B, 18.3.1.2 and 18.3.1.1). The run loop turns _dataHits (or TF) into the trap.
                PauseRepString();
                return;
            }
        }
    }

    /// <summary>Ends a REP string instruction between two iterations: RIP stays on it and RF is set until it resumes.</summary>
    private void PauseRepString()
    {
        _nextRip = S.Rip;
        S.Rflags |= Fl.RF;
        EndBlock();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void AdvanceIndex(int reg, int asz, ulong step) => SetGpr(reg, asz, S.Gpr[reg] + step);

    private void ExecIn(ref Instruction ins)
    {
        int size = RegSize(ins.Op0Register);
        ushort port = ins.Op1Kind == OpKind.Register ? (ushort)S.Gpr[2] : ins.Immediate8;
        CheckIoPermission(port, size);
        SetGpr(0, size, PortRead(port, size));
    }

    private void ExecOut(ref Instruction ins)
    {
        int size = RegSize(ins.Op1Register);
        ushort port = ins.Op0Kind == OpKind.Register ? (ushort)S.Gpr[2] : ins.Immediate8;
        CheckIoPermission(port, size);
        PortWrite(port, size, S.Gpr[0]);
    }

    private ulong PortRead(ushort port, int size)
    {
        Interlocked.Increment(ref _exits);
        return _ports.Read(port, size);
    }

    private void PortWrite(ushort port, int size, ulong value)
    {
        Interlocked.Increment(ref _exits);
        _ports.Write(port, size, (uint)value);
    }

    /// <summary>
    /// In protected mode with CPL &gt; IOPL (or in virtual-8086 mode) the TSS I/O permission bitmap decides
    /// (SDM Vol. 1, 19.5.2); a denied access raises #GP(0).
    /// </summary>
    private void CheckIoPermission(ushort port, int size)
    {
        CheckIoBreakpoints(port, size);
        if (!ProtectedMode || ((S.Rflags & Fl.VM) == 0 && _cpl <= (int)((S.Rflags >> 12) & 3)))
        {
            return;
        }

        ref SegmentCache tr = ref S.Tr;
        if (tr.Unusable || (tr.Type != 0xB && tr.Type != 9) || tr.Limit < 0x67)
        {
            throw Gp0();
        }

        ulong mapBase = ReadSystem(tr.Base + 0x66, 2);
        ulong byteOffset = mapBase + (ulong)(port >> 3);
        if (byteOffset + 1 > tr.Limit)
        {
            throw Gp0();
        }

        ulong bits = ReadSystem(tr.Base + byteOffset, 2);
        ulong mask = ((1UL << size) - 1) << (port & 7);
        if ((bits & mask) != 0)
        {
            throw Gp0();
        }
    }
}
