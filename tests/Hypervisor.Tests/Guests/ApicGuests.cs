using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Tests.Guests;

/// <summary>
/// A 64-bit firmware guest that uses the local APIC and the I/O APIC the way an operating system does, with the 8259
/// pair fully masked: it prints the APIC identification, runs the local APIC timer periodic and one-shot, blocks a
/// self-IPI with CR8 and releases it, and takes the PIT's IRQ 0 through I/O APIC pin 2. Everything it prints is
/// architectural (no timing), so QEMU's <c>pc</c> machine prints the same.
/// </summary>
internal static class ApicGuests
{
    /// <summary>The debug-exit value of the guest.</summary>
    public const byte ExitValue = 0x31;

    /// <summary>Interrupts counted in the periodic-timer and PIT phases.</summary>
    public const int Ticks = 20;

    /// <summary>One-shot timer runs.</summary>
    public const int OneShots = 3;

    /// <summary>What the guest prints when the APIC pair behaves as the SDM and the 82093AA data sheet say.</summary>
    /// <remarks>
    /// Version 0x50014 reads as version 20 with max LVT 5; the I/O APIC's 0x170020 as version 32 with max entry 23;
    /// CPUID.1:EDX[9] = 1 and the initial APIC ID 0; IA32_APIC_BASE = 0xFEE00900 (bits 15:8 = 9: enabled, BSP; bits
    /// 31:24 = 254); with CR8 = 5 a self-IPI with vector 0x52 (class 5) waits in IRR (bit 18 of IRR word 2) and TPR reads
    /// 0x50 = 80; with CR8 = 0 it is delivered once.
    /// </remarks>
    public static string ExpectedOutput =>
        "APIC version 20 max LVT 5 IOAPIC version 32 max entry 23 id 0 cpuid 1 0 base 9 254\r\n" +
        $"LAPIC periodic: {Ticks}\r\n" +
        $"LAPIC one-shot: {OneShots} count 0\r\n" +
        "CR8 5: IRR 1 TPR 80 taken 0; CR8 0: taken 1\r\n" +
        $"IOAPIC PIT: {Ticks}\r\n" +
        $"one-shot total {OneShots}\r\n";

    private const uint PeriodicCount = PcGuest.Variables;
    private const uint OneShotCount = PcGuest.Variables + 4;
    private const uint PitCount = PcGuest.Variables + 8;
    private const uint IpiCount = PcGuest.Variables + 12;
    private const uint CountOr = PcGuest.Variables + 16;
    internal const ulong LapicBase = 0xFEE0_0000;
    private const ulong IoApicBase = 0xFEC0_0000;

    /// <summary>The timer count for 1 ms at the 1 GHz bus clock divided by 16 (both QEMU's and ours).</summary>
    private const int OneMillisecond = 62_500;

    public static byte[] Build() => PcGuest.Build(GuestMode.Long, g =>
    {
        Assembler a = g.A;
        Label periodic = a.CreateLabel(), oneShot = a.CreateLabel(), pit = a.CreateLabel(), ipi = a.CreateLabel(),
            spurious = a.CreateLabel();

        // Map 0xFEC00000-0xFEFFFFFF uncached (two 2 MiB pages: I/O APIC and local APIC) through PDPT entry 3.
        PcGuest.MapHighMmioPages(a);
        a.mov(r14, LapicBase);
        a.mov(r15, IoApicBase);
        foreach (uint v in new[] { PeriodicCount, OneShotCount, PitCount, IpiCount, CountOr })
        {
            a.mov(__dword_ptr[v], 0);
        }

        g.SetVector(0x40, periodic);
        g.SetVector(0x41, oneShot);
        g.SetVector(0x50, pit);
        g.SetVector(0x52, ipi);
        g.SetVector(0xFF, spurious);
        g.LoadIdt();
        g.ProgramPic(0xFF, 0xFF); // the 8259 is fully masked: every interrupt below comes through the APICs

        g.Print("APIC version ");
        a.mov(eax, __dword_ptr[r14 + 0x30]);
        a.mov(ebp, eax);
        g.PrintDecimalAl();
        g.Print(" max LVT ");
        a.mov(eax, ebp);
        a.shr(eax, 16);
        g.PrintDecimalAl();
        g.Print(" IOAPIC version ");
        a.mov(__dword_ptr[r15], 1);
        a.mov(eax, __dword_ptr[r15 + 0x10]);
        a.mov(ebp, eax);
        g.PrintDecimalAl();
        g.Print(" max entry ");
        a.mov(eax, ebp);
        a.shr(eax, 16);
        g.PrintDecimalAl();
        g.Print(" id ");
        a.mov(eax, __dword_ptr[r14 + 0x20]);
        a.shr(eax, 24);
        g.PrintDecimalAl();
        g.Print(" cpuid ");
        a.mov(eax, 1);
        a.cpuid();
        a.mov(ebp, ebx);
        a.mov(eax, edx);
        a.shr(eax, 9);
        a.and(eax, 1);
        g.PrintDecimalAl();
        g.Print(" ");
        a.mov(eax, ebp);
        a.shr(eax, 24);
        g.PrintDecimalAl();
        g.Print(" base ");
        a.mov(ecx, 0x1B);
        a.rdmsr();
        a.mov(ebp, eax);
        a.shr(eax, 8);
        a.and(eax, 0xF);
        g.PrintDecimalAl();
        g.Print(" ");
        a.mov(eax, ebp);
        a.shr(eax, 24);
        g.PrintDecimalAl();
        g.Print("\r\n");

        a.mov(__dword_ptr[r14 + 0xF0], 0x1FF); // software-enable, spurious vector 0xFF
        a.mov(__dword_ptr[r14 + 0x3E0], 0x3); // divide by 16

        // Periodic timer.
        a.mov(__dword_ptr[r14 + 0x320], 0x2_0040);
        a.mov(__dword_ptr[r14 + 0x380], OneMillisecond);
        PcGuest.WaitForCount(a, PeriodicCount, Ticks);
        a.mov(__dword_ptr[r14 + 0x320], 0x1_0040);
        a.mov(__dword_ptr[r14 + 0x380], 0);
        g.Print("LAPIC periodic: ");
        a.mov(al, __byte_ptr[PeriodicCount]);
        g.PrintDecimalAl();
        g.Print("\r\n");

        // One-shot timer, armed three times; after each interrupt the current count must read 0.
        for (int i = 1; i <= OneShots; i++)
        {
            a.mov(__dword_ptr[r14 + 0x320], 0x41);
            a.mov(__dword_ptr[r14 + 0x380], OneMillisecond);
            PcGuest.WaitForCount(a, OneShotCount, i);
            a.mov(eax, __dword_ptr[r14 + 0x390]);
            a.or(__dword_ptr[CountOr], eax);
        }

        g.Print("LAPIC one-shot: ");
        a.mov(al, __byte_ptr[OneShotCount]);
        g.PrintDecimalAl();
        g.Print(" count ");
        a.mov(al, __byte_ptr[CountOr]);
        g.PrintDecimalAl();
        g.Print("\r\n");

        // CR8 = 5 blocks vector 0x52 (class 5); a self-IPI waits in IRR until CR8 drops.
        a.mov(eax, 5);
        a.mov(cr8, rax);
        a.mov(__dword_ptr[r14 + 0x310], 0);
        a.mov(__dword_ptr[r14 + 0x300], (1 << 18) | 0x52);
        a.sti();
        a.nop();
        a.nop();
        a.cli();
        g.Print("CR8 5: IRR ");
        a.mov(eax, __dword_ptr[r14 + 0x220]);
        a.shr(eax, 18);
        a.and(eax, 1);
        g.PrintDecimalAl();
        g.Print(" TPR ");
        a.mov(eax, __dword_ptr[r14 + 0x80]);
        g.PrintDecimalAl();
        g.Print(" taken ");
        a.mov(al, __byte_ptr[IpiCount]);
        g.PrintDecimalAl();
        a.xor(eax, eax);
        a.mov(cr8, rax);
        a.sti();
        a.nop();
        a.nop();
        a.cli();
        g.Print("; CR8 0: taken ");
        a.mov(al, __byte_ptr[IpiCount]);
        g.PrintDecimalAl();
        g.Print("\r\n");

        // The PIT through I/O APIC pin 2 (ISA IRQ 0's pin on a PC): fixed, physical destination 0, edge, unmasked.
        a.mov(__dword_ptr[r15], 0x15);
        a.mov(__dword_ptr[r15 + 0x10], 0);
        a.mov(__dword_ptr[r15], 0x14);
        a.mov(__dword_ptr[r15 + 0x10], 0x50);
        g.ProgramPitChannel0(DeviceGuests.OneKilohertzDivisor);
        PcGuest.WaitForCount(a, PitCount, Ticks);
        a.mov(__dword_ptr[r15], 0x14);
        a.mov(__dword_ptr[r15 + 0x10], 0x1_0050);
        g.Print("IOAPIC PIT: ");
        a.mov(al, __byte_ptr[PitCount]);
        g.PrintDecimalAl();
        g.Print("\r\none-shot total ");
        a.mov(al, __byte_ptr[OneShotCount]);
        g.PrintDecimalAl();
        g.Print("\r\n");
        g.Exit(ExitValue);

        Handler(g, ref periodic, PeriodicCount, eoi: true);
        Handler(g, ref oneShot, OneShotCount, eoi: true);
        Handler(g, ref pit, PitCount, eoi: true);
        Handler(g, ref ipi, IpiCount, eoi: true);
        g.Mark(ref spurious);
        g.Iret(); // SDM 11.9: a spurious interrupt is not in service, so no EOI
    });

    /// <summary>The debug-exit value of the start-up guest.</summary>
    public const byte StartupExitValue = 0x32;

    /// <summary>What the start-up guest prints when vCPU 1 starts from INIT/SIPI.</summary>
    /// <remarks>The AP reports CPUID.1:EBX[31:24], its initial APIC ID (1), and the CS it started with (0x0900, printed
    /// as high byte 9 and low byte 0, for start-up vector 9: SDM Vol. 3A, 9.4.4.1).</remarks>
    public const string StartupExpectedOutput = "BSP id 0; AP started: id 1 cs 9 0\r\n";

    private const uint ApMarker = 0x600;
    private const uint Trampoline = 0x9000;

    /// <summary>
    /// A two-vCPU guest: the bootstrap processor copies a real-mode trampoline to 0x9000 and starts vCPU 1 with INIT
    /// and a start-up IPI (vector 9) through the ICR, then waits (bounded by the local APIC timer) for the AP to report.
    /// </summary>
    public static byte[] BuildStartup() => PcGuest.Build(GuestMode.Long, g =>
    {
        Assembler a = g.A;
        Label code = a.CreateLabel(), wait = a.CreateLabel(), started = a.CreateLabel(), sipi = a.CreateLabel();
        byte[] trampoline = ApTrampoline();
        PcGuest.MapHighMmioPages(a);
        a.mov(r14, LapicBase);
        a.mov(__dword_ptr[ApMarker], 0);
        a.mov(__dword_ptr[ApMarker + 4], 0);

        // Copy the trampoline to 0x9000.
        g.LoadAddressSi(code);
        a.mov(edi, Trampoline);
        a.mov(ecx, trampoline.Length);
        a.rep.movsb();

        a.mov(__dword_ptr[r14 + 0xF0], 0x1FF);
        a.mov(__dword_ptr[r14 + 0x3E0], 0xB); // divide by 1: the timer bounds the waits below
        a.mov(__dword_ptr[r14 + 0x320], 0x1_0000);
        a.mov(__dword_ptr[r14 + 0x310], 1 << 24);
        a.mov(__dword_ptr[r14 + 0x300], 0x0000_4500); // INIT, level assert
        a.mov(__dword_ptr[r14 + 0x300], 0x0000_8500); // INIT, level de-assert
        a.mov(ebx, 2); // at most two start-up IPIs (SDM 9.4.4.1)
        a.Label(ref sipi);
        a.mov(__dword_ptr[r14 + 0x300], 0x0000_4600 | (int)(Trampoline >> 12));
        a.mov(__dword_ptr[r14 + 0x380], 1_000_000_000); // up to 1 s at 1 GHz (a loaded host may be slow to run the AP)
        a.Label(ref wait);
        a.cmp(__byte_ptr[ApMarker], 0); // the flag byte only: the AP stores its CS (bytes 2-3) and ID (byte 1) first
        a.jne(started);
        a.pause();
        a.cmp(__dword_ptr[r14 + 0x390], 0);
        a.jne(wait);
        a.dec(ebx);
        a.jnz(sipi);
        a.Label(ref started);
        g.Print("BSP id ");
        a.mov(eax, __dword_ptr[r14 + 0x20]);
        a.shr(eax, 24);
        g.PrintDecimalAl();
        g.Print("; AP started: id ");
        a.mov(al, __byte_ptr[ApMarker + 1]);
        g.PrintDecimalAl();
        g.Print(" cs ");
        a.mov(al, __byte_ptr[ApMarker + 3]);
        g.PrintDecimalAl();
        g.Print(" ");
        a.mov(al, __byte_ptr[ApMarker + 2]);
        g.PrintDecimalAl();
        g.Print("\r\n");
        g.Exit(StartupExitValue);

        g.Mark(ref code);
        a.db(trampoline);
    });

    /// <summary>
    /// The AP's real-mode code: stores its initial APIC ID and CS, sets the marker, then sleeps with interrupts on
    /// (nothing is routed to it), so it never stops the machine.
    /// </summary>
    private static byte[] ApTrampoline()
    {
        var a = new Assembler(16);
        Label sleep = a.CreateLabel();
        a.cli();
        a.mov(ax, cs);
        a.mov(dx, ax);
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.mov(__word_ptr[ApMarker + 2], dx);
        a.mov(eax, 1);
        a.cpuid();
        a.shr(ebx, 24);
        a.mov(__byte_ptr[ApMarker + 1], bl);
        a.mov(__byte_ptr[ApMarker], 1);
        a.Label(ref sleep);
        a.sti();
        a.hlt();
        a.jmp(sleep);
        using var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), Trampoline);
        return stream.ToArray();
    }



    private static void Handler(PcGuest g, ref Label label, uint counter, bool eoi)
    {
        Assembler a = g.A;
        g.Mark(ref label);
        a.push(rax);
        a.inc(__dword_ptr[counter]);
        if (eoi)
        {
            a.mov(rax, LapicBase + 0xB0);
            a.mov(__dword_ptr[rax], 0);
        }

        a.pop(rax);

        // Return with IF clear, so that WaitForCount's loop compares the counter before another interrupt can come in:
        // otherwise a second tick between IRETQ and CLI (a slow host makes that likely) would overshoot the count.
        a.and(__qword_ptr[rsp + 16], ~0x200);
        g.Iret();
    }
}
