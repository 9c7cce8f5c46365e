using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Guests;

/// <summary>
/// The built-in demo firmware: starts at the reset vector in real mode, switches to 32-bit protected mode and then
/// to 64-bit long mode (PAE paging, EFER.LME), reporting each step on COM1; in long mode it counts the primes below
/// 100000 with a sieve and computes the CRC-32 of "123456789", prints both, and ends by writing 0 to isa-debug-exit
/// (exit status 1, as QEMU reports it).
/// </summary>
/// <remarks>
/// Assembled at run time with Iced, so no external assembler is needed. The same image runs under
/// <c>qemu-system-x86_64 -bios demo.bin -nographic -device isa-debug-exit</c>; the expected results are independent
/// facts (there are 9592 primes below 100000; the CRC-32 check value of "123456789" is 0xCBF43926).
/// </remarks>
public static class DemoGuest
{
    /// <summary>The image size: 64 KiB, the smallest firmware image.</summary>
    public const int ImageSize = 64 * 1024;

    /// <summary>The value the guest writes to isa-debug-exit.</summary>
    public const int DebugExitValue = 0;

    // Layout inside the image; the image's last 64 KiB appear at 0xF0000 (below 1 MiB) and at 0xFFFF0000.
    private const uint LowBase = 0xF0000;
    private const int RealModeOffset = 0x0000;
    private const int GdtOffset = 0x0F00;
    private const int GdtPointerOffset = 0x0F40;
    private const int ProtectedModeOffset = 0x1000;
    private const int LongModeOffset = 0x2000;
    private const int RealModeMessageOffset = 0x0E00;
    private const int ProtectedModeMessageOffset = 0x1E00;
    private const ushort Com1 = 0x3F8;
    private const ushort DebugExitPort = 0x501;
    private const uint PageTables = 0x10000; // PML4 at 0x10000, PDPT at 0x11000, PD at 0x12000
    private const uint SieveBase = 0x100000;
    private const int SieveLimit = 100000;

    /// <summary>Builds the 64 KiB firmware image.</summary>
    public static byte[] Build()
    {
        var image = new byte[ImageSize];
        Place(image, RealModeOffset, RealMode());
        Place(image, ProtectedModeOffset, ProtectedMode());
        Place(image, LongModeOffset, LongMode());
        "Hypervisor demo guest: real mode\r\n\0"u8.CopyTo(image.AsSpan(RealModeMessageOffset));
        "Hypervisor demo guest: 32-bit protected mode\r\n\0"u8.CopyTo(image.AsSpan(ProtectedModeMessageOffset));

        FirmwareSkeleton.WriteFlatGdt(image, GdtOffset, GdtPointerOffset, LowBase);
        FirmwareSkeleton.WriteResetJump(image); // to F000:0000, the real-mode code
        return image;
    }

    private static void Place(byte[] image, int offset, byte[] code)
    {
        if (code.Length > 0xE00)
        {
            throw new InvalidOperationException($"Demo section at 0x{offset:X} is too large ({code.Length} bytes).");
        }

        code.CopyTo(image, offset);
    }

    private static byte[] RealMode()
    {
        var a = new Assembler(16);
        Label print = a.CreateLabel();
        a.cli();
        a.cld();
        a.mov(ax, 0xF000);
        a.mov(ds, ax);
        a.xor(ax, ax);
        a.mov(ss, ax);
        a.mov(sp, 0x7000);
        InitUart(a);
        a.mov(si, RealModeMessageOffset);
        a.call(print);
        a.lgdt(__[GdtPointerOffset]);
        a.mov(eax, cr0);
        a.or(eax, 1);
        a.mov(cr0, eax);
        // jmp dword 0x08:LowBase+ProtectedModeOffset (operand-size prefix for a 32-bit offset)
        a.db(0x66, 0xEA);
        a.dd(LowBase + ProtectedModeOffset);
        a.dw(0x08);

        Print(a, print);
        return Assemble(a, RealModeOffset);
    }

    private static byte[] ProtectedMode()
    {
        var a = new Assembler(32);
        Label print = a.CreateLabel();
        a.mov(ax, 0x10);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(esp, 0x7000);
        a.mov(esi, LowBase + ProtectedModeMessageOffset);
        a.call(print);

        // Identity-map the first 2 MiB with one large page: PML4[0] -> PDPT, PDPT[0] -> PD, PD[0] = 2 MiB page.
        a.mov(edi, PageTables);
        a.xor(eax, eax);
        a.mov(ecx, 3 * 1024);
        a.rep.stosd();
        a.mov(__dword_ptr[PageTables], PageTables + 0x1000 + 3);
        a.mov(__dword_ptr[PageTables + 0x1000], PageTables + 0x2000 + 3);
        a.mov(__dword_ptr[PageTables + 0x2000], 0x83);
        a.mov(eax, cr4);
        a.or(eax, 0x20); // CR4.PAE
        a.mov(cr4, eax);
        a.mov(eax, PageTables);
        a.mov(cr3, eax);
        a.mov(ecx, 0xC000_0080); // IA32_EFER
        a.rdmsr();
        a.or(eax, 0x100); // EFER.LME
        a.wrmsr();
        a.mov(eax, cr0);
        a.or(eax, unchecked((int)0x8000_0000)); // CR0.PG: long mode becomes active (EFER.LMA)
        a.mov(cr0, eax);
        a.db(0xEA);
        a.dd(LowBase + LongModeOffset);
        a.dw(0x18);

        Print(a, print);
        return Assemble(a, LowBase + ProtectedModeOffset);
    }

    private static byte[] LongMode()
    {
        var a = new Assembler(64);
        Label print = a.CreateLabel(), printDecimal = a.CreateLabel(), printHex = a.CreateLabel();
        Label hello = a.CreateLabel(), primes = a.CreateLabel(), crcText = a.CreateLabel(), crcInput = a.CreateLabel();
        Label newline = a.CreateLabel(), bye = a.CreateLabel();
        Label outer = a.CreateLabel(), inner = a.CreateLabel(), next = a.CreateLabel(), counted = a.CreateLabel();
        Label crcByte = a.CreateLabel(), crcBit = a.CreateLabel(), crcNoXor = a.CreateLabel(), halt = a.CreateLabel();
        Label putChar = a.CreateLabel();

        a.mov(ax, 0x10);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(rsp, 0x7000);
        a.lea(rsi, __[hello]);
        a.call(print);

        // Sieve of Eratosthenes over bytes at SieveBase: 0 = prime candidate, 1 = composite.
        a.mov(rdi, SieveBase);
        a.mov(ecx, SieveLimit);
        a.xor(eax, eax);
        a.rep.stosb();
        a.mov(ebx, 2);
        a.xor(r12d, r12d);
        a.Label(ref outer);
        a.cmp(rbx, SieveLimit);
        a.jae(counted);
        a.cmp(__byte_ptr[rbx + SieveBase], 0);
        a.jne(next);
        a.inc(r12);
        a.mov(rax, rbx);
        a.imul(rax, rbx);
        a.cmp(rax, SieveLimit);
        a.jae(next);
        a.Label(ref inner);
        a.mov(__byte_ptr[rax + SieveBase], 1);
        a.add(rax, rbx);
        a.cmp(rax, SieveLimit);
        a.jb(inner);
        a.Label(ref next);
        a.inc(rbx);
        a.jmp(outer);
        a.Label(ref counted);
        a.lea(rsi, __[primes]);
        a.call(print);
        a.mov(rax, r12);
        a.call(printDecimal);
        a.lea(rsi, __[newline]);
        a.call(print);

        // Bitwise CRC-32 (reflected, polynomial 0xEDB88320) of "123456789".
        a.lea(rsi, __[crcInput]);
        a.mov(ecx, 9);
        a.mov(edx, unchecked((int)0xFFFF_FFFF));
        a.Label(ref crcByte);
        a.movzx(eax, __byte_ptr[rsi]);
        a.inc(rsi);
        a.xor(edx, eax);
        a.mov(r8d, 8);
        a.Label(ref crcBit);
        a.shr(edx, 1);
        a.jnc(crcNoXor);
        a.xor(edx, unchecked((int)0xEDB8_8320));
        a.Label(ref crcNoXor);
        a.dec(r8d);
        a.jnz(crcBit);
        a.loop(crcByte);
        a.not(edx);
        a.mov(r13d, edx);
        a.lea(rsi, __[crcText]);
        a.call(print);
        a.mov(eax, r13d);
        a.call(printHex);
        a.lea(rsi, __[newline]);
        a.call(print);
        a.lea(rsi, __[bye]);
        a.call(print);

        a.mov(dx, DebugExitPort);
        a.mov(al, DebugExitValue);
        a.@out(dx, al);
        a.Label(ref halt);
        a.hlt();
        a.jmp(halt);

        Print(a, print);

        // printDecimal: RAX as unsigned decimal (digits built on the stack, most significant first).
        Label digit = a.CreateLabel(), emit = a.CreateLabel();
        a.Label(ref printDecimal);
        a.mov(rcx, 10);
        a.xor(r9d, r9d);
        a.Label(ref digit);
        a.xor(edx, edx);
        a.div(rcx);
        a.add(dl, (byte)'0');
        a.push(rdx);
        a.inc(r9);
        a.test(rax, rax);
        a.jnz(digit);
        a.Label(ref emit);
        a.pop(rax);
        a.call(putChar);
        a.dec(r9);
        a.jnz(emit);
        a.ret();

        // printHex: EAX as eight lower-case hex digits.
        Label hexLoop = a.CreateLabel(), hexDigit = a.CreateLabel();
        a.Label(ref printHex);
        a.mov(r10d, eax);
        a.mov(r9d, 8);
        a.Label(ref hexLoop);
        a.rol(r10d, 4);
        a.mov(eax, r10d);
        a.and(eax, 0xF);
        a.cmp(eax, 10);
        a.jb(hexDigit);
        a.add(eax, 'a' - '0' - 10);
        a.Label(ref hexDigit);
        a.add(eax, '0');
        a.call(putChar);
        a.dec(r9d);
        a.jnz(hexLoop);
        a.ret();

        // putChar: AL to COM1 once the transmitter holding register is empty.
        Label wait = a.CreateLabel();
        a.Label(ref putChar);
        a.push(rdx);
        a.push(rax);
        a.Label(ref wait);
        a.mov(dx, Com1 + 5);
        a.@in(al, dx);
        a.test(al, 0x20);
        a.jz(wait);
        a.pop(rax);
        a.mov(dx, Com1);
        a.@out(dx, al);
        a.pop(rdx);
        a.ret();

        a.Label(ref hello);
        a.db("Hypervisor demo guest: 64-bit long mode\r\n\0"u8.ToArray());
        a.Label(ref primes);
        a.db("primes below 100000: \0"u8.ToArray());
        a.Label(ref crcText);
        a.db("crc32(\"123456789\") = 0x\0"u8.ToArray());
        a.Label(ref crcInput);
        a.db("123456789"u8.ToArray());
        a.Label(ref newline);
        a.db("\r\n\0"u8.ToArray());
        a.Label(ref bye);
        a.db("Hypervisor demo guest: done, exiting through isa-debug-exit\r\n\0"u8.ToArray());
        return Assemble(a, LowBase + LongModeOffset);
    }

    // Programs COM1 for 115200 8N1 with FIFOs, as firmware would; QEMU and our UART transmit regardless of the rate.
    private static void InitUart(Assembler a)
    {
        (ushort Port, byte Value)[] writes = [(Com1 + 1, 0x00), (Com1 + 3, 0x80), (Com1, 0x01), (Com1 + 1, 0x00), (Com1 + 3, 0x03), (Com1 + 2, 0x07), (Com1 + 4, 0x03)];
        foreach ((ushort port, byte value) in writes)
        {
            a.mov(dx, port);
            a.mov(al, value);
            a.@out(dx, al);
        }
    }

    // print: the zero-terminated string at [index register] to COM1, polling LSR.THRE (bit 5) before each byte.
    private static void Print(Assembler a, Label print)
    {
        Label wait = a.CreateLabel(), done = a.CreateLabel();
        a.Label(ref print);
        a.lodsb();
        a.test(al, al);
        a.jz(done);
        a.mov(bl, al);
        a.Label(ref wait);
        a.mov(dx, Com1 + 5);
        a.@in(al, dx);
        a.test(al, 0x20);
        a.jz(wait);
        a.mov(al, bl);
        a.mov(dx, Com1);
        a.@out(dx, al);
        a.jmp(print);
        a.Label(ref done);
        a.ret();
    }

    private static byte[] Assemble(Assembler a, ulong ip)
    {
        using var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), ip);
        return stream.ToArray();
    }
}
