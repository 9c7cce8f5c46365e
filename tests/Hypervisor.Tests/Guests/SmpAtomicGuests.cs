using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Tests.Guests;

/// <summary>
/// A two-vCPU guest in which both processors update shared memory at the same time, each in its own mode (the BSP in
/// 64-bit long mode, the AP in real mode with 32-bit operands), with every kind of locked read-modify-write: LOCK INC,
/// LOCK XADD, a LOCK CMPXCHG spin lock and an XCHG spin lock (each released by a plain MOV) guarding plain increments,
/// LOCK ADD on a dword that straddles an 8-byte boundary, a LOCK BTS/BTR bit lock, and a LOCK CMPXCHG8B increment loop.
/// Each processor does <see cref="Iterations"/> rounds; the BSP then waits for the AP and prints every counter.
/// </summary>
/// <remarks>
/// On hardware every counter ends at twice <see cref="Iterations"/> (the CMPXCHG8B one above its start), because a
/// locked instruction is indivisible (SDM Vol. 3A, 9.1.2.2). An emulator that reads, computes and writes a locked
/// operand in separate steps loses updates when the two vCPUs overlap, and a spin lock whose plain release is
/// overwritten by the other vCPU's failing CMPXCHG write-back never opens again.
/// </remarks>
internal static class SmpAtomicGuests
{
    /// <summary>Rounds of the work loop per processor.</summary>
    public const int Iterations = 50_000;

    /// <summary>The debug-exit value of the guest.</summary>
    public const byte ExitValue = 0x35;

    /// <summary>The start of the CMPXCHG8B counter: its low dword carries into the high one during the run.</summary>
    public const ulong WideStart = 0x0000_0001_FFFF_0000;

    private const uint IncCounter = 0x700;
    private const uint XaddCounter = 0x704;
    private const uint CmpxchgLock = 0x708;
    private const uint CmpxchgGuarded = 0x70C;
    private const uint XchgLock = 0x710;
    private const uint XchgGuarded = 0x714;
    private const uint SplitCounter = 0x71E; // bytes 0x71E-0x721: across the 8-byte boundary at 0x720
    private const uint BitLock = 0x728;
    private const uint BitGuarded = 0x72C;
    private const uint WideCounter = 0x730;
    private const uint ApDone = 0x740;
    private const uint Trampoline = 0x9000;

    /// <summary>The line the guest prints: every counter in hexadecimal, as hardware leaves them.</summary>
    public static string ExpectedOutput(int iterations = Iterations)
    {
        uint n = (uint)(2 * iterations);
        ulong wide = WideStart + n;
        return $"inc {n:X8} xadd {n:X8} cmpxchg {n:X8} xchg {n:X8} split {n:X8} bts {n:X8} cmpxchg8b {(uint)(wide >> 32):X8}{(uint)wide:X8}\r\n";
    }

    /// <summary>Builds the firmware image.</summary>
    /// <param name="haltAtEnd">Instead of printing and exiting, the BSP halts with interrupts off once the AP is done.</param>
    public static byte[] Build(bool haltAtEnd = false) => PcGuest.Build(GuestMode.Long, g =>
    {
        Assembler a = g.A;
        Label code = a.CreateLabel(), waitAp = a.CreateLabel(), printHex = a.CreateLabel(), hexDigit = a.CreateLabel(),
            hexLoop = a.CreateLabel();
        byte[] trampoline = ApCode();
        PcGuest.MapHighMmioPages(a);
        a.mov(r14, ApicGuests.LapicBase);

        // Zero the shared variables, set the wide counter, copy the AP's code to 0x9000.
        a.mov(edi, IncCounter);
        a.xor(eax, eax);
        a.mov(ecx, (int)((ApDone + 4 - IncCounter) / 4));
        a.rep.stosd();
        a.mov(__dword_ptr[WideCounter], unchecked((int)(uint)WideStart));
        a.mov(__dword_ptr[WideCounter + 4], (int)(uint)(WideStart >> 32));
        g.LoadAddressSi(code);
        a.mov(edi, Trampoline);
        a.mov(ecx, trampoline.Length);
        a.rep.movsb();

        // INIT, then one start-up IPI with vector 9 (the AP starts at 0900:0000).
        a.mov(__dword_ptr[r14 + 0xF0], 0x1FF);
        a.mov(__dword_ptr[r14 + 0x310], 1 << 24);
        a.mov(__dword_ptr[r14 + 0x300], 0x0000_4500);
        a.mov(__dword_ptr[r14 + 0x300], 0x0000_8500);
        a.mov(__dword_ptr[r14 + 0x300], 0x0000_4600 | (int)(Trampoline >> 12));

        EmitWork(a);

        a.Label(ref waitAp);
        a.pause();
        a.cmp(__dword_ptr[ApDone], 0);
        a.je(waitAp);
        if (haltAtEnd)
        {
            a.cli();
            a.hlt();
        }

        PrintCounter(g, "inc ", IncCounter, printHex);
        PrintCounter(g, " xadd ", XaddCounter, printHex);
        PrintCounter(g, " cmpxchg ", CmpxchgGuarded, printHex);
        PrintCounter(g, " xchg ", XchgGuarded, printHex);
        PrintCounter(g, " split ", SplitCounter, printHex);
        PrintCounter(g, " bts ", BitGuarded, printHex);
        PrintCounter(g, " cmpxchg8b ", WideCounter + 4, printHex);
        a.mov(ebp, __dword_ptr[WideCounter]);
        a.call(printHex);
        g.Print("\r\n");
        g.Exit(ExitValue);

        // printHex: EBP as eight hexadecimal digits (clobbers EAX, ECX, EDX).
        a.Label(ref printHex);
        a.mov(ecx, 8);
        a.Label(ref hexLoop);
        a.rol(ebp, 4);
        a.mov(eax, ebp);
        a.and(eax, 0xF);
        a.add(al, (byte)'0');
        a.cmp(al, (byte)'9');
        a.jbe(hexDigit);
        a.add(al, 7);
        a.Label(ref hexDigit);
        g.PutCharAl();
        a.dec(ecx);
        a.jnz(hexLoop);
        a.ret();

        g.Mark(ref code);
        a.db(trampoline);
    });

    private static void PrintCounter(PcGuest g, string label, uint address, Label printHex)
    {
        g.Print(label);
        g.A.mov(ebp, __dword_ptr[address]);
        g.A.call(printHex);
    }

    /// <summary>The AP's real-mode code: DS = 0, the same work loop, then the done flag and a halt loop with interrupts off.</summary>
    private static byte[] ApCode()
    {
        var a = new Assembler(16);
        Label sleep = a.CreateLabel();
        a.cli();
        a.xor(ax, ax);
        a.mov(ds, ax);
        EmitWork(a);
        a.mov(__dword_ptr[ApDone], 1);
        a.Label(ref sleep);
        a.hlt(); // with IF clear: the machine parks this vCPU and runs on (only all vCPUs halted so end the run)
        a.jmp(sleep);
        using var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), Trampoline);
        return stream.ToArray();
    }

    /// <summary>
    /// <see cref="Iterations"/> rounds of locked updates, with 32-bit registers only so that the same code is emitted
    /// for real mode and long mode (ESI counts the rounds).
    /// </summary>
    private static void EmitWork(Assembler a)
    {
        Label round = a.CreateLabel(), cmpxchgAcquire = a.CreateLabel(), xchgAcquire = a.CreateLabel(),
            bitAcquire = a.CreateLabel(), wideRetry = a.CreateLabel();
        a.mov(esi, Iterations);
        a.Label(ref round);

        a.@lock.inc(__dword_ptr[IncCounter]);

        a.mov(eax, 1);
        a.@lock.xadd(__dword_ptr[XaddCounter], eax);

        // CMPXCHG spin lock; the guarded increment is a plain load, add and store, released by a plain store.
        a.Label(ref cmpxchgAcquire);
        a.pause();
        a.xor(eax, eax);
        a.mov(ecx, 1);
        a.@lock.cmpxchg(__dword_ptr[CmpxchgLock], ecx);
        a.jnz(cmpxchgAcquire);
        a.mov(eax, __dword_ptr[CmpxchgGuarded]);
        a.add(eax, 1);
        a.mov(__dword_ptr[CmpxchgGuarded], eax);
        a.mov(__dword_ptr[CmpxchgLock], 0);

        // XCHG spin lock (XCHG with memory is locked without a prefix).
        a.Label(ref xchgAcquire);
        a.pause();
        a.mov(eax, 1);
        a.xchg(__dword_ptr[XchgLock], eax);
        a.test(eax, eax);
        a.jnz(xchgAcquire);
        a.mov(eax, __dword_ptr[XchgGuarded]);
        a.add(eax, 1);
        a.mov(__dword_ptr[XchgGuarded], eax);
        a.mov(__dword_ptr[XchgLock], 0);

        // A split locked add.
        a.@lock.add(__dword_ptr[SplitCounter], 1);

        // LOCK BTS/BTR bit lock with a register bit offset (33: bit 1 of the next dword is the lock bit).
        a.mov(edx, 33);
        a.Label(ref bitAcquire);
        a.pause();
        a.@lock.bts(__dword_ptr[BitLock - 4], edx);
        a.jc(bitAcquire);
        a.mov(eax, __dword_ptr[BitGuarded]);
        a.add(eax, 1);
        a.mov(__dword_ptr[BitGuarded], eax);
        a.@lock.btr(__dword_ptr[BitLock], 1);

        // 64-bit increment with LOCK CMPXCHG8B.
        a.mov(eax, __dword_ptr[WideCounter]);
        a.mov(edx, __dword_ptr[WideCounter + 4]);
        a.Label(ref wideRetry);
        a.mov(ebx, eax);
        a.mov(ecx, edx);
        a.add(ebx, 1);
        a.adc(ecx, 0);
        a.@lock.cmpxchg8b(__qword_ptr[WideCounter]);
        a.jnz(wideRetry);

        a.dec(esi);
        a.jnz(round);
    }
}
