using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Whpx.Tests.Live;

/// <summary>
/// Small real-mode firmware images (64 KiB, mapped to end at 4 GiB as with <c>qemu-system-x86_64 -bios</c>): code at
/// the image's start (CS base 0xFFFF0000 after reset, so IP 0 is the image's first byte) and a near jump to it at the
/// reset vector (IP 0xFFF0).
/// </summary>
internal static class TestGuests
{
    public const int ImageSize = 64 * 1024;
    public const ushort SerialPort = 0x3F8;
    public const ushort DebugExitPort = 0x501;

    /// <summary>Sums 1..100, prints the sum in decimal and a newline on COM1, then writes 0x10 to isa-debug-exit.</summary>
    public static byte[] SumAndExit() => Build(a =>
    {
        Label sum = a.CreateLabel(), digits = a.CreateLabel(), print = a.CreateLabel();
        a.xor(ax, ax);
        a.mov(cx, 100);
        a.Label(ref sum);
        a.add(ax, cx);
        a.loop(sum);

        // Decimal digits: divide by 10, push remainders, pop and print.
        a.mov(bx, 10);
        a.xor(si, si);
        a.Label(ref digits);
        a.xor(dx, dx);
        a.div(bx);
        a.push(dx);
        a.inc(si);
        a.test(ax, ax);
        a.jnz(digits);
        a.mov(dx, SerialPort);
        a.Label(ref print);
        a.pop(ax);
        a.add(al, (byte)'0');
        a.@out(dx, al);
        a.dec(si);
        a.jnz(print);
        a.mov(al, (byte)'\n');
        a.@out(dx, al);

        a.mov(dx, DebugExitPort);
        a.mov(al, 0x10);
        a.@out(dx, al);
        a.cli();
        a.hlt();
    });

    /// <summary>Stores 0xBEEF at 0xA0010 (a word write to MMIO), reads a word from 0xA0020 and prints its low byte, exits with 0x11.</summary>
    public static byte[] MmioRoundTrip() => Build(a =>
    {
        a.mov(ax, 0xA000);
        a.mov(ds, ax);
        a.mov(__word_ptr[0x10], 0xBEEF);
        a.mov(ax, __word_ptr[0x20]);
        a.mov(dx, SerialPort);
        a.@out(dx, al);
        a.mov(dx, DebugExitPort);
        a.mov(al, 0x11);
        a.@out(dx, al);
        a.cli();
        a.hlt();
    });

    /// <summary>The vector <see cref="InterruptThenExit"/> installs a handler for.</summary>
    public const byte TestVector = 0x20;

    /// <summary>
    /// Installs an IVT handler for <see cref="TestVector"/> that prints 'I', enables interrupts and halts; after the
    /// interrupt wakes it, prints 'D' and exits with 0x12. The handler runs at F000:offset, where the image's low
    /// alias (0xF0000) holds the same bytes.
    /// </summary>
    public static byte[] InterruptThenExit()
    {
        const ushort handlerOffset = 0x100;
        byte[] image = Build(a =>
        {
            a.cli();
            a.xor(ax, ax);
            a.mov(ds, ax);
            a.mov(__word_ptr[TestVector * 4], handlerOffset);
            a.mov(__word_ptr[TestVector * 4 + 2], 0xF000);
            a.mov(ss, ax);
            a.mov(sp, 0x7000);
            a.sti();
            a.hlt();
            a.mov(dx, SerialPort);
            a.mov(al, (byte)'D');
            a.@out(dx, al);
            a.mov(dx, DebugExitPort);
            a.mov(al, 0x12);
            a.@out(dx, al);
            a.cli();
            a.hlt();
        });

        var handler = new Assembler(16);
        handler.push(ax);
        handler.push(dx);
        handler.mov(dx, SerialPort);
        handler.mov(al, (byte)'I');
        handler.@out(dx, al);
        handler.pop(dx);
        handler.pop(ax);
        handler.iret();
        Assemble(handler, handlerOffset).CopyTo(image, handlerOffset);
        return image;
    }

    /// <summary>Disables interrupts and halts: nothing can wake it.</summary>
    public static byte[] HaltWithInterruptsOff() => Build(a =>
    {
        a.cli();
        a.hlt();
    });

    /// <summary>Spins forever (for kick/timeout tests).</summary>
    public static byte[] SpinForever() => Build(a =>
    {
        Label self = a.CreateLabel();
        a.Label(ref self);
        a.jmp(self);
    });

    private static byte[] Build(Action<Assembler> body)
    {
        var image = new byte[ImageSize];
        Array.Fill(image, (byte)0xF4); // HLT everywhere else

        var code = new Assembler(16);
        body(code);
        byte[] bytes = Assemble(code, 0);
        if (bytes.Length > 0x100)
        {
            throw new InvalidOperationException("test guest code must fit below offset 0x100");
        }

        bytes.CopyTo(image, 0);

        // JMP rel16 (E9) at IP 0xFFF0 to IP 0: the new IP is (0xFFF3 + rel16) truncated to 16 bits (SDM Vol. 2A, JMP),
        // so rel16 = 0x000D. Written by hand because the assembler does not wrap the target within the segment.
        const int resetVector = 0xFFF0;
        ushort rel16 = unchecked((ushort)(0 - (resetVector + 3)));
        image[resetVector] = 0xE9;
        image[resetVector + 1] = (byte)rel16;
        image[resetVector + 2] = (byte)(rel16 >> 8);
        return image;
    }

    private static byte[] Assemble(Assembler assembler, ulong ip)
    {
        var stream = new MemoryStream();
        assembler.Assemble(new StreamCodeWriter(stream), ip);
        return stream.ToArray();
    }
}
