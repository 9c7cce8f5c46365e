using System.Diagnostics;
using Hypervisor.Accel.Tcg.State;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Interpreter;

// System instructions: control registers, MSRs, CPUID, descriptor-table registers, fast system calls.
internal sealed partial class TcgCpu
{
    private static readonly long s_tscEpoch = Stopwatch.GetTimestamp();

    private bool ExecSystem(ref Instruction ins)
    {
        switch (ins.Mnemonic)
        {
            case Mnemonic.Stac:
            case Mnemonic.Clac:
                // #UD at CPL > 0, including virtual-8086 mode (SDM Vol. 2, STAC/CLAC).
                if (ProtectedMode && _cpl > 0)
                {
                    throw Ud();
                }

                S.Rflags = ins.Mnemonic == Mnemonic.Stac ? S.Rflags | Fl.AC : S.Rflags & ~Fl.AC;
                return true;
            case Mnemonic.Hlt:
                RequireCpl0();
                _halted = true;
                EndBlock();
                return true;
            case Mnemonic.Cpuid:
            {
                uint leaf = (uint)S.Gpr[0];
                Cpuid(leaf, (uint)S.Gpr[1], out uint a, out uint b, out uint c, out uint d);
                if (leaf == 1)
                {
                    // CPUID.01H loads the microcode update signature into IA32_BIOS_SIGN_ID[63:32] (SDM Vol. 3A,
                    // 10.11.7.1); this CPU has no microcode, so that signature is 0 ("no update loaded").
                    S.BiosSignId = (ulong)MicrocodeUpdateSignature << 32;
                }

                S.Gpr[0] = a;
                S.Gpr[3] = b;
                S.Gpr[1] = c;
                S.Gpr[2] = d;
                return true;
            }

            case Mnemonic.Rdtsc:
            case Mnemonic.Rdtscp:
            {
                if ((S.Cr4 & Cr.Cr4Tsd) != 0 && _cpl != 0 && ProtectedMode)
                {
                    throw Gp0();
                }

                ulong tsc = ReadTsc();
                S.Gpr[0] = (uint)tsc;
                S.Gpr[2] = tsc >> 32;
                if (ins.Mnemonic == Mnemonic.Rdtscp)
                {
                    S.Gpr[1] = (uint)S.TscAux;
                }

                return true;
            }

            case Mnemonic.Rdmsr:
            {
                RequireCpl0();
                if (!TryGetMsr((uint)S.Gpr[1], out ulong v))
                {
                    throw Gp0();
                }

                S.Gpr[0] = (uint)v;
                S.Gpr[2] = v >> 32;
                return true;
            }

            case Mnemonic.Wrmsr:
            {
                RequireCpl0();
                ulong v = ((S.Gpr[2] & 0xFFFF_FFFF) << 32) | (S.Gpr[0] & 0xFFFF_FFFF);
                if (!WriteMsr((uint)S.Gpr[1], v))
                {
                    throw Gp0();
                }

                EndBlock();
                return true;
            }

            case Mnemonic.Rdpmc:
                throw Gp0(); // no performance counters are advertised
            case Mnemonic.Lgdt:
            case Mnemonic.Lidt:
            {
                RequireCpl0();
                int seg = SegIndex(ins.MemorySegment);
                ulong ea = EffectiveAddress(ref ins);
                ushort limit = (ushort)ReadMem(seg, ea, 2);
                ulong baseAddr = Is64
                    ? ReadMem(seg, MaskAddress(ref ins, ea + 2), 8)
                    : ReadMem(seg, MaskAddress(ref ins, ea + 2), 4);
                if (ins.Code is Code.Lgdt_m1632_16 or Code.Lidt_m1632_16)
                {
                    baseAddr &= 0xFF_FFFF; // 16-bit operand size loads a 24-bit base (SDM Vol. 2, LGDT)
                }

                if (Is64 && !IsCanonical(baseAddr))
                {
                    throw Gp0();
                }

                if (ins.Mnemonic == Mnemonic.Lgdt)
                {
                    S.GdtBase = baseAddr;
                    S.GdtLimit = limit;
                }
                else
                {
                    S.IdtBase = baseAddr;
                    S.IdtLimit = limit;
                }

                return true;
            }

            case Mnemonic.Sgdt:
            case Mnemonic.Sidt:
            {
                CheckUmip();
                int seg = SegIndex(ins.MemorySegment);
                ulong ea = EffectiveAddress(ref ins);
                bool g = ins.Mnemonic == Mnemonic.Sgdt;
                ushort limit = g ? S.GdtLimit : S.IdtLimit;
                ulong b = g ? S.GdtBase : S.IdtBase;
                int bsize = Is64 ? 8 : 4;
                ProbeWrite(seg, MaskAddress(ref ins, ea + 2), bsize);
                WriteMem(seg, ea, 2, limit);
                WriteMem(seg, MaskAddress(ref ins, ea + 2), bsize, b);
                return true;
            }

            case Mnemonic.Lldt:
            case Mnemonic.Ltr:
                if (!ProtectedMode || (S.Rflags & Fl.VM) != 0)
                {
                    throw Ud();
                }

                RequireCpl0();
                LoadSystemSegment(ins.Mnemonic == Mnemonic.Ltr, (ushort)ReadOp(ref ins, 0, 2));
                return true;
            case Mnemonic.Sldt:
            case Mnemonic.Str:
            {
                if (!ProtectedMode || (S.Rflags & Fl.VM) != 0)
                {
                    throw Ud();
                }

                CheckUmip();
                ushort sel = ins.Mnemonic == Mnemonic.Sldt ? S.Ldtr.Selector : S.Tr.Selector;
                int sz = ins.Op0Kind == OpKind.Register ? RegSize(ins.Op0Register) : 2;
                WriteOp(ref ins, 0, sz, sel);
                return true;
            }

            case Mnemonic.Smsw:
            {
                CheckUmip();
                int sz = ins.Op0Kind == OpKind.Register ? RegSize(ins.Op0Register) : 2;
                WriteOp(ref ins, 0, sz, S.Cr0 & SizeMask(sz));
                return true;
            }

            case Mnemonic.Lmsw:
            {
                RequireCpl0();
                ulong v = ReadOp(ref ins, 0, 2);
                // LMSW loads PE, MP, EM and TS; it can set PE but never clear it (SDM Vol. 2, LMSW).
                ulong cr0 = (S.Cr0 & ~0xEUL) | (v & 0xE) | (S.Cr0 & 1) | (v & 1);
                WriteControlRegister(0, cr0);
                return true;
            }

            case Mnemonic.Clts:
                RequireCpl0();
                S.Cr0 &= ~Cr.TS;
                return true;
            case Mnemonic.Invlpg:
            {
                RequireCpl0();
                ulong ea = EffectiveAddress(ref ins);
                int seg = SegIndex(ins.MemorySegment);
                ulong lin = Is64 ? (seg >= Seg.FS ? S.Seg[seg].Base : 0) + ea : (S.Seg[seg].Base + ea) & 0xFFFF_FFFF;
                _tlb.FlushPage(lin >> 12);
                // A large page may cover this address through any of its 4 KiB slots; flush conservatively.
                FlushTlb();
                return true;
            }

            case Mnemonic.Wbinvd:
            case Mnemonic.Invd:
                RequireCpl0();
                return true;
            case Mnemonic.Syscall:
                ExecSyscall();
                return true;
            case Mnemonic.Sysret:
            case Mnemonic.Sysretq:
                ExecSysret(ref ins);
                return true;
            case Mnemonic.Sysenter:
                ExecSysenter();
                return true;
            case Mnemonic.Sysexit:
            case Mnemonic.Sysexitq:
                ExecSysexit(ref ins);
                return true;
            case Mnemonic.Swapgs:
            {
                if (!Is64)
                {
                    throw Ud();
                }

                RequireCpl0();
                (S.Seg[Seg.GS].Base, S.KernelGsBase) = (S.KernelGsBase, S.Seg[Seg.GS].Base);
                return true;
            }

            case Mnemonic.Lar:
            case Mnemonic.Lsl:
            case Mnemonic.Verr:
            case Mnemonic.Verw:
                ExecSegmentQuery(ref ins);
                return true;
            case Mnemonic.Arpl:
            {
                if (!ProtectedMode || (S.Rflags & Fl.VM) != 0)
                {
                    throw Ud();
                }

                ulong dst = ReadOp(ref ins, 0, 2);
                ulong src = GetReg(ins.Op1Register);
                if ((dst & 3) < (src & 3))
                {
                    WriteOp(ref ins, 0, 2, (dst & ~3UL) | (src & 3));
                    S.Rflags |= Fl.ZF;
                }
                else
                {
                    S.Rflags &= ~Fl.ZF;
                }

                return true;
            }

            case Mnemonic.Xgetbv:
                Xgetbv();
                return true;
            case Mnemonic.Xsetbv:
                Xsetbv();
                return true;
            case Mnemonic.Lds:
            case Mnemonic.Les:
            case Mnemonic.Lfs:
            case Mnemonic.Lgs:
            case Mnemonic.Lss:
            {
                int sz = RegSize(ins.Op0Register);
                int seg = SegIndex(ins.MemorySegment);
                ulong ea = EffectiveAddress(ref ins);
                ulong off = ReadMem(seg, ea, sz);
                ushort sel = (ushort)ReadMem(seg, MaskAddress(ref ins, ea + (ulong)sz), 2);
                int target = ins.Mnemonic switch
                {
                    Mnemonic.Lds => Seg.DS,
                    Mnemonic.Les => Seg.ES,
                    Mnemonic.Lfs => Seg.FS,
                    Mnemonic.Lgs => Seg.GS,
                    _ => Seg.SS,
                };
                LoadDataSegment(target, sel);
                SetReg(ins.Op0Register, off);
                if (target == Seg.SS)
                {
                    _inhibitOnce = true;
                }

                return true;
            }

            default:
                return false;
        }
    }

    private void RequireCpl0()
    {
        if (_cpl != 0 && ProtectedMode)
        {
            throw Gp0();
        }
    }

    internal ulong ReadTsc() =>
        (ulong)((Stopwatch.GetTimestamp() - s_tscEpoch) * (1_000_000_000.0 / Stopwatch.Frequency)) + S.TscOffset;

    // ---------------------------------------------------------------- control and debug registers

    private ulong ReadControlRegister(int n)
    {
        RequireCpl0();
        return n switch
        {
            0 => S.Cr0,
            2 => S.Cr2,
            3 => S.Cr3,
            4 => S.Cr4,
            8 => _lapic is not null ? (ulong)_lapic.TaskPriorityClass : S.Cr8,
            _ => throw Ud(),
        };
    }

    /// <summary>MOV to CRn with the checks of SDM Vol. 3A, 2.5 and 10.8.5 (entering and leaving IA-32e mode).</summary>
    private void WriteControlRegister(int n, ulong value)
    {
        RequireCpl0();
        switch (n)
        {
            case 0:
            {
                if ((value >> 32) != 0)
                {
                    throw Gp0();
                }

                value |= Cr.ET;
                if ((value & Cr.PG) != 0 && (value & Cr.PE) == 0)
                {
                    throw Gp0();
                }

                if ((value & Cr.NW) != 0 && (value & Cr.CD) == 0)
                {
                    throw Gp0();
                }

                ulong old = S.Cr0;
                bool pgOn = (value & Cr.PG) != 0 && (old & Cr.PG) == 0;
                bool pgOff = (value & Cr.PG) == 0 && (old & Cr.PG) != 0;
                if (pgOn && (S.Efer & Cr.EferLme) != 0)
                {
                    if ((S.Cr4 & Cr.Cr4Pae) == 0 || S.Seg[Seg.CS].Long)
                    {
                        throw Gp0();
                    }

                    S.Efer |= Cr.EferLma;
                }

                if (pgOff && (S.Efer & Cr.EferLma) != 0)
                {
                    if (Is64)
                    {
                        throw Gp0();
                    }

                    S.Efer &= ~Cr.EferLma;
                }

                S.Cr0 = value;
                if (((old ^ value) & (Cr.PG | Cr.WP | Cr.PE)) != 0)
                {
                    FlushTlb();
                }

                if ((value & Cr.PE) == 0)
                {
                    _cpl = 0;
                }

                EndBlock();
                return;
            }

            case 2:
                S.Cr2 = value;
                return;
            case 3:
                if (LongMode && (value & ReservedHigh) != 0)
                {
                    throw Gp0();
                }

                S.Cr3 = LongMode ? value : value & 0xFFFF_FFFF;
                FlushTlb();
                EndBlock();
                return;
            case 4:
            {
                if ((value & ~Cr.Cr4Supported) != 0)
                {
                    throw Gp0();
                }

                if ((value & Cr.Cr4Pae) == 0 && LongMode)
                {
                    throw Gp0();
                }

                ulong old = S.Cr4;
                S.Cr4 = value;
                // SMEP/SMAP changes flush too: the TLB epoch guards the links between decoded blocks.
                if (((old ^ value) & (Cr.Cr4Pae | Cr.Cr4Pse | Cr.Cr4Pge | Cr.Cr4Smep | Cr.Cr4Smap)) != 0)
                {
                    FlushTlb();
                }

                EndBlock();
                return;
            }

            case 8:
                if ((value & ~0xFUL) != 0)
                {
                    throw Gp0();
                }

                S.Cr8 = value;
                if (_lapic is not null)
                {
                    _lapic.TaskPriorityClass = (int)value; // CR8 is TPR[7:4] (SDM Vol. 3A, 11.8.6)
                    EndBlock(); // a lower priority may unmask an interrupt at the next boundary
                }

                return;
            default:
                throw Ud();
        }
    }

    private ulong ReadDebugRegister(int n)
    {
        RequireCpl0();
        if (n is 4 or 5 && (S.Cr4 & Cr.Cr4De) != 0)
        {
            throw Ud();
        }

        CheckGeneralDetect();
        return n switch
        {
            0 => S.Dr0,
            1 => S.Dr1,
            2 => S.Dr2,
            3 => S.Dr3,
            4 or 6 => (S.Cr4 & Cr.Cr4De) != 0 && n == 4 ? throw Ud() : S.Dr6,
            5 or 7 => (S.Cr4 & Cr.Cr4De) != 0 && n == 5 ? throw Ud() : S.Dr7,
            _ => throw Ud(),
        };
    }

    /// <summary>MOV to DRn (SDM Vol. 2, MOV—Move to/from Debug Registers); breakpoints: TcgCpu.Debug.cs.</summary>
    private void WriteDebugRegister(int n, ulong value)
    {
        RequireCpl0();
        if (n is 4 or 5 && (S.Cr4 & Cr.Cr4De) != 0)
        {
            throw Ud();
        }

        CheckGeneralDetect();
        if (Is64 && n >= 6 && (value >> 32) != 0)
        {
            throw Gp0();
        }

        switch (n)
        {
            case 0: S.Dr0 = value; break;
            case 1: S.Dr1 = value; break;
            case 2: S.Dr2 = value; break;
            case 3: S.Dr3 = value; break;
            case 4 or 6:
                if (n == 4 && (S.Cr4 & Cr.Cr4De) != 0)
                {
                    throw Ud();
                }

                S.Dr6 = (value & 0xE00F) | 0xFFFF_0FF0; // bit 16 (RTM) is reserved as 1 without TSX (SDM Vol. 3B, 18.2.3)
                break;
            case 5 or 7:
                if (n == 5 && (S.Cr4 & Cr.Cr4De) != 0)
                {
                    throw Ud();
                }

                S.Dr7 = (value & 0xFFFF_2FFF) | 0x400;
                break;
            default:
                throw Ud();
        }

        OnDebugRegistersChanged();
        EndBlock();
    }

    // ---------------------------------------------------------------- MSRs

    /// <summary>The microcode update signature CPUID.01H reports in IA32_BIOS_SIGN_ID: 0, no update loaded.</summary>
    private const uint MicrocodeUpdateSignature = 0;

    /// <inheritdoc />
    public bool TryGetMsr(uint index, out ulong value)
    {
        value = index switch
        {
            Msr.Tsc => ReadTsc(),
            Msr.ApicBase => _lapic?.ApicBase ?? S.ApicBase,
            Msr.MiscEnable => S.MiscEnable,
            Msr.SysenterCs => S.SysenterCs,
            Msr.SysenterEsp => S.SysenterEsp,
            Msr.SysenterEip => S.SysenterEip,
            Msr.Pat => S.Pat,
            Msr.Efer => S.Efer,
            Msr.Star => S.Star,
            Msr.Lstar => S.Lstar,
            Msr.Cstar => S.Cstar,
            Msr.Sfmask => S.Sfmask,
            Msr.FsBase => S.Seg[Seg.FS].Base,
            Msr.GsBase => S.Seg[Seg.GS].Base,
            Msr.KernelGsBase => S.KernelGsBase,
            Msr.TscAux => S.TscAux,
            Msr.BiosSignId => S.BiosSignId,
            _ => ulong.MaxValue,
        };
        return index is Msr.Tsc or Msr.ApicBase or Msr.MiscEnable or Msr.SysenterCs or Msr.SysenterEsp or Msr.SysenterEip or
            Msr.Pat or Msr.Efer or Msr.Star or Msr.Lstar or Msr.Cstar or Msr.Sfmask or Msr.FsBase or Msr.GsBase or
            Msr.KernelGsBase or Msr.TscAux or Msr.BiosSignId || (value = 0) != 0;
    }

    /// <inheritdoc />
    public bool TrySetMsr(uint index, ulong value)
    {
        bool ok = WriteMsr(index, value);
        if (ok)
        {
            FlushTlb();
        }

        return ok;
    }

    private bool WriteMsr(uint index, ulong value)
    {
        switch (index)
        {
            case Msr.Tsc:
                S.TscOffset = 0;
                S.TscOffset = value - ReadTsc();
                return true;
            case Msr.ApicBase:
                if ((value & ReservedHigh) != 0 || (value & 0x2FF) != 0)
                {
                    return false;
                }

                if (_lapic is not null && !_resetting)
                {
                    if (!_lapic.TrySetApicBase(value))
                    {
                        return false;
                    }

                    value = _lapic.ApicBase;
                }

                S.ApicBase = value;
                return true;
            case Msr.MiscEnable:
                S.MiscEnable = value;
                return true;
            case Msr.SysenterCs:
                S.SysenterCs = value & 0xFFFF;
                return true;
            case Msr.SysenterEsp:
            case Msr.SysenterEip:
            case Msr.Lstar:
            case Msr.Cstar:
            case Msr.FsBase:
            case Msr.GsBase:
            case Msr.KernelGsBase:
                if (!IsCanonical(value))
                {
                    return false;
                }

                switch (index)
                {
                    case Msr.SysenterEsp: S.SysenterEsp = value; break;
                    case Msr.SysenterEip: S.SysenterEip = value; break;
                    case Msr.Lstar: S.Lstar = value; break;
                    case Msr.Cstar: S.Cstar = value; break;
                    case Msr.FsBase: S.Seg[Seg.FS].Base = value; break;
                    case Msr.GsBase: S.Seg[Seg.GS].Base = value; break;
                    default: S.KernelGsBase = value; break;
                }

                return true;
            case Msr.Pat:
                // Each byte must be a valid memory type: 0, 1, 4, 5, 6 or 7 (SDM Vol. 3A, 13.12.2).
                for (int i = 0; i < 8; i++)
                {
                    ulong t = (value >> (i * 8)) & 0xFF;
                    if (t is 2 or 3 or > 7)
                    {
                        return false;
                    }
                }

                S.Pat = value;
                return true;
            case Msr.Efer:
            {
                if ((value & ~(Cr.EferWritable | Cr.EferLma)) != 0)
                {
                    return false;
                }

                // LME cannot change while paging is on; LMA is read-only (SDM Vol. 3A, 10.8.5).
                if ((S.Cr0 & Cr.PG) != 0 && ((value ^ S.Efer) & Cr.EferLme) != 0)
                {
                    return false;
                }

                S.Efer = (value & Cr.EferWritable) | (S.Efer & Cr.EferLma);
                FlushTlb();
                return true;
            }

            case Msr.Star:
                S.Star = value;
                return true;
            case Msr.Sfmask:
                S.Sfmask = value & 0xFFFF_FFFF;
                return true;
            case Msr.TscAux:
                S.TscAux = value & 0xFFFF_FFFF;
                return true;
            case Msr.BiosSignId:
                // Software writes 0 here and then runs CPUID.01H to read the update signature (SDM Vol. 3A, 10.11.7.1).
                S.BiosSignId = value;
                return true;
            default:
                return false;
        }
    }

    /// <summary>CR4.UMIP: SGDT, SIDT, SLDT, SMSW and STR raise #GP(0) at CPL &gt; 0 (SDM Vol. 3A, 2.5).</summary>
    private void CheckUmip()
    {
        if ((S.Cr4 & Cr.Cr4Umip) != 0 && ProtectedMode && _cpl > 0)
        {
            throw Gp0();
        }
    }

    // ---------------------------------------------------------------- CPUID

    /// <summary>
    /// CPUID: the core's CPU model, limited to what this interpreter implements (<see cref="TcgCpuFeatures"/>); the
    /// initial APIC ID is the vCPU index. CPUID.1:EDX.APIC shows only on a vCPU with a local APIC that IA32_APIC_BASE
    /// enables (SDM Vol. 3A, 11.4.3).
    /// </summary>
    internal void Cpuid(uint leaf, uint subleaf, out uint a, out uint b, out uint c, out uint d)
    {
        Hypervisor.Core.Cpu.CpuidResult r = TcgCpuFeatures.Cpuid.Query(leaf, subleaf, (uint)Index);
        a = r.Eax;
        b = r.Ebx;
        c = r.Ecx;
        d = r.Edx;
        if (leaf == 1 && (S.Cr4 & Cr.Cr4Osxsave) == 0)
        {
            c &= ~Hypervisor.Core.Cpu.CpuFeatures.Osxsave.Mask; // OSXSAVE mirrors CR4.OSXSAVE (SDM Vol. 2, CPUID Table 3-10)
        }

        if (leaf == 1 && (_lapic is null || (_lapic.ApicBase & (1UL << 11)) == 0))
        {
            d &= ~(1u << 9);
        }
    }

    // ---------------------------------------------------------------- LLDT, LTR, LAR, LSL, VERR, VERW

    private void LoadSystemSegment(bool task, ushort selector)
    {
        uint err = (uint)(selector & 0xFFFC);
        if ((selector & 0xFFFC) == 0)
        {
            if (task)
            {
                throw Gp0();
            }

            S.Ldtr.Selector = selector;
            S.Ldtr.Unusable = true;
            return;
        }

        if ((selector & 4) != 0)
        {
            throw Gp(err);
        }

        ulong d = ReadDescriptor(selector, out ulong addr);
        SegmentCache c = ParseDescriptor(selector, d);
        if (!c.IsSystem || (task ? c.Type is not (1 or 9) || (LongMode && c.Type != 9) : c.Type != 2))
        {
            throw Gp(err);
        }

        if (!c.Present)
        {
            throw new GuestFault(Vec.NP, err, true);
        }

        if (LongMode)
        {
            ulong high = ReadSystem(addr + 8, 8);
            c.Base |= (high & 0xFFFF_FFFF) << 32;
        }

        if (task)
        {
            WriteSystem(addr + 5, 1, ((d >> 40) & 0xFF) | 2); // mark the TSS busy
            c.Attributes |= 2;
            S.Tr = c;
        }
        else
        {
            S.Ldtr = c;
        }
    }

    private void ExecSegmentQuery(ref Instruction ins)
    {
        if (!ProtectedMode || (S.Rflags & Fl.VM) != 0)
        {
            throw Ud();
        }

        Mnemonic m = ins.Mnemonic;
        int srcOp = m is Mnemonic.Lar or Mnemonic.Lsl ? 1 : 0;
        ushort sel = (ushort)ReadOp(ref ins, srcOp, 2);
        bool ok = false;
        ulong d = 0;
        if ((sel & 0xFFFC) != 0)
        {
            ulong index = (ulong)(sel & 0xFFF8);
            bool ldt = (sel & 4) != 0;
            ulong limit = ldt ? (S.Ldtr.Unusable ? 0 : S.Ldtr.Limit) : S.GdtLimit;
            if (index + 7 <= limit && !(ldt && S.Ldtr.Unusable))
            {
                d = ReadSystem((ldt ? S.Ldtr.Base : S.GdtBase) + index, 8);
                ok = true;
            }
        }

        if (ok)
        {
            SegmentCache c = ParseDescriptor(sel, d);
            bool conformingCode = c.IsCode && (c.Type & 4) != 0;
            bool privOk = conformingCode || (c.Dpl >= _cpl && c.Dpl >= (sel & 3));
            switch (m)
            {
                case Mnemonic.Lar:
                    ok = privOk && (!c.IsSystem || (LongMode ? c.Type is 2 or 9 or 0xB or 0xC : c.Type is 1 or 2 or 3 or 4 or 5 or 9 or 0xB or 0xC));
                    break;
                case Mnemonic.Lsl:
                    ok = privOk && (!c.IsSystem || (LongMode ? c.Type is 2 or 9 or 0xB : c.Type is 1 or 2 or 3 or 9 or 0xB));
                    break;
                case Mnemonic.Verr:
                    ok = !c.IsSystem && privOk && (!c.IsCode || (c.Type & 2) != 0);
                    break;
                default:
                    ok = !c.IsSystem && !c.IsCode && (c.Type & 2) != 0 && c.Dpl >= _cpl && c.Dpl >= (sel & 3);
                    break;
            }

            if (ok && m == Mnemonic.Lar)
            {
                SetReg(ins.Op0Register, (d >> 32) & 0x00F0_FF00);
            }
            else if (ok && m == Mnemonic.Lsl)
            {
                SetReg(ins.Op0Register, c.Limit);
            }
        }

        S.Rflags = ok ? S.Rflags | Fl.ZF : S.Rflags & ~Fl.ZF;
    }

    // ---------------------------------------------------------------- SYSCALL, SYSRET, SYSENTER, SYSEXIT

    private static SegmentCache FlatSegment(ushort selector, bool code, int dpl, bool longCode)
    {
        // Flat 4 GiB segment as the fast system-call instructions load it (SDM Vol. 2, SYSCALL/SYSENTER).
        ushort attr = (ushort)((code ? 0xB : 0x3) | 0x10 | (dpl << 5) | 0x80 | 0x8000 |
                               (longCode ? 0x2000 : 0x4000));
        return new SegmentCache { Selector = selector, Base = 0, Limit = 0xFFFF_FFFF, Attributes = attr };
    }

    private void ExecSyscall()
    {
        if (!Is64 || (S.Efer & Cr.EferSce) == 0)
        {
            throw Ud();
        }

        ushort sel = (ushort)((S.Star >> 32) & 0xFFFC);
        S.Gpr[1] = _nextRip;
        S.Gpr[11] = S.Rflags & ~Fl.RF;
        S.Rflags &= ~(S.Sfmask | Fl.RF);
        S.Rflags |= Fl.Fixed1;
        S.Seg[Seg.SS] = FlatSegment((ushort)(sel + 8), false, 0, false);
        CommitCs(FlatSegment(sel, true, 0, true), 0);
        _nextRip = S.Lstar;
    }

    private void ExecSysret(ref Instruction ins)
    {
        if (!Is64 || (S.Efer & Cr.EferSce) == 0)
        {
            throw Ud();
        }

        RequireCpl0();
        bool to64 = ins.Code == Code.Sysretq;
        if (to64 && !IsCanonical(S.Gpr[1]))
        {
            throw Gp0();
        }

        ushort baseSel = (ushort)(S.Star >> 48);
        ushort cs = (ushort)((to64 ? baseSel + 16 : baseSel) | 3);
        S.Rflags = (S.Gpr[11] & 0x3C_7FD7) | Fl.Fixed1;
        S.Seg[Seg.SS] = FlatSegment((ushort)((baseSel + 8) | 3), false, 3, false);
        CommitCs(FlatSegment(cs, true, 3, to64), 3);
        _nextRip = to64 ? S.Gpr[1] : (uint)S.Gpr[1];
    }

    private void ExecSysenter()
    {
        if (!ProtectedMode || (S.SysenterCs & 0xFFFC) == 0)
        {
            throw Gp0();
        }

        ushort sel = (ushort)(S.SysenterCs & 0xFFFC);
        S.Rflags &= ~(Fl.VM | Fl.IF | Fl.RF);
        S.Seg[Seg.SS] = FlatSegment((ushort)(sel + 8), false, 0, false);
        bool lm = LongMode;
        CommitCs(FlatSegment(sel, true, 0, lm), 0);
        S.Gpr[4] = lm ? S.SysenterEsp : (uint)S.SysenterEsp;
        _nextRip = lm ? S.SysenterEip : (uint)S.SysenterEip;
    }

    private void ExecSysexit(ref Instruction ins)
    {
        if (!ProtectedMode || (S.SysenterCs & 0xFFFC) == 0)
        {
            throw Gp0();
        }

        RequireCpl0();
        bool to64 = ins.Code == Code.Sysexitq;
        if (to64 && (!IsCanonical(S.Gpr[1]) || !IsCanonical(S.Gpr[2])))
        {
            throw Gp0();
        }

        ushort baseSel = (ushort)S.SysenterCs;
        ushort cs = (ushort)((baseSel + (to64 ? 32 : 16)) | 3);
        ushort ss = (ushort)((baseSel + (to64 ? 40 : 24)) | 3);
        S.Seg[Seg.SS] = FlatSegment(ss, false, 3, false);
        CommitCs(FlatSegment(cs, true, 3, to64), 3);
        S.Gpr[4] = to64 ? S.Gpr[1] : (uint)S.Gpr[1];
        _nextRip = to64 ? S.Gpr[2] : (uint)S.Gpr[2];
    }
}
