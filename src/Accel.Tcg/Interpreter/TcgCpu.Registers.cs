using Hypervisor.Accel.Tcg.Sse;
using Hypervisor.Accel.Tcg.State;
using Hypervisor.Core.Registers;

namespace Hypervisor.Accel.Tcg.Interpreter;

// The IVcpu register accessors: conversions between the core register files and CpuState.
internal sealed partial class TcgCpu
{
    /// <inheritdoc />
    public GeneralRegisters GetGeneralRegisters()
    {
        var r = new GeneralRegisters();
        for (int i = 0; i < 16; i++)
        {
            r[i] = S.Gpr[i];
        }

        r.Rip = S.Rip;
        r.Rflags = S.Rflags | Fl.Fixed1;
        return r;
    }

    /// <inheritdoc />
    public void SetGeneralRegisters(in GeneralRegisters registers)
    {
        for (int i = 0; i < 16; i++)
        {
            S.Gpr[i] = registers[i];
        }

        S.Rip = registers.Rip;
        S.Rflags = (registers.Rflags & Fl.Writable) | Fl.Fixed1;
        _halted = false;
        WaitingForSipi = false; // a host that sets an AP's registers wants it to run from them
    }

    /// <inheritdoc />
    public SystemRegisters GetSystemRegisters() => new()
    {
        Cs = ToCore(S.Seg[Seg.CS]),
        Ds = ToCore(S.Seg[Seg.DS]),
        Es = ToCore(S.Seg[Seg.ES]),
        Fs = ToCore(S.Seg[Seg.FS]),
        Gs = ToCore(S.Seg[Seg.GS]),
        Ss = ToCore(S.Seg[Seg.SS]),
        Tr = ToCore(S.Tr),
        Ldt = ToCore(S.Ldtr),
        Gdt = new DescriptorTableRegister(S.GdtBase, S.GdtLimit),
        Idt = new DescriptorTableRegister(S.IdtBase, S.IdtLimit),
        Cr0 = S.Cr0,
        Cr2 = S.Cr2,
        Cr3 = S.Cr3,
        Cr4 = S.Cr4,
        Cr8 = _lapic is not null ? (ulong)_lapic.TaskPriorityClass : S.Cr8,
        Efer = S.Efer,
        ApicBase = _lapic?.ApicBase ?? S.ApicBase,
    };

    /// <inheritdoc />
    public void SetSystemRegisters(in SystemRegisters registers)
    {
        S.Seg[Seg.CS] = FromCore(registers.Cs);
        S.Seg[Seg.DS] = FromCore(registers.Ds);
        S.Seg[Seg.ES] = FromCore(registers.Es);
        S.Seg[Seg.FS] = FromCore(registers.Fs);
        S.Seg[Seg.GS] = FromCore(registers.Gs);
        S.Seg[Seg.SS] = FromCore(registers.Ss);
        S.Tr = FromCore(registers.Tr);
        S.Ldtr = FromCore(registers.Ldt);
        S.GdtBase = registers.Gdt.Base;
        S.GdtLimit = registers.Gdt.Limit;
        S.IdtBase = registers.Idt.Base;
        S.IdtLimit = registers.Idt.Limit;
        S.Cr0 = registers.Cr0 | Cr.ET;
        S.Cr2 = registers.Cr2;
        S.Cr3 = registers.Cr3;
        S.Cr4 = registers.Cr4;
        S.Cr8 = registers.Cr8;
        S.Efer = registers.Efer;
        S.ApicBase = registers.ApicBase;
        if (_lapic is not null && !_resetting)
        {
            // As KVM_SET_SREGS: the host's values reach the local APIC (an invalid base is kept out of it).
            _lapic.TaskPriorityClass = (int)(registers.Cr8 & 0xF);
            if (registers.ApicBase != _lapic.ApicBase)
            {
                _lapic.TrySetApicBase(registers.ApicBase);
            }
        }
        // CPL is the DPL of SS (SDM Vol. 3A, 5.5); 0 in real mode.
        _cpl = (S.Cr0 & Cr.PE) == 0 ? 0 : (S.Rflags & Fl.VM) != 0 ? 3 : S.Seg[Seg.SS].Dpl;
        FlushTlb();
    }

    /// <inheritdoc />
    public FpuRegisters GetFpuRegisters()
    {
        var r = new FpuRegisters();
        S.X87.CopyTo(ref r);
        for (int i = 0; i < 16; i++)
        {
            r.Xmm[i] = S.Xmm[i];
        }

        r.Mxcsr = S.Mxcsr;
        return r;
    }

    /// <inheritdoc />
    public void SetFpuRegisters(in FpuRegisters registers)
    {
        S.X87.CopyFrom(registers);
        for (int i = 0; i < 16; i++)
        {
            S.Xmm[i] = registers.Xmm[i];
        }

        // Bits outside MXCSR_MASK do not exist on this CPU (FXRSTOR and LDMXCSR would #GP on them).
        S.Mxcsr = registers.Mxcsr & Mxcsr.WritableMask;
    }

    private static SegmentRegister ToCore(in SegmentCache s) =>
        SegmentRegister.FromAttributes(s.Selector, s.Base, s.Limit, s.Attributes, s.Unusable);

    private static SegmentCache FromCore(in SegmentRegister r) => new()
    {
        Selector = r.Selector,
        Base = r.Base,
        Limit = r.Limit,
        Attributes = r.Attributes,
        Unusable = r.Unusable,
    };
}
