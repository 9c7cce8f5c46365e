using System.Runtime.InteropServices;
using Hypervisor.Accel.Tcg.Tests.Native.Interop;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Native;

/// <summary>A compiled native stub: machine code that runs one instruction sequence on a <see cref="RegisterFile"/>.</summary>
/// <param name="Address">Entry point (64-bit code).</param>
internal readonly record struct NativeStub(nint Address);

/// <summary>
/// Runs small instruction sequences on the host CPU: "register file in, register file + flags out". A stub loads
/// RFLAGS (POPFQ) and every GPR but RSP from a <see cref="RegisterFile"/>, runs the body, and stores the GPRs, RFLAGS
/// (PUSHFQ) and the scratch block back. Bodies run in 64-bit mode (<see cref="Compile64"/>) or, for instructions that
/// are invalid in 64-bit mode such as DAA, in compatibility mode through a far return to the Linux 32-bit user code
/// segment (<see cref="CompileCompat32"/>).
/// </summary>
/// <remarks>
/// The body must not fault: a hardware exception here kills the test process. Filter inputs that would #DE/#GP/#UD
/// before running them. Not thread-safe: one register file block per instance.
/// </remarks>
internal sealed unsafe class NativeCpu : IDisposable
{
    /// <summary>Flags a caller may pass in: the status flags and DF (TF and AC would trap or fault).</summary>
    public const ulong InputFlagsMask = 0x8D5 | 0x400;

    // The Linux x86-64 GDT user code selectors (arch/x86/include/asm/segment.h: __USER32_CS, __USER_CS).
    private const ushort User32CodeSelector = 0x23;
    private const ushort User64CodeSelector = 0x33;

    private const int PageSize = 4096;
    private const int LowStackSize = 64 * 1024;
    private const int DataSize = PageSize + LowStackSize;

    private readonly byte* _data;
    private readonly List<(nint Address, nuint Length)> _code = [];
    private bool _disposed;

    /// <summary>Creates the register file block (and a stack for compatibility-mode stubs) below 2 GiB.</summary>
    public NativeCpu()
    {
        if (UnsupportedReason is { } reason)
        {
            throw new PlatformNotSupportedException(reason);
        }

        _data = Map(DataSize, LibC.PROT_READ | LibC.PROT_WRITE);
    }

    /// <summary>Null when native stubs can run here, otherwise why not (for Assert.Ignore).</summary>
    public static string? UnsupportedReason =>
        RuntimeInformation.ProcessArchitecture != Architecture.X64 ? $"the host is {RuntimeInformation.ProcessArchitecture}, not x86-64"
        : !OperatingSystem.IsLinux() ? "the native executor maps its stubs with Linux mmap; this host is not Linux"
        : null;

    /// <summary>The address of the scratch block while a stub runs; put it in a register to give a body a memory operand.</summary>
    public ulong ScratchAddress => (ulong)(_data + RegisterFile.ScratchOffset);

    private ulong StateAddress => (ulong)_data;

    /// <summary>Compiles a 64-bit stub around <paramref name="body"/>, which emits instructions with a 64-bit assembler.</summary>
    public NativeStub Compile64(Action<Assembler> body)
    {
        var a = new Assembler(64);
        a.push(rbx);
        a.push(rbp);
        a.push(r12);
        a.push(r13);
        a.push(r14);
        a.push(r15);
        a.push(rdi);
        a.push(__qword_ptr[rdi + RegisterFile.RflagsOffset]);
        a.popfq();
        foreach (int i in LoadOrder)
        {
            a.mov(Gpr64(i), __qword_ptr[rdi + (i * 8)]);
        }

        a.mov(rdi, __qword_ptr[rdi + (7 * 8)]);
        body(a);
        a.pushfq();
        a.push(rax);
        a.mov(rax, __qword_ptr[rsp + 16]);
        for (int i = 1; i < 16; i++)
        {
            if (i != 4)
            {
                a.mov(__qword_ptr[rax + (i * 8)], Gpr64(i));
            }
        }

        a.pop(rcx);
        a.mov(__qword_ptr[rax], rcx);
        a.pop(rcx);
        a.mov(__qword_ptr[rax + RegisterFile.RflagsOffset], rcx);
        a.cld();
        a.pop(rdi);
        a.pop(r15);
        a.pop(r14);
        a.pop(r13);
        a.pop(r12);
        a.pop(rbp);
        a.pop(rbx);
        a.ret();
        return Install(a);
    }

    /// <summary>
    /// Compiles a stub whose <paramref name="body"/> (emitted with a 32-bit assembler) runs in compatibility mode.
    /// Only EAX..EDI (not ESP) and EFLAGS are loaded and stored; the upper halves of the results are zero.
    /// </summary>
    public NativeStub CompileCompat32(Action<Assembler> body)
    {
        // One page: the 64-bit entry at offset 0, the 64-bit exit at 0x100, the 32-bit body at 0x200.
        nint page = (nint)Map(PageSize, LibC.PROT_READ | LibC.PROT_WRITE);
        ulong entry = (ulong)page, exit = entry + 0x100, body32 = entry + 0x200;
        ulong state = StateAddress;
        ulong lowStackTop = (ulong)(_data + DataSize - 64);

        var enter = new Assembler(64);
        enter.push(rbx);
        enter.push(rbp);
        enter.push(r12);
        enter.push(r13);
        enter.push(r14);
        enter.push(r15);
        // Linux runs 64-bit processes with null DS/ES, which fault in compatibility mode: keep them to restore later.
        enter.mov(eax, ds);
        enter.push(rax);
        enter.mov(eax, es);
        enter.push(rax);
        enter.mov(rax, state);
        enter.mov(__qword_ptr[rax + RegisterFile.SavedRspOffset], rsp);
        enter.mov(rsp, lowStackTop);
        enter.push(User32CodeSelector);
        enter.mov(rax, body32);
        enter.push(rax);
        enter.db(0x48, 0xCB); // RETFQ: pops RIP then CS, switching to the 32-bit code segment.

        var leave = new Assembler(64);
        leave.mov(rax, state);
        leave.mov(rsp, __qword_ptr[rax + RegisterFile.SavedRspOffset]);
        leave.pop(rax);
        leave.mov(es, eax);
        leave.pop(rax);
        leave.mov(ds, eax);
        leave.pop(r15);
        leave.pop(r14);
        leave.pop(r13);
        leave.pop(r12);
        leave.pop(rbp);
        leave.pop(rbx);
        leave.ret();

        var c = new Assembler(32);
        uint s = (uint)state;
        c.mov(eax, ss);
        c.mov(ds, eax);
        c.mov(es, eax);
        c.push(__dword_ptr[s + RegisterFile.RflagsOffset]);
        c.popfd();
        foreach (int i in LoadOrder)
        {
            if (i < 8)
            {
                c.mov(Gpr32(i), __dword_ptr[s + (uint)(i * 8)]);
            }
        }

        c.mov(edi, __dword_ptr[s + (7 * 8)]);
        body(c);
        c.pushfd();
        for (int i = 0; i < 8; i++)
        {
            if (i != 4)
            {
                c.mov(__dword_ptr[s + (uint)(i * 8)], Gpr32(i));
                c.mov(__dword_ptr[s + (uint)(i * 8) + 4], 0);
            }
        }

        c.pop(__dword_ptr[s + RegisterFile.RflagsOffset]);
        c.mov(__dword_ptr[s + RegisterFile.RflagsOffset + 4], 0);
        c.cld();
        c.push(User64CodeSelector);
        c.push((uint)exit);
        c.retf(); // 32-bit RETF: pops EIP then CS, back to 64-bit mode at `exit`.

        Write((byte*)page, 0x100, enter, entry);
        Write((byte*)page + 0x100, 0x100, leave, exit);
        Write((byte*)page + 0x200, PageSize - 0x200, c, body32);
        Protect((void*)page, PageSize);
        _code.Add((page, PageSize));
        return new NativeStub(page);
    }

    /// <summary>
    /// Compiles a 64-bit stub around raw instruction bytes (for example a guest instruction the emulated CPU also ran).
    /// The bytes must be position-independent: RIP-relative operands would address memory near the stub.
    /// </summary>
    public NativeStub Compile64(ReadOnlySpan<byte> body)
    {
        byte[] bytes = body.ToArray();
        return Compile64(a => a.db(bytes));
    }

    /// <summary>Compiles a compatibility-mode stub around raw 32-bit instruction bytes.</summary>
    public NativeStub CompileCompat32(ReadOnlySpan<byte> body)
    {
        byte[] bytes = body.ToArray();
        return CompileCompat32(a => a.db(bytes));
    }

    /// <summary>Runs <paramref name="stub"/> with <paramref name="registers"/> as input and output.</summary>
    public void Run(NativeStub stub, ref RegisterFile registers)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        RegisterFile* state = (RegisterFile*)_data;
        *state = registers;
        state->Rflags = (registers.Rflags & InputFlagsMask) | 2;
        ((delegate* unmanaged<RegisterFile*, void>)stub.Address)(state);
        ulong rsp = registers.Rsp;
        registers = *state;
        registers.Rsp = rsp;
        registers.SavedRsp = 0;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach ((nint address, nuint length) in _code)
        {
            _ = LibC.munmap((void*)address, length);
        }

        _ = LibC.munmap(_data, DataSize);
    }

    // RDI (7) holds the register file pointer, so it is loaded last; RSP (4) is never loaded.
    private static ReadOnlySpan<int> LoadOrder => [0, 1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15];

    private static AssemblerRegister64 Gpr64(int i) => i switch
    {
        0 => rax, 1 => rcx, 2 => rdx, 3 => rbx, 4 => rsp, 5 => rbp, 6 => rsi, 7 => rdi,
        8 => r8, 9 => r9, 10 => r10, 11 => r11, 12 => r12, 13 => r13, 14 => r14, _ => r15,
    };

    private static AssemblerRegister32 Gpr32(int i) => i switch
    {
        0 => eax, 1 => ecx, 2 => edx, 3 => ebx, 4 => esp, 5 => ebp, 6 => esi, _ => edi,
    };

    private NativeStub Install(Assembler a)
    {
        var probe = new ByteWriter();
        a.Assemble(probe, 0);
        nuint length = (nuint)((probe.Count + PageSize - 1) & ~(PageSize - 1));
        byte* page = Map(length, LibC.PROT_READ | LibC.PROT_WRITE);
        Write(page, (int)length, a, (ulong)page);
        Protect(page, length);
        _code.Add(((nint)page, length));
        return new NativeStub((nint)page);
    }

    private static void Write(byte* destination, int capacity, Assembler a, ulong rip)
    {
        var writer = new ByteWriter();
        a.Assemble(writer, rip);
        if (writer.Count > capacity)
        {
            throw new InvalidOperationException($"stub of {writer.Count} bytes does not fit in {capacity}");
        }

        writer.CopyTo(new Span<byte>(destination, capacity));
    }

    private static byte* Map(nuint length, int protection)
    {
        void* p = LibC.mmap(null, length, protection, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS | LibC.MAP_32BIT, -1, 0);
        if (p == LibC.MAP_FAILED)
        {
            throw new InvalidOperationException($"mmap failed, errno {Marshal.GetLastPInvokeError()}");
        }

        return (byte*)p;
    }

    private static void Protect(void* address, nuint length)
    {
        if (LibC.mprotect(address, length, LibC.PROT_READ | LibC.PROT_EXEC) != 0)
        {
            throw new InvalidOperationException($"mprotect failed, errno {Marshal.GetLastPInvokeError()}");
        }
    }

    private sealed class ByteWriter : CodeWriter
    {
        private readonly List<byte> _bytes = [];

        public int Count => _bytes.Count;

        public override void WriteByte(byte value) => _bytes.Add(value);

        public void CopyTo(Span<byte> destination) => CollectionsMarshal.AsSpan(_bytes).CopyTo(destination);
    }
}
