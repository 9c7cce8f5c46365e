using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Hypervisor.Accel.Tcg.Tests.Native;

/// <summary>64 bytes of memory that a stub can address through a register (see <see cref="NativeCpu.ScratchAddress"/>).</summary>
[InlineArray(64)]
internal struct ScratchMemory
{
    private byte _element0;
}

/// <summary>
/// The general registers, RFLAGS and a 64-byte scratch block, in and out of a native stub. The layout is fixed
/// because the stubs address it by offset: the 16 GPRs in encoding order (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI,
/// R8..R15), RFLAGS at 128, the scratch block at <see cref="ScratchOffset"/>. RSP is neither loaded nor stored (the stub
/// runs on the host stack).
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
internal struct RegisterFile
{
    public const int Size = 256;
    public const int RflagsOffset = 128;
    public const int ScratchOffset = 192;

    /// <summary>Internal to the stubs: where a compatibility-mode stub keeps the host RSP.</summary>
    internal const int SavedRspOffset = 136;

    [FieldOffset(0)] public ulong Rax;
    [FieldOffset(8)] public ulong Rcx;
    [FieldOffset(16)] public ulong Rdx;
    [FieldOffset(24)] public ulong Rbx;
    [FieldOffset(32)] public ulong Rsp;
    [FieldOffset(40)] public ulong Rbp;
    [FieldOffset(48)] public ulong Rsi;
    [FieldOffset(56)] public ulong Rdi;
    [FieldOffset(64)] public ulong R8;
    [FieldOffset(72)] public ulong R9;
    [FieldOffset(80)] public ulong R10;
    [FieldOffset(88)] public ulong R11;
    [FieldOffset(96)] public ulong R12;
    [FieldOffset(104)] public ulong R13;
    [FieldOffset(112)] public ulong R14;
    [FieldOffset(120)] public ulong R15;
    [FieldOffset(RflagsOffset)] public ulong Rflags;
    [FieldOffset(SavedRspOffset)] internal ulong SavedRsp;
    [FieldOffset(ScratchOffset)] public ScratchMemory Scratch;

    /// <summary>A general register by encoding number (0 = RAX ... 15 = R15).</summary>
    public ulong this[int index]
    {
        readonly get => Unsafe.Add(ref Unsafe.AsRef(in Rax), index);
        set => Unsafe.Add(ref Rax, index) = value;
    }
}
