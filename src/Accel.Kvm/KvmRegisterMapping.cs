using Hypervisor.Accel.Kvm.Interop;
using Hypervisor.Core.Registers;

namespace Hypervisor.Accel.Kvm;

/// <summary>Converts between KVM's register structures and the core register types (field for field).</summary>
internal static unsafe class KvmRegisterMapping
{
    internal static GeneralRegisters ToCore(in kvm_regs r) => new()
    {
        Rax = r.rax, Rbx = r.rbx, Rcx = r.rcx, Rdx = r.rdx,
        Rsi = r.rsi, Rdi = r.rdi, Rsp = r.rsp, Rbp = r.rbp,
        R8 = r.r8, R9 = r.r9, R10 = r.r10, R11 = r.r11,
        R12 = r.r12, R13 = r.r13, R14 = r.r14, R15 = r.r15,
        Rip = r.rip, Rflags = r.rflags,
    };

    internal static kvm_regs ToKvm(in GeneralRegisters r) => new()
    {
        rax = r.Rax, rbx = r.Rbx, rcx = r.Rcx, rdx = r.Rdx,
        rsi = r.Rsi, rdi = r.Rdi, rsp = r.Rsp, rbp = r.Rbp,
        r8 = r.R8, r9 = r.R9, r10 = r.R10, r11 = r.R11,
        r12 = r.R12, r13 = r.R13, r14 = r.R14, r15 = r.R15,
        rip = r.Rip, rflags = r.Rflags,
    };

    internal static SegmentRegister ToCore(in kvm_segment s) =>
        new(s.selector, s.@base, s.limit, s.type, s.present != 0, s.dpl, s.db != 0, s.s != 0, s.l != 0, s.g != 0, s.avl != 0, s.unusable != 0);

    internal static kvm_segment ToKvm(in SegmentRegister s) => new()
    {
        selector = s.Selector,
        @base = s.Base,
        limit = s.Limit,
        type = (byte)(s.Type & 0xF),
        present = B(s.Present),
        dpl = (byte)(s.Dpl & 3),
        db = B(s.DefaultSize),
        s = B(s.IsCodeOrData),
        l = B(s.Long),
        g = B(s.Granularity),
        avl = B(s.Available),
        unusable = B(s.Unusable),
    };

    internal static SystemRegisters ToCore(in kvm_sregs s) => new()
    {
        Cs = ToCore(s.cs), Ds = ToCore(s.ds), Es = ToCore(s.es), Fs = ToCore(s.fs), Gs = ToCore(s.gs), Ss = ToCore(s.ss),
        Tr = ToCore(s.tr), Ldt = ToCore(s.ldt),
        Gdt = new DescriptorTableRegister(s.gdt.@base, s.gdt.limit),
        Idt = new DescriptorTableRegister(s.idt.@base, s.idt.limit),
        Cr0 = s.cr0, Cr2 = s.cr2, Cr3 = s.cr3, Cr4 = s.cr4, Cr8 = s.cr8,
        Efer = s.efer, ApicBase = s.apic_base,
    };

    /// <summary>Writes the core registers into <paramref name="s"/>, leaving its interrupt bitmap alone.</summary>
    internal static void ToKvm(in SystemRegisters r, ref kvm_sregs s)
    {
        s.cs = ToKvm(r.Cs); s.ds = ToKvm(r.Ds); s.es = ToKvm(r.Es); s.fs = ToKvm(r.Fs); s.gs = ToKvm(r.Gs); s.ss = ToKvm(r.Ss);
        s.tr = ToKvm(r.Tr); s.ldt = ToKvm(r.Ldt);
        s.gdt = new kvm_dtable { @base = r.Gdt.Base, limit = r.Gdt.Limit };
        s.idt = new kvm_dtable { @base = r.Idt.Base, limit = r.Idt.Limit };
        s.cr0 = r.Cr0; s.cr2 = r.Cr2; s.cr3 = r.Cr3; s.cr4 = r.Cr4; s.cr8 = r.Cr8;
        s.efer = r.Efer; s.apic_base = r.ApicBase;
    }

    internal static FpuRegisters ToCore(in kvm_fpu f)
    {
        var r = new FpuRegisters
        {
            Fcw = f.fcw, Fsw = f.fsw, Ftw = f.ftwx, LastOpcode = f.last_opcode, LastIp = f.last_ip, LastDp = f.last_dp, Mxcsr = f.mxcsr,
        };
        fixed (byte* fpr = f.fpr)
        fixed (byte* xmm = f.xmm)
        {
            for (int i = 0; i < 8; i++)
            {
                // Each x87 register occupies 16 bytes: 64-bit significand, then 16-bit sign and exponent (FXSAVE layout).
                r.St[i] = new Float80(*(ulong*)(fpr + (i * 16)), *(ushort*)(fpr + (i * 16) + 8));
            }

            for (int i = 0; i < 16; i++)
            {
                r.Xmm[i] = *(UInt128*)(xmm + (i * 16));
            }
        }

        return r;
    }

    internal static kvm_fpu ToKvm(in FpuRegisters r)
    {
        var f = new kvm_fpu
        {
            fcw = r.Fcw, fsw = r.Fsw, ftwx = r.Ftw, last_opcode = r.LastOpcode, last_ip = r.LastIp, last_dp = r.LastDp, mxcsr = r.Mxcsr,
        };
        for (int i = 0; i < 8; i++)
        {
            *(ulong*)(f.fpr + (i * 16)) = r.St[i].Significand;
            *(ushort*)(f.fpr + (i * 16) + 8) = r.St[i].SignExponent;
        }

        for (int i = 0; i < 16; i++)
        {
            *(UInt128*)(f.xmm + (i * 16)) = r.Xmm[i];
        }

        return f;
    }

    private static byte B(bool value) => value ? (byte)1 : (byte)0;
}
