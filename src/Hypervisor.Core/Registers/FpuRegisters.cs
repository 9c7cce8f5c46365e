using System.Runtime.CompilerServices;

namespace Hypervisor.Core.Registers;

/// <summary>The x87, MMX and SSE state (the same content as the FXSAVE area and KVM's <c>kvm_fpu</c>).</summary>
#pragma warning disable CA1051 // a register file is data; fields are the honest shape
public struct FpuRegisters
{
    /// <summary>ST(0)-ST(7) in stack order (element i is ST(i), as in the FXSAVE image and <c>kvm_fpu</c>), 80-bit values.</summary>
    public X87Registers St;
    /// <summary>XMM0-XMM15.</summary>
    public XmmRegisters Xmm;
    /// <summary>The x87 control word (reset value 0x037F after FINIT; 0x0040 after a hardware reset).</summary>
    public ushort Fcw;
    /// <summary>The x87 status word.</summary>
    public ushort Fsw;
    /// <summary>The abridged tag word as in FXSAVE (one bit per register, 1 = valid).</summary>
    public byte Ftw;
    /// <summary>The last x87 opcode.</summary>
    public ushort LastOpcode;
    /// <summary>The last x87 instruction pointer.</summary>
    public ulong LastIp;
    /// <summary>The last x87 data pointer.</summary>
    public ulong LastDp;
    /// <summary>MXCSR (reset value 0x1F80).</summary>
    public uint Mxcsr;
}

/// <summary>An 80-bit extended-precision value: 64-bit significand and sign with 15-bit exponent.</summary>
/// <param name="Significand">The 64-bit significand including the explicit integer bit.</param>
/// <param name="SignExponent">Bit 15 = sign, bits 0-14 = biased exponent.</param>
public readonly record struct Float80(ulong Significand, ushort SignExponent);

/// <summary>Eight x87 registers.</summary>
[InlineArray(8)]
public struct X87Registers
{
    private Float80 _element;
}

/// <summary>Sixteen 128-bit XMM registers.</summary>
[InlineArray(16)]
public struct XmmRegisters
{
    private UInt128 _element;
}
#pragma warning restore CA1051
