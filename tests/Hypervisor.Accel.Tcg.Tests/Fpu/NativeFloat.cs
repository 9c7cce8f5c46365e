using System.Runtime.InteropServices;
using Hypervisor.Accel.Tcg.Fpu;
using Hypervisor.Accel.Tcg.Tests.Fpu.Interop;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Fpu;

/// <summary>
/// Runs x87 and SSE instructions on the host CPU. Each stub saves the caller's MXCSR and FCW, loads the test's MXCSR
/// and FCW from a data block (pointer in RDI, System V), resets the x87 (FNINIT), runs a body emitted by the test, and
/// restores the caller's state with an empty x87 stack and no pending exceptions. Only masked exceptions may be
/// produced natively: an unmasked one would fault (SIGFPE) and kill the test process.
/// </summary>
internal sealed unsafe class NativeFloat : IDisposable
{
    // Data block layout (byte offsets).
    public const int MxcsrIn = 0, MxcsrOut = 4, FcwIn = 8, FswOut = 10, RflagsOut = 16, IntIn = 24, IntOut = 32;
    public const int A = 48, B = 64, Result = 80, Result2 = 96, C = 112, Save = 128, Env = 640, SaveLegacy = 672, Values = 800, BlockSize = 1152;

    private const int ArenaSize = 1 << 20;
    private readonly nint _arena;
    private int _used;
    private readonly Dictionary<string, nint> _stubs = new();

    public byte* Block { get; }

    public static bool Supported => RuntimeInformation.ProcessArchitecture == Architecture.X64 && OperatingSystem.IsLinux();

    public NativeFloat()
    {
        _arena = LibC.mmap(0, ArenaSize, LibC.PROT_READ | LibC.PROT_WRITE | LibC.PROT_EXEC, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS, -1, 0);
        if (_arena == -1)
            throw new InvalidOperationException($"mmap failed: errno {Marshal.GetLastPInvokeError()}");
        Block = (byte*)NativeMemory.AlignedAlloc(BlockSize, 64);
        new Span<byte>(Block, BlockSize).Clear();
    }

    /// <summary>Emits (once per name) and returns a stub whose body is produced by <paramref name="body"/>.</summary>
    public nint Stub(string name, Action<Assembler> body)
    {
        if (_stubs.TryGetValue(name, out var p))
            return p;
        var a = new Assembler(64);
        a.sub(rsp, 24);
        a.stmxcsr(__dword_ptr[rsp]);
        a.fnstcw(__word_ptr[rsp + 4]);
        a.ldmxcsr(__dword_ptr[rdi + MxcsrIn]);
        a.fninit();
        a.fldcw(__word_ptr[rdi + FcwIn]);
        body(a);
        a.fninit();
        a.ldmxcsr(__dword_ptr[rsp]);
        a.fldcw(__word_ptr[rsp + 4]);
        a.add(rsp, 24);
        a.ret();
        var writer = new BytesWriter();
        nint at = _arena + _used;
        a.Assemble(writer, (ulong)at);
        var bytes = writer.Bytes;
        if (_used + bytes.Count > ArenaSize)
            throw new InvalidOperationException("stub arena full");
        for (int i = 0; i < bytes.Count; i++)
            ((byte*)at)[i] = bytes[i];
        _used += (bytes.Count + 15) & ~15;
        _stubs[name] = at;
        return at;
    }

    /// <summary>Records MXCSR, FSW and RFLAGS into the block: call right after the instruction under test.</summary>
    public static void Capture(Assembler a)
    {
        a.stmxcsr(__dword_ptr[rdi + MxcsrOut]);
        a.fnstsw(__word_ptr[rdi + FswOut]);
        a.pushfq();
        a.pop(r11); // r11: scratch that no test body uses for its operands
        a.mov(__qword_ptr[rdi + RflagsOut], r11);
    }

    public void Run(nint stub) => ((delegate* unmanaged<byte*, void>)stub)(Block);

    public uint MxcsrInValue { set => *(uint*)(Block + MxcsrIn) = value; }
    public uint MxcsrOutValue => *(uint*)(Block + MxcsrOut);
    public ushort FcwInValue { set => *(ushort*)(Block + FcwIn) = value; }
    public ushort FswOutValue => *(ushort*)(Block + FswOut);
    public ulong RflagsOutValue => *(ulong*)(Block + RflagsOut);

    public Span<byte> Bytes(int offset, int length) => new(Block + offset, length);

    public void SetExtended(int offset, ExtendedFloat v) => v.Write(Bytes(offset, 10));
    public ExtendedFloat GetExtended(int offset) => ExtendedFloat.Read(Bytes(offset, 10));
    public void SetUInt64(int offset, ulong v) => *(ulong*)(Block + offset) = v;
    public ulong GetUInt64(int offset) => *(ulong*)(Block + offset);
    public void SetUInt128(int offset, UInt128 v) => *(UInt128*)(Block + offset) = v;
    public UInt128 GetUInt128(int offset) => *(UInt128*)(Block + offset);

    public void Dispose()
    {
        NativeMemory.AlignedFree(Block);
        LibC.munmap(_arena, ArenaSize);
    }

    private sealed class BytesWriter : CodeWriter
    {
        public readonly List<byte> Bytes = new();
        public override void WriteByte(byte value) => Bytes.Add(value);
    }
}
