using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Benchmarks.Workloads;

/// <summary>The processor mode a workload's body runs in.</summary>
public enum GuestMode
{
    /// <summary>Real mode, 16-bit code (32-bit registers through operand-size prefixes, data in segment 0x2000).</summary>
    Real16 = 16,

    /// <summary>32-bit protected mode, flat segments, no paging.</summary>
    Protected32 = 32,

    /// <summary>64-bit long mode, the first 1 GiB identity-mapped with 2 MiB pages.</summary>
    Long64 = 64,
}

/// <summary>One of the three pointer registers a mode-independent workload may use (SI, DI, BX and their wider forms).</summary>
public enum Ptr
{
    /// <summary>SI / ESI / RSI.</summary>
    P0,

    /// <summary>DI / EDI / RDI.</summary>
    P1,

    /// <summary>BX / EBX / RBX.</summary>
    P2,
}

/// <summary>
/// Emits the same workload as 16-, 32- or 64-bit code. Values live in EAX, ECX, EDX and EBP; pointers hold offsets
/// relative to <see cref="DataBase"/> (in real mode DS = ES = DataBase / 16, so the offset is the address; in the flat
/// modes the base is added to every displacement). That keeps one source for each workload in all three modes.
/// </summary>
public sealed class GuestAsm
{
    /// <summary>Guest-physical address of the workloads' data area (below it: stack at 0x7000, page tables at 0x10000).</summary>
    public const uint DataBase = 0x20000;

    /// <summary>Offset (from <see cref="DataBase"/>) of eight dword variables a workload may use.</summary>
    public const int VarArea = 0xFF00;

    /// <summary>Creates an emitter over an assembler of the mode's bitness.</summary>
    public GuestAsm(Assembler assembler, GuestMode mode)
    {
        A = assembler;
        Mode = mode;
    }

    /// <summary>The underlying assembler.</summary>
    public Assembler A { get; }

    /// <summary>The mode.</summary>
    public GuestMode Mode { get; }

    private int Disp(int offset) => Mode == GuestMode.Real16 ? offset : (int)DataBase + offset;

    /// <summary>A dword at data offset <paramref name="offset"/> plus the pointer register.</summary>
    public AssemblerMemoryOperand Dword(Ptr p, int offset = 0) => Mode switch
    {
        GuestMode.Real16 => __dword_ptr[R16(p) + offset],
        GuestMode.Protected32 => __dword_ptr[R32(p) + Disp(offset)],
        _ => __dword_ptr[R64(p) + Disp(offset)],
    };

    /// <summary>A byte at data offset <paramref name="offset"/> plus the pointer register.</summary>
    public AssemblerMemoryOperand Byte(Ptr p, int offset = 0) => Mode switch
    {
        GuestMode.Real16 => __byte_ptr[R16(p) + offset],
        GuestMode.Protected32 => __byte_ptr[R32(p) + Disp(offset)],
        _ => __byte_ptr[R64(p) + Disp(offset)],
    };

    /// <summary>Dword variable <paramref name="index"/> (0-7) of the variable area.</summary>
    public AssemblerMemoryOperand Var(int index) => Mode switch
    {
        // An absolute displacement: DS-relative in real mode, a flat address otherwise (never RIP-relative).
        GuestMode.Real16 => __dword_ptr[VarArea + (index * 4)],
        _ => __dword_ptr[(ulong)(DataBase + VarArea + (index * 4))],
    };

    /// <summary>Sets a pointer register to a data offset.</summary>
    public void LoadPtr(Ptr p, int offset)
    {
        switch (Mode)
        {
            case GuestMode.Real16: A.mov(R16(p), (ushort)offset); break;
            case GuestMode.Protected32: A.mov(R32(p), offset); break;
            default: A.mov(R32(p), offset); break; // zero-extends into the 64-bit register
        }
    }

    /// <summary>Copies a value register (a data offset) into a pointer register.</summary>
    public void PtrFrom(Ptr p, AssemblerRegister32 value)
    {
        switch (Mode)
        {
            case GuestMode.Real16: A.mov(R16(p), Low16(value)); break;
            default: A.mov(R32(p), value); break; // in 64-bit mode this zero-extends into the full register
        }
    }

    /// <summary>Copies one pointer register into another.</summary>
    public void MovPtr(Ptr to, Ptr from)
    {
        switch (Mode)
        {
            case GuestMode.Real16: A.mov(R16(to), R16(from)); break;
            case GuestMode.Protected32: A.mov(R32(to), R32(from)); break;
            default: A.mov(R64(to), R64(from)); break;
        }
    }

    /// <summary>Adds a constant to a pointer register.</summary>
    public void AddPtr(Ptr p, int delta)
    {
        switch (Mode)
        {
            case GuestMode.Real16: A.add(R16(p), (short)delta); break;
            case GuestMode.Protected32: A.add(R32(p), delta); break;
            default: A.add(R64(p), delta); break;
        }
    }

    /// <summary>Compares a pointer register with a data offset.</summary>
    public void CmpPtr(Ptr p, int offset)
    {
        switch (Mode)
        {
            case GuestMode.Real16: A.cmp(R16(p), (short)offset); break;
            case GuestMode.Protected32: A.cmp(R32(p), offset); break;
            default: A.cmp(R64(p), offset); break;
        }
    }

    /// <summary>Pushes a value register (the full 64-bit register in long mode).</summary>
    public void Push(AssemblerRegister32 r)
    {
        if (Mode == GuestMode.Long64)
        {
            A.push(Wide(r));
        }
        else
        {
            A.push(r);
        }
    }

    /// <summary>Pops a value register (the full 64-bit register in long mode).</summary>
    public void Pop(AssemblerRegister32 r)
    {
        if (Mode == GuestMode.Long64)
        {
            A.pop(Wide(r));
        }
        else
        {
            A.pop(r);
        }
    }

    private static AssemblerRegister16 R16(Ptr p) => p switch { Ptr.P0 => si, Ptr.P1 => di, _ => bx };

    private static AssemblerRegister32 R32(Ptr p) => p switch { Ptr.P0 => esi, Ptr.P1 => edi, _ => ebx };

    private static AssemblerRegister64 R64(Ptr p) => p switch { Ptr.P0 => rsi, Ptr.P1 => rdi, _ => rbx };

    private static AssemblerRegister16 Low16(AssemblerRegister32 r) =>
        r == eax ? ax : r == ecx ? cx : r == edx ? dx : r == ebp ? bp : throw new ArgumentException($"{r} is not a value register", nameof(r));

    private static AssemblerRegister64 Wide(AssemblerRegister32 r) =>
        r == eax ? rax : r == ecx ? rcx : r == edx ? rdx : r == ebp ? rbp : throw new ArgumentException($"{r} is not a value register", nameof(r));
}
