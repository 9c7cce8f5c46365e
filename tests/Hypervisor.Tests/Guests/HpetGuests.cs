using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Tests.Guests;

/// <summary>
/// A 64-bit firmware guest that programs the HPET at 0xFED00000 the way an operating system does, with the 8259 pair
/// masked and every interrupt taken through the I/O APIC: it prints the capability registers, checks that the counter
/// halts and runs with ENABLE_CNF, runs timer 0 periodic in legacy replacement (on IRQ 0, I/O APIC pin 2) while the
/// 8254 runs at 10 kHz (it must not get through), timer 1 one-shot in legacy replacement (IRQ 8), and timer 2 as a
/// level-triggered 32-bit one-shot on its own route, clearing its status bit in the handler. Everything it prints is
/// architectural (no timing), so QEMU's <c>pc</c> machine, which has the same HPET, prints the same.
/// </summary>
internal static class HpetGuests
{
    /// <summary>The debug-exit value of the guest.</summary>
    public const byte ExitValue = 0x33;

    /// <summary>Periodic interrupts counted in legacy replacement.</summary>
    public const int Ticks = 20;

    /// <summary>Level-triggered one-shots.</summary>
    public const int OneShots = 3;

    /// <summary>The periodic timer's period: 1 ms at 100 MHz.</summary>
    public const int PeriodTicks = 100_000;

    /// <summary>What the guest prints when the HPET behaves as the IA-PC HPET specification says.</summary>
    /// <remarks>
    /// GCAP_ID 0x8086A201 with period 10,000,000 fs (0x00989680): vendor 0x80 0x86, revision 1, NUM_TIM_CAP 2, a
    /// 64-bit counter, legacy-replacement capable. Each timer's configuration reads 0x30 (periodic- and 64-bit-capable)
    /// with Tn_INT_ROUTE_CAP 0x00000004 (I/O APIC input 2 only). "ok 1" lines are comparisons the guest makes itself.
    /// </remarks>
    public static string ExpectedOutput =>
        "HPET vendor 128 134 rev 1 timers 3 size 1 legacy 1 period 0 152 150 128\r\n" +
        "T0 cfg 48 route 0 0 0 4\r\nT1 cfg 48 route 0 0 0 4\r\nT2 cfg 48 route 0 0 0 4\r\n" +
        "halted 1 running 1 route 2\r\n" +
        $"legacy periodic: {Ticks} no PIT 1 comparator 1\r\n" +
        "legacy one-shot: 1\r\n" +
        $"level one-shots: {OneShots} status 0\r\n";

    private const uint PeriodicCount = PcGuest.Variables;
    private const uint OneShotCount = PcGuest.Variables + 4;
    private const uint LevelCount = PcGuest.Variables + 8;
    private const ulong LapicBase = 0xFEE0_0000;
    private const ulong IoApicBase = 0xFEC0_0000;
    private const ulong HpetBase = 0xFED0_0000;

    public static byte[] Build() => PcGuest.Build(GuestMode.Long, g =>
    {
        Assembler a = g.A;
        Label periodic = a.CreateLabel(), oneShot = a.CreateLabel(), level = a.CreateLabel(), spurious = a.CreateLabel();

        PcGuest.MapHighMmioPages(a);
        a.mov(r13, HpetBase);
        a.mov(r14, LapicBase);
        a.mov(r15, IoApicBase);
        foreach (uint v in new[] { PeriodicCount, OneShotCount, LevelCount })
        {
            a.mov(__dword_ptr[v], 0);
        }

        g.SetVector(0x50, periodic);
        g.SetVector(0x51, oneShot);
        g.SetVector(0x52, level);
        g.SetVector(0xFF, spurious);
        g.LoadIdt();
        g.ProgramPic(0xFF, 0xFF);
        a.mov(__dword_ptr[r14 + 0xF0], 0x1FF); // local APIC software-enabled, spurious vector 0xFF

        // GCAP_ID, read as one 64-bit access.
        a.mov(r8, __qword_ptr[r13]);
        g.Print("HPET vendor ");
        PrintByte(g, r8, 24);
        g.Print(" ");
        PrintByte(g, r8, 16);
        g.Print(" rev ");
        PrintByte(g, r8, 0);
        g.Print(" timers ");
        a.mov(rax, r8);
        a.shr(eax, 8);
        a.and(eax, 0x1F);
        a.inc(eax);
        g.PrintDecimalAl();
        g.Print(" size ");
        PrintBit(g, r8, 13);
        g.Print(" legacy ");
        PrintBit(g, r8, 15);
        g.Print(" period ");
        PrintByte(g, r8, 56);
        g.Print(" ");
        PrintByte(g, r8, 48);
        g.Print(" ");
        PrintByte(g, r8, 40);
        g.Print(" ");
        PrintByte(g, r8, 32);
        g.Print("\r\n");

        // Each timer's configuration and route capability, read as two 32-bit accesses.
        for (int n = 0; n < 3; n++)
        {
            a.mov(r8d, __dword_ptr[r13 + 0x100 + (0x20 * n)]);
            a.mov(r9d, __dword_ptr[r13 + 0x104 + (0x20 * n)]);
            g.Print($"T{n} cfg ");
            PrintByte(g, r8, 0);
            g.Print(" route ");
            PrintByte(g, r9, 24);
            g.Print(" ");
            PrintByte(g, r9, 16);
            g.Print(" ");
            PrintByte(g, r9, 8);
            g.Print(" ");
            PrintByte(g, r9, 0);
            g.Print("\r\n");
        }

        // Halted: two reads of the counter agree; running: a later read is larger.
        a.mov(__qword_ptr[r13 + 0x10], 0);
        a.mov(__qword_ptr[r13 + 0xF0], 0);
        a.mov(r8, __qword_ptr[r13 + 0xF0]);
        Delay(a);
        a.mov(r9, __qword_ptr[r13 + 0xF0]);
        g.Print("halted ");
        a.cmp(r8, r9);
        a.sete(al);
        g.PrintDecimalAl();
        a.mov(__qword_ptr[r13 + 0x10], 1);
        a.mov(r8, __qword_ptr[r13 + 0xF0]);
        Delay(a);
        a.mov(r9, __qword_ptr[r13 + 0xF0]);
        a.mov(__qword_ptr[r13 + 0x10], 0);
        g.Print(" running ");
        a.cmp(r9, r8);
        a.seta(al);
        g.PrintDecimalAl();

        // Route 2 is in Tn_INT_ROUTE_CAP and is taken.
        a.mov(__dword_ptr[r13 + 0x140], 2 << 9);
        a.mov(r8d, __dword_ptr[r13 + 0x140]);
        g.Print(" route ");
        a.mov(rax, r8);
        a.shr(eax, 9);
        a.and(eax, 0x1F);
        g.PrintDecimalAl();
        a.mov(__dword_ptr[r13 + 0x140], 0);
        g.Print("\r\n");

        // Legacy replacement: timer 0 periodic (edge, 1 ms) on I/O APIC pin 2, while the 8254 runs at 10 kHz on the
        // same pin. If its ticks got through, 20 interrupts would take 2 ms of counter, not 20.
        // LEG_RT_CNF goes on before the 8254 is sped up and pin 2 unmasked, so that no 8254 edge can be latched.
        a.mov(__qword_ptr[r13 + 0xF0], 0);
        a.mov(__qword_ptr[r13 + 0x10], 2); // LEG_RT_CNF, still halted
        g.ProgramPitChannel0(119);
        RouteIoApicPin(a, 2, 0x50, levelTriggered: false);
        RouteIoApicPin(a, 8, 0x51, levelTriggered: false);
        // The 64-bit comparator as two 32-bit writes, each after Tn_VAL_SET (which clears itself after a write), the
        // sequence Intel's data sheets give for software that cannot write it at once. (QEMU splits a 64-bit access
        // into two 32-bit ones, so a single 64-bit write with one Tn_VAL_SET would set only its low half there.)
        a.mov(__dword_ptr[r13 + 0x100], 0x4C); // Tn_INT_ENB | Tn_TYPE periodic | Tn_VAL_SET
        a.mov(__dword_ptr[r13 + 0x108], PeriodTicks);
        a.mov(__dword_ptr[r13 + 0x100], 0x4C);
        a.mov(__dword_ptr[r13 + 0x10C], 0);
        a.mov(__qword_ptr[r13 + 0x10], 3); // ENABLE_CNF | LEG_RT_CNF
        PcGuest.WaitForCount(a, PeriodicCount, Ticks);
        a.mov(__qword_ptr[r13 + 0x100], 0);
        a.mov(r8, __qword_ptr[r13 + 0xF0]);
        a.mov(r9, __qword_ptr[r13 + 0x108]);
        g.Print("legacy periodic: ");
        a.mov(al, __byte_ptr[PeriodicCount]);
        g.PrintDecimalAl();
        g.Print(" no PIT ");
        a.mov(rax, Ticks * PeriodTicks);
        a.cmp(r8, rax);
        a.setae(al);
        g.PrintDecimalAl();

        // The comparator holds the next match: a whole number of periods, at least the 21st (it grew at each match).
        g.Print(" comparator ");
        a.mov(rax, r9);
        a.xor(edx, edx);
        a.mov(ecx, PeriodTicks);
        a.div(rcx);
        a.test(rdx, rdx);
        a.setz(cl);
        a.cmp(rax, Ticks + 1);
        a.setae(al);
        a.and(al, cl);
        g.PrintDecimalAl();
        g.Print("\r\n");

        // Legacy replacement: timer 1 one-shot (edge, 64-bit, 0.5 ms ahead) on IRQ 8. The one-shots are armed with the
        // counter halted: a comparator computed from a running counter can already be behind it when it is written (a
        // host that stalls the guest for a few ms between the read and the write), and a 64-bit one-shot that has been
        // passed never fires, on hardware as here.
        a.mov(__qword_ptr[r13 + 0x10], 2); // LEG_RT_CNF, halted
        a.mov(rax, __qword_ptr[r13 + 0xF0]);
        a.add(rax, PeriodTicks / 2);
        a.mov(__qword_ptr[r13 + 0x128], rax);
        a.mov(__qword_ptr[r13 + 0x120], 0x4); // Tn_INT_ENB
        a.mov(__qword_ptr[r13 + 0x10], 3); // ENABLE_CNF | LEG_RT_CNF
        PcGuest.WaitForCount(a, OneShotCount, 1);
        a.mov(__qword_ptr[r13 + 0x120], 0);
        g.Print("legacy one-shot: ");
        a.mov(al, __byte_ptr[OneShotCount]);
        g.PrintDecimalAl();
        g.Print("\r\n");

        // Timer 2: level-triggered 32-bit one-shots on route 2 without legacy replacement. The 8254's output is held
        // low first (mode 0 with no count written), as pin 2 is shared with IRQ 0.
        g.Out(0x43, 0x30);
        a.mov(__qword_ptr[r13 + 0x10], 1); // ENABLE_CNF only
        RouteIoApicPin(a, 2, 0x52, levelTriggered: true);
        a.mov(__dword_ptr[r13 + 0x140], 0x506); // Tn_INT_TYPE level | Tn_INT_ENB | Tn_32MODE | route 2
        for (int i = 1; i <= OneShots; i++)
        {
            a.mov(__qword_ptr[r13 + 0x10], 0); // halted while the comparator is set (see the legacy one-shot)
            a.mov(eax, __dword_ptr[r13 + 0xF0]);
            a.add(eax, PeriodTicks / 2);
            a.mov(__dword_ptr[r13 + 0x148], eax);
            a.mov(__qword_ptr[r13 + 0x10], 1); // ENABLE_CNF
            PcGuest.WaitForCount(a, LevelCount, i);
        }

        a.mov(__dword_ptr[r13 + 0x140], 0);
        g.Print("level one-shots: ");
        a.mov(al, __byte_ptr[LevelCount]);
        g.PrintDecimalAl();
        g.Print(" status ");
        a.mov(eax, __dword_ptr[r13 + 0x20]);
        g.PrintDecimalAl();
        g.Print("\r\n");
        a.mov(__qword_ptr[r13 + 0x10], 0);
        g.Exit(ExitValue);

        Handler(g, ref periodic, PeriodicCount, clearStatus: 0);
        Handler(g, ref oneShot, OneShotCount, clearStatus: 0);
        Handler(g, ref level, LevelCount, clearStatus: 1 << 2);
        g.Mark(ref spurious);
        g.Iret();
    });

    private static void PrintByte(PcGuest g, AssemblerRegister64 source, int shift)
    {
        g.A.mov(rax, source);
        g.A.shr(rax, (byte)shift);
        g.PrintDecimalAl();
    }

    private static void PrintBit(PcGuest g, AssemblerRegister64 source, int bit)
    {
        g.A.mov(rax, source);
        g.A.shr(rax, (byte)bit);
        g.A.and(eax, 1);
        g.PrintDecimalAl();
    }

    /// <summary>A short busy loop (long enough for a 100 MHz counter to move on any host).</summary>
    private static void Delay(Assembler a)
    {
        Label loop = a.CreateLabel();
        a.mov(ecx, 100_000);
        a.Label(ref loop);
        a.pause();
        a.dec(ecx);
        a.jnz(loop);
    }

    /// <summary>Redirection entry of I/O APIC <paramref name="pin"/>: fixed, physical destination 0, unmasked.</summary>
    private static void RouteIoApicPin(Assembler a, int pin, int vector, bool levelTriggered)
    {
        a.mov(__dword_ptr[r15], 0x11 + (2 * pin));
        a.mov(__dword_ptr[r15 + 0x10], 0);
        a.mov(__dword_ptr[r15], 0x10 + (2 * pin));
        a.mov(__dword_ptr[r15 + 0x10], vector | (levelTriggered ? 1 << 15 : 0));
    }



    /// <summary>
    /// Counts the interrupt; for a level-triggered timer first writes its bit to GINTR_STA (the line drops), then EOI
    /// (which, for a level-triggered I/O APIC pin, clears remote IRR). Returns with IF clear, so WaitForCount compares first.
    /// </summary>
    private static void Handler(PcGuest g, ref Label label, uint counter, int clearStatus)
    {
        Assembler a = g.A;
        g.Mark(ref label);
        a.push(rax);
        a.inc(__dword_ptr[counter]);
        if (clearStatus != 0)
        {
            a.mov(rax, HpetBase + 0x20);
            a.mov(__dword_ptr[rax], clearStatus);
        }

        a.mov(rax, LapicBase + 0xB0);
        a.mov(__dword_ptr[rax], 0);
        a.pop(rax);
        a.and(__qword_ptr[rsp + 16], ~0x200);
        g.Iret();
    }
}
