namespace Hypervisor.Core.Registers;

/// <summary>The general-purpose registers, RIP and RFLAGS (the same set as KVM's <c>kvm_regs</c>).</summary>
/// <remarks>A plain register file: fields, so that a caller can read-modify-write it cheaply.</remarks>
#pragma warning disable CA1051 // a register file is data; fields are the honest shape
public struct GeneralRegisters
{
    /// <summary>RAX.</summary>
    public ulong Rax;
    /// <summary>RBX.</summary>
    public ulong Rbx;
    /// <summary>RCX.</summary>
    public ulong Rcx;
    /// <summary>RDX.</summary>
    public ulong Rdx;
    /// <summary>RSI.</summary>
    public ulong Rsi;
    /// <summary>RDI.</summary>
    public ulong Rdi;
    /// <summary>RSP.</summary>
    public ulong Rsp;
    /// <summary>RBP.</summary>
    public ulong Rbp;
    /// <summary>R8.</summary>
    public ulong R8;
    /// <summary>R9.</summary>
    public ulong R9;
    /// <summary>R10.</summary>
    public ulong R10;
    /// <summary>R11.</summary>
    public ulong R11;
    /// <summary>R12.</summary>
    public ulong R12;
    /// <summary>R13.</summary>
    public ulong R13;
    /// <summary>R14.</summary>
    public ulong R14;
    /// <summary>R15.</summary>
    public ulong R15;
    /// <summary>RIP.</summary>
    public ulong Rip;
    /// <summary>RFLAGS (bit 1 always reads as one).</summary>
    public ulong Rflags;

    /// <summary>Register <paramref name="index"/> in encoding order (0 = RAX, 1 = RCX, 2 = RDX, 3 = RBX, 4 = RSP, ... 15 = R15).</summary>
    public ulong this[int index]
    {
        readonly get => index switch
        {
            0 => Rax, 1 => Rcx, 2 => Rdx, 3 => Rbx, 4 => Rsp, 5 => Rbp, 6 => Rsi, 7 => Rdi,
            8 => R8, 9 => R9, 10 => R10, 11 => R11, 12 => R12, 13 => R13, 14 => R14, 15 => R15,
            _ => throw new ArgumentOutOfRangeException(nameof(index)),
        };
        set
        {
            switch (index)
            {
                case 0: Rax = value; break;
                case 1: Rcx = value; break;
                case 2: Rdx = value; break;
                case 3: Rbx = value; break;
                case 4: Rsp = value; break;
                case 5: Rbp = value; break;
                case 6: Rsi = value; break;
                case 7: Rdi = value; break;
                case 8: R8 = value; break;
                case 9: R9 = value; break;
                case 10: R10 = value; break;
                case 11: R11 = value; break;
                case 12: R12 = value; break;
                case 13: R13 = value; break;
                case 14: R14 = value; break;
                case 15: R15 = value; break;
                default: throw new ArgumentOutOfRangeException(nameof(index));
            }
        }
    }
}
#pragma warning restore CA1051
