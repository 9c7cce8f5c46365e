namespace Hypervisor.Core.Registers;

/// <summary>
/// Segment, descriptor-table and control registers, EFER and the APIC base (the same set as KVM's <c>kvm_sregs</c>).
/// </summary>
#pragma warning disable CA1051 // a register file is data; fields are the honest shape
public struct SystemRegisters
{
    /// <summary>CS.</summary>
    public SegmentRegister Cs;
    /// <summary>DS.</summary>
    public SegmentRegister Ds;
    /// <summary>ES.</summary>
    public SegmentRegister Es;
    /// <summary>FS.</summary>
    public SegmentRegister Fs;
    /// <summary>GS.</summary>
    public SegmentRegister Gs;
    /// <summary>SS.</summary>
    public SegmentRegister Ss;
    /// <summary>The task register.</summary>
    public SegmentRegister Tr;
    /// <summary>The LDT register.</summary>
    public SegmentRegister Ldt;
    /// <summary>GDTR.</summary>
    public DescriptorTableRegister Gdt;
    /// <summary>IDTR.</summary>
    public DescriptorTableRegister Idt;
    /// <summary>CR0.</summary>
    public ulong Cr0;
    /// <summary>CR2 (the last page-fault address).</summary>
    public ulong Cr2;
    /// <summary>CR3.</summary>
    public ulong Cr3;
    /// <summary>CR4.</summary>
    public ulong Cr4;
    /// <summary>CR8 (task priority).</summary>
    public ulong Cr8;
    /// <summary>IA32_EFER.</summary>
    public ulong Efer;
    /// <summary>IA32_APIC_BASE.</summary>
    public ulong ApicBase;
}
#pragma warning restore CA1051
