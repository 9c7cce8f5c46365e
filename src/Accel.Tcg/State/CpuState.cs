using System.Runtime.CompilerServices;
using Hypervisor.Accel.Tcg.Fpu;

namespace Hypervisor.Accel.Tcg.State;

/// <summary>The sixteen general-purpose registers in encoding order (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15).</summary>
[InlineArray(16)]
internal struct GprFile
{
    private ulong _element;
}

/// <summary>The six segment registers in encoding order (ES, CS, SS, DS, FS, GS).</summary>
[InlineArray(6)]
internal struct SegmentFile
{
    private SegmentCache _element;
}

/// <summary>XMM0-XMM15.</summary>
[InlineArray(16)]
internal struct XmmFile
{
    private UInt128 _element;
}

/// <summary>Segment register numbers in encoding order (Intel SDM Vol. 2, Table 3-6 "Sreg").</summary>
internal static class Seg
{
    public const int ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5;
}

/// <summary>
/// A segment register with its hidden descriptor cache. <see cref="Attributes"/> packs the descriptor's bytes 5-6
/// (type in bits 0-3, S 4, DPL 5-6, P 7, AVL 12, L 13, D/B 14, G 15), as VMX does.
/// </summary>
internal struct SegmentCache
{
    public ushort Selector;
    public ulong Base;
    public uint Limit;
    public ushort Attributes;
    public bool Unusable;

    public readonly int Type => Attributes & 0xF;
    public readonly bool IsSystem => (Attributes & 0x10) == 0;
    public readonly int Dpl => (Attributes >> 5) & 3;
    public readonly bool Present => (Attributes & 0x80) != 0;
    public readonly bool Long => (Attributes & 0x2000) != 0;
    public readonly bool Big => (Attributes & 0x4000) != 0;
    public readonly bool IsCode => (Attributes & 0x18) == 0x18;
    public readonly bool IsExpandDown => (Attributes & 0x1C) == 0x14;

    /// <summary>A readable/writable data segment as real mode loads it: base = selector × 16, attributes kept.</summary>
    public void LoadReal(ushort selector)
    {
        Selector = selector;
        Base = (ulong)selector << 4;
        Unusable = false;
    }
}

/// <summary>Processor mode derived from CR0.PE, EFER.LMA, CS.L and RFLAGS.VM.</summary>
internal enum CpuMode : byte
{
    Real,
    Protected,
    Virtual8086,
    Compatibility,
    Long64,
}

/// <summary>The architectural state of one x86-64 processor. Plain data; the interpreter owns the rules.</summary>
internal struct CpuState
{
    public GprFile Gpr;
    public ulong Rip;
    public ulong Rflags;
    public SegmentFile Seg;
    public SegmentCache Ldtr;
    public SegmentCache Tr;
    public ulong GdtBase;
    public ushort GdtLimit;
    public ulong IdtBase;
    public ushort IdtLimit;
    public ulong Cr0, Cr2, Cr3, Cr4, Cr8;
    public ulong Efer;
    public ulong Dr0, Dr1, Dr2, Dr3, Dr6, Dr7;
    public ulong Star, Lstar, Cstar, Sfmask, KernelGsBase;
    public ulong SysenterCs, SysenterEsp, SysenterEip;
    public ulong TscOffset;
    public ulong ApicBase;
    public ulong Pat;
    public ulong MiscEnable;
    public ulong TscAux;
    public ulong Xcr0;

    /// <summary>IA32_BIOS_SIGN_ID (MSR 8BH): what software last wrote, until CPUID leaf 1 loads the update signature.</summary>
    public ulong BiosSignId;

    /// <summary>The x87 unit (registers, tags, FCW/FSW, last instruction and data pointers).</summary>
    public X87State X87;

    /// <summary>XMM0-XMM15.</summary>
    public XmmFile Xmm;

    /// <summary>MXCSR (SDM Vol. 1, 10.2.3); only bits in <see cref="Sse.Mxcsr.WritableMask"/> are ever set.</summary>
    public uint Mxcsr;
}

/// <summary>RFLAGS bits (Intel SDM Vol. 1, 3.4.3).</summary>
internal static class Fl
{
    public const ulong CF = 1UL << 0, Fixed1 = 1UL << 1, PF = 1UL << 2, AF = 1UL << 4, ZF = 1UL << 6, SF = 1UL << 7,
        TF = 1UL << 8, IF = 1UL << 9, DF = 1UL << 10, OF = 1UL << 11, IOPL = 3UL << 12, NT = 1UL << 14, RF = 1UL << 16,
        VM = 1UL << 17, AC = 1UL << 18, VIF = 1UL << 19, VIP = 1UL << 20, ID = 1UL << 21;

    public const ulong Status = CF | PF | AF | ZF | SF | OF;

    /// <summary>Bits software can ever change (the rest read as 0, bit 1 as 1).</summary>
    public const ulong Writable = Status | TF | IF | DF | IOPL | NT | RF | VM | AC | VIF | VIP | ID;
}

/// <summary>Control-register and EFER bits (Intel SDM Vol. 3A, 2.5 and 2.2.1).</summary>
internal static class Cr
{
    public const ulong PE = 1UL << 0, MP = 1UL << 1, EM = 1UL << 2, TS = 1UL << 3, ET = 1UL << 4, NE = 1UL << 5,
        WP = 1UL << 16, AM = 1UL << 18, NW = 1UL << 29, CD = 1UL << 30, PG = 1UL << 31;

    public const ulong Cr4Vme = 1UL << 0, Cr4Pvi = 1UL << 1, Cr4Tsd = 1UL << 2, Cr4De = 1UL << 3, Cr4Pse = 1UL << 4,
        Cr4Pae = 1UL << 5, Cr4Mce = 1UL << 6, Cr4Pge = 1UL << 7, Cr4Pce = 1UL << 8, Cr4Osfxsr = 1UL << 9,
        Cr4Osxmmexcpt = 1UL << 10, Cr4Umip = 1UL << 11, Cr4Osxsave = 1UL << 18, Cr4Smep = 1UL << 20, Cr4Smap = 1UL << 21;

    /// <summary>CR4 bits this CPU accepts (the features CPUID advertises); others raise #GP.</summary>
    /// <remarks>VME and PVI: the virtual-8086 mode extensions and protected-mode virtual interrupts (TcgCpu.V86.cs).</remarks>
    public const ulong Cr4Supported = Cr4Vme | Cr4Pvi | Cr4Tsd | Cr4De | Cr4Pse | Cr4Pae | Cr4Mce | Cr4Pge | Cr4Pce |
                                      Cr4Osfxsr | Cr4Osxmmexcpt | Cr4Umip | Cr4Osxsave | Cr4Smep | Cr4Smap;

    public const ulong EferSce = 1UL << 0, EferLme = 1UL << 8, EferLma = 1UL << 10, EferNxe = 1UL << 11;

    /// <summary>EFER bits software may write (LMA is read-only, set by the processor).</summary>
    public const ulong EferWritable = EferSce | EferLme | EferNxe;
}

/// <summary>Model-specific register numbers (Intel SDM Vol. 4).</summary>
internal static class Msr
{
    public const uint Tsc = 0x10, ApicBase = 0x1B, MiscEnable = 0x1A0, SysenterCs = 0x174, SysenterEsp = 0x175,
        SysenterEip = 0x176, Pat = 0x277, Efer = 0xC000_0080, Star = 0xC000_0081, Lstar = 0xC000_0082,
        Cstar = 0xC000_0083, Sfmask = 0xC000_0084, FsBase = 0xC000_0100, GsBase = 0xC000_0101,
        KernelGsBase = 0xC000_0102, TscAux = 0xC000_0103, MtrrCap = 0xFE, MtrrDefType = 0x2FF,
        BiosSignId = 0x8B;
}
