using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Tests.Guests;

/// <summary>
/// A real-mode guest (CR0.NE clear, as after reset) that takes unmasked x87 divide-by-zero exceptions the PC/AT way:
/// FWAIT signals FERR#, the board raises IRQ 13, the handler acknowledges through port 0xF0 and clears the exception
/// with FNCLEX (SDM Vol. 1, Appendix D). It prints the IRQ 13 count after each round and the status word the handler
/// saw, so a missing, doubled or early interrupt shows in the output.
/// </summary>
internal static class FerrGuest
{
    public const byte ExitValue = 0x2D;
    public const int Rounds = 3;

    private const uint Count = PcGuest.Variables;
    private const uint ControlWord = PcGuest.Variables + 2;
    private const uint StatusSeen = PcGuest.Variables + 4;

    /// <summary>
    /// What the guest prints when each FWAIT with a pending exception raises IRQ 13 exactly once: FSW low byte
    /// 0x84 = ES (bit 7) | ZE (bit 2), the divide-by-zero flag (SDM Vol. 1, 8.1.3).
    /// </summary>
    public static string ExpectedOutput()
    {
        var text = new System.Text.StringBuilder();
        for (int round = 1; round <= Rounds; round++)
        {
            text.Append($"round {round}: irq13 x{round}, fsw {0x84}\r\n");
        }

        return text.Append("masked: irq13 x3\r\n").ToString();
    }

    public static byte[] Build() => PcGuest.Build(GuestMode.Real, g =>
    {
        Assembler a = g.A;
        Label handler = a.CreateLabel();
        a.mov(__word_ptr[Count], 0);
        g.SetVector(0x28 + 5, handler);
        g.ProgramPic(0xFB, 0xDF); // master: cascade (IRQ 2) only; slave: IRQ 13 only
        a.fninit();
        a.mov(__word_ptr[ControlWord], 0x037B); // the reset control word with ZM (bit 2) unmasked
        a.fldcw(__word_ptr[ControlWord]);
        for (int round = 1; round <= Rounds; round++)
        {
            a.mov(__word_ptr[StatusSeen], 0);
            a.fld1();
            a.fldz();
            a.fdivp(st1, st0); // 1 / 0 with ZE unmasked: the exception is pending (ES), nothing is delivered yet
            a.sti();
            a.wait(); // FERR# -> IRQ 13, taken at the next instruction boundary
            a.nop();
            a.nop();
            a.cli();
            a.fstp(st0);
            g.Print($"round {round}: irq13 x");
            a.mov(al, __byte_ptr[Count]);
            g.PrintDecimalAl();
            g.Print(", fsw ");
            a.mov(al, __byte_ptr[StatusSeen]);
            g.PrintDecimalAl();
            g.Print("\r\n");
        }

        // Masked: the same division sets ZE without ES, so FWAIT signals nothing.
        a.mov(__word_ptr[ControlWord], 0x037F);
        a.fldcw(__word_ptr[ControlWord]);
        a.fld1();
        a.fldz();
        a.fdivp(st1, st0);
        a.sti();
        a.wait();
        a.nop();
        a.nop();
        a.cli();
        g.Print("masked: irq13 x");
        a.mov(al, __byte_ptr[Count]);
        g.PrintDecimalAl();
        g.Print("\r\n");
        g.Exit(ExitValue);

        g.Mark(ref handler);
        a.push(ds);
        a.push(ax);
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.@out(0xF0, al); // acknowledge: the board drops IRQ 13
        a.fnstsw(__word_ptr[StatusSeen]);
        a.fnclex();
        a.inc(__word_ptr[Count]);
        a.mov(al, 0x20);
        a.@out(0xA0, al);
        a.@out(0x20, al);
        a.pop(ax);
        a.pop(ds);
        g.Iret();
    });
}
