using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Tests.Guests;

/// <summary>Firmware images that exercise the PC devices: timer interrupts, the RTC, COM1 echo, and a hostile guest.</summary>
internal static class DeviceGuests
{
    /// <summary>The PIT's input clock in Hz (1.193182 MHz).</summary>
    public const double PitHz = 1_193_182.0;

    /// <summary>A divisor giving about 1 kHz.</summary>
    public const ushort OneKilohertzDivisor = 1193;

    /// <summary>The debug-exit value of the timer guest in <paramref name="mode"/>.</summary>
    public static byte TimerExitValue(GuestMode mode) => (byte)(0x11 + (int)mode);

    /// <summary>The line the timer guest prints after <paramref name="ticks"/> interrupts.</summary>
    public static string TimerLine(GuestMode mode, int ticks) => $"{mode} mode: {ticks} timer interrupts\r\n";

    /// <summary>
    /// Programs the PIC (master vector base 0x20, only IRQ 0 unmasked) and PIT channel 0 (<paramref name="pitMode"/>, <paramref name="divisor"/>),
    /// then STI;HLT in a loop until its IRQ 0 handler (which sends a non-specific EOI) has counted
    /// <paramref name="ticks"/> interrupts; prints the count read back from memory and exits.
    /// </summary>
    public static byte[] Timer(GuestMode mode, int ticks, ushort divisor, int pitMode = 2)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(ticks, 255);
        return PcGuest.Build(mode, g =>
        {
            Assembler a = g.A;
            Label handler = a.CreateLabel(), loop = a.CreateLabel(), done = a.CreateLabel();
            a.mov(__word_ptr[PcGuest.Variables], 0);
            g.SetVector(0x20, handler);
            g.LoadIdt();
            g.ProgramPic(0xFE, 0xFF);
            g.ProgramPitChannel0(divisor, pitMode);

            // CLI before the check and STI;HLT after it (STI's one-instruction shadow covers HLT), so no tick is lost
            // between the comparison and the halt and the loop leaves with exactly `ticks` interrupts counted.
            a.Label(ref loop);
            a.cli();
            a.cmp(__word_ptr[PcGuest.Variables], ticks);
            a.jae(done);
            a.sti();
            a.hlt();
            a.jmp(loop);
            a.Label(ref done);
            g.Print($"{mode} mode: ");
            a.mov(al, __byte_ptr[PcGuest.Variables]);
            g.PrintDecimalAl();
            g.Print(" timer interrupts\r\n");
            g.Exit(TimerExitValue(mode));

            g.Mark(ref handler);
            switch (mode)
            {
                // Each handler returns with IF clear (it clears IF in the saved FLAGS), so a second tick that is already
                // pending when a slow host resumes the guest cannot be taken between IRET and the loop's count check.
                case GuestMode.Real:
                    a.push(ds);
                    a.push(ax);
                    a.push(bp);
                    a.mov(bp, sp);
                    a.and(__word_ptr[bp + 10], unchecked((short)0xFDFF)); // FLAGS above BP, AX, DS, IP and CS
                    a.xor(ax, ax);
                    a.mov(ds, ax);
                    a.inc(__word_ptr[PcGuest.Variables]);
                    a.mov(al, 0x20);
                    a.@out(0x20, al);
                    a.pop(bp);
                    a.pop(ax);
                    a.pop(ds);
                    break;
                case GuestMode.Protected:
                    a.push(eax);
                    a.and(__dword_ptr[esp + 12], ~0x200); // EFLAGS above EAX, EIP and CS
                    a.inc(__word_ptr[PcGuest.Variables]);
                    a.mov(al, 0x20);
                    a.@out(0x20, al);
                    a.pop(eax);
                    break;
                default:
                    a.push(rax);
                    a.and(__qword_ptr[rsp + 24], ~0x200); // RFLAGS above RAX, RIP and CS
                    a.inc(__word_ptr[PcGuest.Variables]);
                    a.mov(al, 0x20);
                    a.@out(0x20, al);
                    a.pop(rax);
                    break;
            }

            g.Iret();
        });
    }

    public const byte RtcExitValue = 0x21;

    /// <summary>
    /// Waits for status register A's UIP bit to be clear, reads register B and the year, month, day, hours, minutes
    /// and seconds, converts BCD and 12-hour values as register B says, and prints <c>RTC yy-mm-dd hh:mm:ss</c>.
    /// </summary>
    /// <param name="format">
    /// Null to keep the RTC's data format; otherwise register B's DM (bit 2, binary) and 24/12 (bit 1) bits to set first.
    /// </param>
    public static byte[] Rtc(byte? format = null) => PcGuest.Build(GuestMode.Real, g =>
    {
        Assembler a = g.A;
        Label uip = a.CreateLabel();
        const uint regB = PcGuest.Variables;
        const uint values = PcGuest.Variables + 0x10;
        byte[] registers = [0x09, 0x08, 0x07, 0x04, 0x02, 0x00];
        if (format is byte f)
        {
            g.Out(0x70, 0x0B);
            g.In(0x71);
            a.and(al, unchecked((byte)~0x06));
            a.or(al, (byte)(f & 0x06));
            a.mov(bl, al);
            g.Out(0x70, 0x0B);
            a.mov(al, bl);
            a.@out(0x71, al);
        }

        a.Label(ref uip);
        g.Out(0x70, 0x0A);
        g.In(0x71);
        a.test(al, 0x80);
        a.jnz(uip);
        g.Out(0x70, 0x0B);
        g.In(0x71);
        a.mov(__byte_ptr[regB], al);

        for (int i = 0; i < registers.Length; i++)
        {
            Label binary = a.CreateLabel();
            bool hours = registers[i] == 0x04;
            g.Out(0x70, registers[i]);
            g.In(0x71);
            a.xor(ch, ch);
            if (hours)
            {
                // 12-hour mode (register B bit 1 clear): bit 7 is PM.
                Label h24 = a.CreateLabel();
                a.test(__byte_ptr[regB], 0x02);
                a.jnz(h24);
                a.mov(ch, al);
                a.and(ch, 0x80);
                a.and(al, 0x7F);
                a.Label(ref h24);
            }

            // BCD unless register B bit 2 (DM) is set.
            a.test(__byte_ptr[regB], 0x04);
            a.jnz(binary);
            a.mov(cl, al);
            a.and(cl, 0x0F);
            a.shr(al, 4);
            a.mov(bl, 10);
            a.mul(bl);
            a.add(al, cl);
            a.Label(ref binary);
            if (hours)
            {
                // 12 AM is 0, 12 PM is 12, other PM hours add 12.
                Label pm = a.CreateLabel(), hourDone = a.CreateLabel();
                a.test(ch, ch);
                a.jnz(pm);
                a.cmp(al, 12);
                a.jne(hourDone);
                a.xor(al, al);
                a.jmp(hourDone);
                a.Label(ref pm);
                a.cmp(al, 12);
                a.je(hourDone);
                a.add(al, 12);
                a.Label(ref hourDone);
            }

            a.mov(__byte_ptr[values + (uint)i], al);
        }

        string[] separators = ["RTC ", "-", "-", " ", ":", ":"];
        for (int i = 0; i < registers.Length; i++)
        {
            g.Print(separators[i]);
            a.mov(al, __byte_ptr[values + (uint)i]);
            g.PrintTwoDigitsAl();
        }

        g.Print("\r\n");
        g.Exit(RtcExitValue);
    });

    public const byte EchoExitValue = 0x31;
    public const string EchoReady = "echo guest ready\r\n";

    /// <summary>
    /// Enables COM1's received-data interrupt (IER bit 0, MCR OUT2) and IRQ 4 at the PIC (vector 0x24), prints
    /// <see cref="EchoReady"/> and halts; its handler echoes every received byte and, after a '\n', the guest exits.
    /// </summary>
    public static byte[] Echo() => PcGuest.Build(GuestMode.Real, g =>
    {
        Assembler a = g.A;
        Label handler = a.CreateLabel(), loop = a.CreateLabel(), done = a.CreateLabel();
        Label next = a.CreateLabel(), drained = a.CreateLabel();
        const uint flag = PcGuest.Variables + 2;
        a.mov(__byte_ptr[flag], 0);
        g.SetVector(0x24, handler);
        g.ProgramPic(0xEF, 0xFF);
        g.Out(PcGuest.Com1 + 1, 0x01); // IER: received data available
        g.Out(PcGuest.Com1 + 4, 0x0B); // MCR: DTR, RTS, OUT2 (the interrupt line's enable on a PC)
        g.Print(EchoReady);
        a.Label(ref loop);
        a.cli();
        a.cmp(__byte_ptr[flag], 0);
        a.jne(done);
        a.sti();
        a.hlt();
        a.jmp(loop);
        a.Label(ref done);
        g.Exit(EchoExitValue);

        // IRQ 4: echo bytes while LSR.DR is set; '\n' sets the flag; then a non-specific EOI.
        g.Mark(ref handler);
        a.push(ds);
        a.push(ax);
        a.push(bx);
        a.push(dx);
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.Label(ref next);
        a.mov(dx, PcGuest.Com1 + 5);
        a.@in(al, dx);
        a.test(al, 0x01);
        a.jz(drained);
        a.mov(dx, PcGuest.Com1);
        a.@in(al, dx);
        a.mov(bl, al);
        g.PutCharAl();
        a.cmp(bl, (byte)'\n');
        a.jne(next);
        a.mov(__byte_ptr[flag], 1);
        a.jmp(next);
        a.Label(ref drained);
        a.mov(al, 0x20);
        a.@out(0x20, al);
        a.pop(dx);
        a.pop(bx);
        a.pop(ax);
        a.pop(ds);
        g.Iret();
    });

    public const byte HostileExitValue = 0x42;

    /// <summary>First port of the unclaimed range the hostile guest hammers (nothing sits at 0x300-0x30F on either PC).</summary>
    public const ushort HostileFirstPort = 0x300;

    public const int HostilePortCount = 16;
    public const int HostileRounds = 100;

    /// <summary>IN of byte, word and dword per port and round.</summary>
    public const int HostileReadsPerPortRound = 3;

    /// <summary>OUT of byte, word and dword per port and round.</summary>
    public const int HostileWritesPerPortRound = 3;

    public const int HostileBurst = 200;
    public const int HostilePicGarbageRounds = 1024;
    public const string HostileReadsPrefix = "unclaimed reads ANDed: ";
    public const string HostileAllOnes = HostileReadsPrefix + "255 255 255 255\r\n";
    public const string HostileBurstStart = "burst:[";
    public const string HostileBurstEnd = "]\r\n";
    public const string HostileDone = "hostile guest done\r\n";

    /// <summary>
    /// With interrupts off: IN/OUT of every size on 0x300-0x30F for <see cref="HostileRounds"/> rounds (printing the AND of
    /// all it read), fills COM1's transmitter without waiting for THRE (in loopback, so the
    /// receiver overruns too, and then <see cref="HostileBurst"/> '.' on the line), writes truncated and random
    /// ICW/OCW sequences to both PICs, and exits.
    /// </summary>
    public static byte[] Hostile() => PcGuest.Build(GuestMode.Real, g =>
    {
        Assembler a = g.A;
        Label round = a.CreateLabel(), port = a.CreateLabel();
        Label loopback = a.CreateLabel(), drain = a.CreateLabel(), drained = a.CreateLabel(), burst = a.CreateLabel();
        Label garbage = a.CreateLabel();

        a.mov(ebx, unchecked((int)0xFFFF_FFFF));
        a.mov(si, HostileRounds);
        a.Label(ref round);
        a.mov(dx, HostileFirstPort);
        a.Label(ref port);
        a.@in(al, dx);
        a.and(bl, al);
        a.@in(ax, dx);
        a.and(bx, ax);
        a.@in(eax, dx);
        a.and(ebx, eax);
        a.@out(dx, al);
        a.@out(dx, ax);
        a.@out(dx, eax);
        a.inc(dx);
        a.cmp(dx, HostileFirstPort + HostilePortCount);
        a.jb(port);
        a.dec(si);
        a.jnz(round);
        // The AND of everything read, byte by byte from the lowest (a PC bus floats high: 255 255 255 255).
        a.mov(__dword_ptr[PcGuest.Variables], ebx);
        g.Print(HostileReadsPrefix);
        for (int k = 0; k < 4; k++)
        {
            a.mov(al, __byte_ptr[PcGuest.Variables + (uint)k]);
            g.PrintDecimalAl();
            g.Print(k < 3 ? " " : "\r\n");
        }

        // Loopback: 64 bytes into THR without looking at LSR (TX and RX FIFOs are 16 deep), then drain the receiver.
        g.Out(PcGuest.Com1 + 4, 0x13);
        a.mov(cx, 64);
        a.mov(dx, PcGuest.Com1);
        a.mov(al, (byte)'L');
        a.Label(ref loopback);
        a.@out(dx, al);
        a.loop(loopback);
        a.mov(cx, 256);
        a.Label(ref drain);
        a.mov(dx, PcGuest.Com1 + 5);
        a.@in(al, dx);
        a.test(al, 0x01);
        a.jz(drained);
        a.mov(dx, PcGuest.Com1);
        a.@in(al, dx);
        a.loop(drain);
        a.Label(ref drained);
        g.Out(PcGuest.Com1 + 4, 0x03);

        // On the line: a burst without waiting for THRE (a UART may drop what overruns its FIFO).
        g.Print(HostileBurstStart);
        a.mov(cx, HostileBurst);
        a.mov(dx, PcGuest.Com1);
        a.mov(al, (byte)'.');
        a.Label(ref burst);
        a.@out(dx, al);
        a.loop(burst);
        g.Print(HostileBurstEnd);

        // PIC: ICW1 then nothing more, ICW1 + ICW2 only, a level-triggered single-PIC ICW1, OCW3 poll, then
        // pseudo-random bytes (x = 5x + 1 mod 256) to all four ports.
        g.Out(0x20, 0x11);
        g.Out(0xA0, 0x11);
        g.Out(0xA1, 0xFF);
        g.Out(0x20, 0x1B);
        g.Out(0x21, 0x07);
        g.Out(0x21, 0xFF);
        g.Out(0x20, 0x0C);
        g.Out(0xA0, 0x6B);
        a.mov(cx, HostilePicGarbageRounds);
        a.mov(bl, 0x5A);
        a.Label(ref garbage);
        foreach (byte p in new byte[] { 0x20, 0x21, 0xA0, 0xA1 })
        {
            a.mov(al, bl);
            a.shl(al, 2);
            a.add(bl, al);
            a.inc(bl);
            a.mov(al, bl);
            a.@out(p, al);
        }

        a.loop(garbage);
        g.Print(HostileDone);
        g.Exit(HostileExitValue);
    });
}
