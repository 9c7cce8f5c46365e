using Hypervisor.Accel.Tcg.Fpu;
using Hypervisor.Accel.Tcg.State;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Interpreter;

// x87 control instructions (SDM Vol. 1, 8.3.13 and 8.1.8): FINIT/FNINIT, FCLEX/FNCLEX, FLDCW, FSTCW/FNSTCW, FSTSW/FNSTSW,
// FSTENV/FNSTENV, FLDENV, FSAVE/FNSAVE, FRSTOR; the last-instruction pointers every other x87 instruction records; and the
// delivery of a pending unmasked exception (#MF) by waiting instructions and WAIT/FWAIT.
internal sealed partial class TcgCpu
{
    /// <summary>Executes an x87 control instruction; false for any other instruction.</summary>
    private bool ExecX87Control(ref Instruction ins)
    {
        switch (ins.Mnemonic)
        {
            case Mnemonic.Fninit:
            case Mnemonic.Finit:
                X87Available(waiting: ins.Mnemonic == Mnemonic.Finit);
                S.X87.Init();
                return true;
            case Mnemonic.Fnclex:
            case Mnemonic.Fclex:
                X87Available(waiting: ins.Mnemonic == Mnemonic.Fclex);
                S.X87.ClearExceptions();
                return true;
            case Mnemonic.Fnstsw:
            case Mnemonic.Fstsw:
                X87Available(waiting: ins.Mnemonic == Mnemonic.Fstsw);
                if (ins.Op0Kind == OpKind.Register)
                {
                    SetReg(Register.AX, S.X87.Fsw);
                }
                else
                {
                    WriteMem(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), 2, S.X87.Fsw);
                }

                return true;
            case Mnemonic.Fnstcw:
            case Mnemonic.Fstcw:
                X87Available(waiting: ins.Mnemonic == Mnemonic.Fstcw);
                WriteMem(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), 2, S.X87.Fcw);
                return true;
            case Mnemonic.Fldcw:
            {
                X87Available(waiting: true);
                ushort v = (ushort)ReadMem(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), 2);
                S.X87.LoadControlWord(v);
                return true;
            }

            case Mnemonic.Fnstenv:
            case Mnemonic.Fstenv:
            case Mnemonic.Fnsave:
            case Mnemonic.Fsave:
                X87Available(waiting: ins.Mnemonic is Mnemonic.Fstenv or Mnemonic.Fsave);
                X87StoreEnvironment(ref ins, save: ins.Mnemonic is Mnemonic.Fnsave or Mnemonic.Fsave);
                return true;
            case Mnemonic.Fldenv:
            case Mnemonic.Frstor:
                X87Available(waiting: true);
                X87LoadEnvironment(ref ins, restore: ins.Mnemonic == Mnemonic.Frstor);
                return true;

            // The 8087/287 FENI/FDISI/FSETPM encodings execute as no-ops on the 387 and later (SDM Vol. 1, 8.7; Vol. 2A, FNOP).
            case Mnemonic.Fneni:
            case Mnemonic.Fndisi:
            case Mnemonic.Fnsetpm:
                X87Available(waiting: false);
                return true;
            case Mnemonic.Feni:
            case Mnemonic.Fdisi:
            case Mnemonic.Fsetpm:
                X87Available(waiting: true);
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// x87 availability: #NM when CR0.EM or CR0.TS is set (SDM Vol. 3A, Table 2-2); a waiting instruction with an unmasked
    /// exception pending (FSW.ES) raises #MF when CR0.NE is set (SDM Vol. 1, 8.7).
    /// </summary>
    /// <remarks>
    /// With CR0.NE clear a PC asserts FERR#, which the chipset routes to IRQ 13 of the slave PIC, and the instruction waits
    /// (SDM Vol. 1, D.2). The vCPU has no line into the interrupt controller (Core's IInterruptSource only delivers), so
    /// tcg behaves as if IGNNE# were asserted: the instruction proceeds and the exception stays pending in FSW (ES set)
    /// until software clears it. Raising IRQ 13 needs a Core hook from the vCPU to the PIC.
    /// </remarks>
    private void X87Available(bool waiting)
    {
        if ((S.Cr0 & (Cr.EM | Cr.TS)) != 0)
        {
            throw new GuestFault(Vec.NM, 0, false);
        }

        if (waiting)
        {
            X87PendingCheck();
        }
    }

    /// <summary>#MF for a pending unmasked x87 exception (FSW.ES) when CR0.NE is set; see <see cref="X87Available"/>.</summary>
    private void X87PendingCheck()
    {
        if ((S.X87.Fsw & 0x80) != 0 && (S.Cr0 & Cr.NE) != 0)
        {
            throw new GuestFault(Vec.MF, 0, false);
        }
    }

    /// <summary>
    /// WAIT/FWAIT (called from the dispatcher): #NM when CR0.MP and CR0.TS are both set (SDM Vol. 3A, Table 2-2), then a
    /// pending unmasked x87 exception is delivered as #MF.
    /// </summary>
    private void X87Wait()
    {
        if ((S.Cr0 & (Cr.MP | Cr.TS)) == (Cr.MP | Cr.TS))
        {
            throw new GuestFault(Vec.NM, 0, false);
        }

        X87PendingCheck();
    }

    /// <summary>
    /// The start of every non-control x87 instruction: availability and pending #MF, then FIP/FCS, FOP (the low three bits
    /// of the D8h-DFh opcode byte and the ModR/M byte) and, for a memory operand, FDP/FDS (SDM Vol. 1, 8.1.8 and 8.1.9).
    /// </summary>
    private void X87Begin(ref Instruction ins)
    {
        X87Available(waiting: true);
        ref X87State x = ref S.X87;
        x.Fip = S.Rip;
        x.Fcs = S.Seg[Seg.CS].Selector;
        x.Fop = X87Opcode(ref ins);
        if (ins.OpCount > 0 && ins.Op0Kind == OpKind.Memory)
        {
            int seg = SegIndex(ins.MemorySegment);
            x.Fdp = EffectiveAddress(ref ins);
            x.Fds = S.Seg[seg].Selector;
        }
    }

    /// <summary>The 11-bit x87 opcode of the current instruction, read back from its bytes (prefixes are skipped).</summary>
    private ushort X87Opcode(ref Instruction ins)
    {
        ulong start = Is64 ? S.Rip : S.Seg[Seg.CS].Base + S.Rip;
        bool user = _cpl == 3;
        for (int k = 0; k < ins.Length - 1; k++)
        {
            ulong b = ReadLinear(CodeLinearWrap(start + (ulong)k), 1, user);
            if (b is >= 0xD8 and <= 0xDF)
            {
                ulong modrm = ReadLinear(CodeLinearWrap(start + (ulong)k + 1), 1, user);
                return (ushort)(((b & 7) << 8) | modrm);
            }
        }

        return 0;
    }

    /// <summary>The FSTENV/FSAVE image format: 14/94 or 28/108 bytes by operand size; real-mode layout in real and virtual-8086 mode.</summary>
    private X87EnvironmentFormat X87Format(ref Instruction ins)
    {
        bool wide = ins.MemorySize is MemorySize.FpuEnv28 or MemorySize.FpuState108;
        bool real = !ProtectedMode || (S.Rflags & Fl.VM) != 0;
        return (wide, real) switch
        {
            (true, true) => X87EnvironmentFormat.Real32,
            (true, false) => X87EnvironmentFormat.Protected32,
            (false, true) => X87EnvironmentFormat.Real16,
            _ => X87EnvironmentFormat.Protected16,
        };
    }

    /// <summary>
    /// FSTENV/FNSTENV (then all exceptions masked) and FSAVE/FNSAVE (then FNINIT). In the real-mode layouts the pointers are
    /// 20-bit linear addresses, selector * 16 + offset (SDM Vol. 1, Figures 8-10 and 8-12).
    /// </summary>
    private void X87StoreEnvironment(ref Instruction ins, bool save)
    {
        X87EnvironmentFormat format = X87Format(ref ins);
        int size = save ? X87State.EnvironmentSize(format) + 80 : X87State.EnvironmentSize(format);
        int seg = SegIndex(ins.MemorySegment);
        ulong ea = EffectiveAddress(ref ins);
        ProbeWrite(seg, ea, 1);
        ProbeWrite(seg, ea + (ulong)size - 1, 1);
        X87State image = S.X87;
        if (format is X87EnvironmentFormat.Real16 or X87EnvironmentFormat.Real32)
        {
            image.Fip = ((ulong)image.Fcs << 4) + image.Fip;
            image.Fdp = ((ulong)image.Fds << 4) + image.Fdp;
        }

        Span<byte> bytes = stackalloc byte[108];
        if (save)
        {
            image.WriteSave(bytes, format);
        }
        else
        {
            image.WriteEnvironment(bytes, format);
        }

        for (int i = 0; i < size; i++)
        {
            WriteMem(seg, ea + (ulong)i, 1, bytes[i]);
        }

        if (save)
        {
            S.X87.Init();
        }
        else
        {
            S.X87.MaskAllExceptions();
        }
    }

    /// <summary>FLDENV and FRSTOR: the whole image is read before any state changes, so a fault leaves the x87 untouched.</summary>
    private void X87LoadEnvironment(ref Instruction ins, bool restore)
    {
        X87EnvironmentFormat format = X87Format(ref ins);
        int size = restore ? X87State.EnvironmentSize(format) + 80 : X87State.EnvironmentSize(format);
        int seg = SegIndex(ins.MemorySegment);
        ulong ea = EffectiveAddress(ref ins);
        Span<byte> bytes = stackalloc byte[108];
        for (int i = 0; i < size; i++)
        {
            bytes[i] = (byte)ReadMem(seg, ea + (ulong)i, 1);
        }

        if (restore)
        {
            S.X87.ReadSave(bytes, format);
        }
        else
        {
            S.X87.ReadEnvironment(bytes, format);
        }

        if (format is X87EnvironmentFormat.Real16 or X87EnvironmentFormat.Real32)
        {
            S.X87.Fcs = 0;
            S.X87.Fds = 0;
        }
    }
}
