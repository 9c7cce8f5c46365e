using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Tests.Guests;

/// <summary>
/// Firmware guests for the system features of tcg issue 3 that only make sense as whole programs: hardware task
/// switching, virtual-8086 mode and debug registers. Each runs in 32-bit protected mode (see <see cref="PcGuest"/>),
/// builds its own GDT, TSSs and IDT in RAM, prints what the CPU did (error codes, saved state, flags) in hex on COM1
/// and exits through isa-debug-exit. The tests run each image on tcg and on QEMU and compare.
/// </summary>
/// <remarks>
/// RAM layout: GDT at 0x20000, TSSs from 0x21000 (0x100 apart), a TSS with a full I/O bitmap at 0x24000, IDT at
/// 0x8000, stacks below 0x7000 (task A), 0x6000, 0x5800, 0x5000, 0x4800, 0x4000; variables at 0x600; virtual-8086
/// code copied to 0x10000 (segment 0x1000).
/// </remarks>
internal static class SystemGuests
{
    public const uint Gdt = 0x20000;
    public const uint TssA = 0x21000, TssB = 0x21100, TssC = 0x21200, TssD = 0x21300, TssE = 0x21400, TssF = 0x21500,
        TssG = 0x21600, TssIo = 0x24000;

    /// <summary>Recovery EIP for fault handlers (0: skip <see cref="SkipLength"/> bytes instead).</summary>
    public const uint Recovery = 0x600;

    /// <summary>How many bytes a handler skips when <see cref="Recovery"/> is 0.</summary>
    public const uint SkipLength = 0x604;

    public const uint Counter = 0x608;

    public const byte ExitValue = 0x31;

    private const uint IdtBase = 0x8000;

    /// <summary>An 8-byte segment or system descriptor (SDM Vol. 3A, 3.4.5): <paramref name="access"/> is byte 5, <paramref name="flags"/> the G/DB/L/AVL nibble.</summary>
    public static ulong Descriptor(uint baseAddress, uint limit, byte access, byte flags) =>
        (limit & 0xFFFF) | ((ulong)(baseAddress & 0xFF_FFFF) << 16) | ((ulong)access << 40) |
        ((ulong)((limit >> 16) & 0xF) << 48) | ((ulong)(flags & 0xF) << 52) | ((ulong)(baseAddress >> 24) << 56);

    /// <summary>A task gate (SDM Vol. 3A, 7.2.5) naming <paramref name="tss"/>.</summary>
    public static ulong TaskGate(ushort tss, int dpl = 0) => ((ulong)tss << 16) | ((ulong)(0x85 | (dpl << 5)) << 40);

    // ------------------------------------------------------------------ helpers emitted into guests

    /// <summary>Labels of the shared routines a system guest uses.</summary>
    private sealed class Kit(PcGuest g)
    {
        public Label PrintHexLabel = g.A.CreateLabel("printHex");

        public PcGuest G { get; } = g;

        public Assembler A => G.A;

        /// <summary>Prints EAX as <paramref name="digits"/> hex digits, then a space (clobbers EAX, EBX, ECX, EDX).</summary>
        public void Hex(int digits = 8)
        {
            A.mov(ecx, digits);
            A.call(PrintHexLabel);
        }

        public void Emit()
        {
            // printHex: EAX, ECX digits (most significant first), then ' '.
            Label loop = A.CreateLabel(), digit = A.CreateLabel();
            A.Label(ref PrintHexLabel);
            A.mov(ebx, eax);
            A.push(ecx);
            A.lea(ecx, __[ecx * 4 - 4]);
            A.Label(ref loop);
            A.mov(eax, ebx);
            A.shr(eax, cl);
            A.and(eax, 0xF);
            A.cmp(al, 10);
            A.jb(digit);
            A.add(al, 'A' - '0' - 10);
            A.Label(ref digit);
            A.add(al, (byte)'0');
            A.push(ecx);
            G.PutCharAl();
            A.pop(ecx);
            A.sub(ecx, 4);
            A.jns(loop);
            A.pop(ecx);
            A.mov(al, (byte)' ');
            G.PutCharAl();
            A.ret();
        }

        public void Gdt(params ulong[] entries)
        {
            for (int i = 0; i < entries.Length; i++)
            {
                A.mov(__dword_ptr[SystemGuests.Gdt + (uint)(i * 8)], (uint)entries[i]);
                A.mov(__dword_ptr[SystemGuests.Gdt + (uint)(i * 8) + 4], (uint)(entries[i] >> 32));
            }

            A.mov(__word_ptr[0x7F00], (ushort)((entries.Length * 8) - 1));
            A.mov(__dword_ptr[0x7F02], SystemGuests.Gdt);
            A.lgdt(__[0x7F00]);
        }

        /// <summary>Clears a 32-bit TSS and fills the fields a task starts from (flat ring-0 segments unless given).</summary>
        public void Tss32(uint tss, Label eip, uint esp, uint eflags = 2, ushort cs = 0x08, ushort ss = 0x10,
            ushort ds = 0x10, uint eaxValue = 0, ushort ldt = 0, bool trap = false)
        {
            A.mov(edi, tss);
            A.xor(eax, eax);
            A.mov(ecx, 0x68 / 4);
            A.rep.stosd();
            G.LoadAddressAx(eip);
            A.mov(__dword_ptr[tss + 0x20], eax);
            A.mov(__dword_ptr[tss + 0x24], eflags);
            A.mov(__dword_ptr[tss + 0x28], eaxValue);
            A.mov(__dword_ptr[tss + 0x38], esp);
            A.mov(__dword_ptr[tss + 0x48], (uint)ds); // ES
            A.mov(__dword_ptr[tss + 0x4C], (uint)cs);
            A.mov(__dword_ptr[tss + 0x50], (uint)ss);
            A.mov(__dword_ptr[tss + 0x54], (uint)ds);
            A.mov(__dword_ptr[tss + 0x60], (uint)ldt);
            A.mov(__dword_ptr[tss + 0x64], trap ? 1u : 0u);
            A.mov(__dword_ptr[tss + 0x04], 0x6C00u); // ESP0
            A.mov(__dword_ptr[tss + 0x08], 0x10u); // SS0
        }

        /// <summary>Writes an 8-byte IDT entry for <paramref name="vector"/>.</summary>
        public void IdtEntry(int vector, ulong entry)
        {
            A.mov(__dword_ptr[IdtBase + (uint)(vector * 8)], (uint)entry);
            A.mov(__dword_ptr[IdtBase + (uint)(vector * 8) + 4], (uint)(entry >> 32));
        }

        /// <summary>A 32-bit interrupt (or trap) gate to <paramref name="handler"/> in segment 0x08 with <paramref name="dpl"/>.</summary>
        public void Gate(int vector, Label handler, int dpl = 0, bool trap = false)
        {
            uint gate = IdtBase + (uint)(vector * 8);
            G.LoadAddressAx(handler);
            A.mov(__word_ptr[gate], ax);
            A.mov(__word_ptr[gate + 2], 0x08);
            A.mov(__word_ptr[gate + 4], (ushort)((trap ? 0x8F00 : 0x8E00) | (dpl << 13)));
            A.shr(eax, 16);
            A.mov(__word_ptr[gate + 6], ax);
        }

        public void JmpFar(ushort selector)
        {
            A.db(0xEA);
            A.dd(0);
            A.dw(selector);
        }

        public void CallFar(ushort selector)
        {
            A.db(0x9A);
            A.dd(0);
            A.dw(selector);
        }

        /// <summary>Sets <see cref="Recovery"/> to <paramref name="label"/>.</summary>
        public void SetRecovery(Label label)
        {
            G.LoadAddressAx(label);
            A.mov(__dword_ptr[Recovery], eax);
        }

        /// <summary>Prints EFLAGS.NT (bit 14) as one hex digit.</summary>
        public void PrintNt()
        {
            A.pushfd();
            A.pop(eax);
            A.shr(eax, 14);
            A.and(eax, 1);
            Hex(1);
        }

        /// <summary>Prints the task register's selector (STR) as four hex digits.</summary>
        public void PrintTr()
        {
            A.str(ax);
            A.movzx(eax, ax);
            Hex(4);
        }

        /// <summary>Prints the busy bit (type bit 1) of the TSS descriptor <paramref name="selector"/>.</summary>
        public void PrintBusy(ushort selector)
        {
            A.movzx(eax, __byte_ptr[SystemGuests.Gdt + selector + 5]);
            A.shr(eax, 1);
            A.and(eax, 1);
            Hex(1);
        }
    }

    /// <summary>
    /// Hardware task switching (SDM Vol. 3A, chapter 7): CALL to a TSS and IRET back through NT and the back link;
    /// JMP through a task gate and back; INT n through a task gate; a #GP with its error code delivered to a task
    /// through a task gate; #TS, #NP and #GP for bad TSS selectors; a 16-bit TSS; a fault in the new task's context
    /// (a data selector as CS) taken by a #TS task. Prints busy bits, NT, back links, saved EIPs and error codes.
    /// </summary>
    public static byte[] TaskSwitching() => PcGuest.Build(GuestMode.Protected, g =>
    {
        var k = new Kit(g);
        Assembler a = g.A;
        Label taskB = a.CreateLabel(), taskC = a.CreateLabel(), taskD = a.CreateLabel(), taskE = a.CreateLabel(),
            taskG = a.CreateLabel(), afterGp = a.CreateLabel(), afterTs = a.CreateLabel(), afterNp = a.CreateLabel(),
            afterBusy = a.CreateLabel(), afterBadCs = a.CreateLabel(), tsHandler = a.CreateLabel(), npHandler = a.CreateLabel(),
            done = a.CreateLabel(), main = a.CreateLabel();

        k.Gdt(
            0,
            0x00CF_9B00_0000_FFFF,
            0x00CF_9300_0000_FFFF,
            Descriptor(TssA, 0x67, 0x89, 0), // 0x18 task A (32-bit TSS)
            Descriptor(TssB, 0x67, 0x89, 0), // 0x20 task B
            Descriptor(TssC, 0x67, 0x89, 0), // 0x28 task C (INT 0x40)
            Descriptor(TssD, 0x2B, 0x81, 0), // 0x30 task D, a 16-bit TSS
            Descriptor(TssE, 0x67, 0x89, 0), // 0x38 task E (#GP)
            TaskGate(0x20), // 0x40 task gate to B
            Descriptor(TssF, 0x50, 0x89, 0), // 0x48 TSS below the minimum limit
            Descriptor(TssF, 0x67, 0x09, 0), // 0x50 TSS not present
            Descriptor(TssF, 0x67, 0x89, 0), // 0x58 task F: CS is a data segment
            Descriptor(TssG, 0x67, 0x89, 0), // 0x60 task G (#TS)
            Descriptor(PcGuest.LowBase, 0xFFFF, 0x9B, 0x4)); // 0x68 32-bit code based at the ROM copy (16-bit TSS IPs)
        a.mov(ax, 0x18);
        a.ltr(ax);
        k.Tss32(TssA, main, 0x7000);
        k.Tss32(TssB, taskB, 0x6000, eaxValue: 0x1111_2222);
        k.Tss32(TssC, taskC, 0x5800);
        k.Tss32(TssE, taskE, 0x5000);
        k.Tss32(TssF, main, 0x4800, cs: 0x10);
        k.Tss32(TssG, taskG, 0x4000);

        // Task D's 16-bit TSS: IP, FLAGS, SP, ES, CS, SS, DS (SDM Vol. 3A, Figure 7-11).
        a.mov(edi, TssD);
        a.xor(eax, eax);
        a.mov(ecx, 0x2C / 4);
        a.rep.stosd();
        g.LoadAddressAx(taskD);
        a.sub(eax, PcGuest.LowBase);
        a.mov(__word_ptr[TssD + 0x0E], ax);
        a.mov(__word_ptr[TssD + 0x10], 2);
        a.mov(__word_ptr[TssD + 0x12], 0x4444);
        a.mov(__word_ptr[TssD + 0x1A], 0x3800);
        a.mov(__word_ptr[TssD + 0x22], 0x10);
        a.mov(__word_ptr[TssD + 0x24], 0x68);
        a.mov(__word_ptr[TssD + 0x26], 0x10);
        a.mov(__word_ptr[TssD + 0x28], 0x10);

        k.IdtEntry(13, TaskGate(0x38));
        k.IdtEntry(10, TaskGate(0x60));
        k.IdtEntry(0x40, TaskGate(0x28, dpl: 0));
        k.Gate(11, npHandler);
        g.LoadIdt();
        a.mov(__dword_ptr[Recovery], 0);
        a.mov(__dword_ptr[SkipLength], 3); // MOV DS, AX is 66 8E D8 in 32-bit code
        a.jmp(main);

        // ---- task A
        g.Mark(ref main);
        g.Print("call ");
        k.CallFar(0x20);
        g.Print("back nt=");
        k.PrintNt();
        g.Print("busyA=");
        k.PrintBusy(0x18);
        g.Print("busyB=");
        k.PrintBusy(0x20);
        g.Print("ts=");
        a.mov(eax, cr0);
        a.shr(eax, 3);
        a.and(eax, 1);
        k.Hex(1);
        a.clts();
        g.Print("\r\njmp ");
        k.JmpFar(0x40);
        g.Print("A busyA=");
        k.PrintBusy(0x18);
        g.Print("busyB=");
        k.PrintBusy(0x20);
        g.Print("\r\nint ");
        a.mov(esi, 0x5A5A_0001);
        a.@int(0x40);
        a.mov(ebp, esi);
        g.Print("A esi=");
        a.mov(eax, ebp);
        k.Hex();
        g.Print("\r\ngp ");
        a.mov(ax, 0x1234);
        a.mov(ds, ax); // #GP(0x1234: TI=1, no LDT) to task E, which skips the MOV
        g.Print("A\r\n16 ");
        k.CallFar(0x30);
        g.Print("A busyD=");
        k.PrintBusy(0x30);
        g.Print("link=");
        a.movzx(eax, __word_ptr[TssD]);
        k.Hex(4);

        // Bad TSS selectors, in the old task: limit too small, not present, busy.
        g.Print("\r\nts ");
        k.SetRecovery(afterTs);
        k.JmpFar(0x48);
        g.Mark(ref afterTs);
        g.Print("np ");
        k.SetRecovery(afterNp);
        k.JmpFar(0x50);
        g.Mark(ref afterNp);
        g.Print("busy ");
        k.SetRecovery(afterBusy);
        k.CallFar(0x18);
        g.Mark(ref afterBusy);

        // A fault in the new task: F's CS is a data segment; #TS(0x10) through the #TS task G, which JMPs back here.
        g.Print("\r\nbadcs ");
        k.SetRecovery(afterBadCs);
        k.JmpFar(0x58);
        g.Print("A busyF=");
        k.PrintBusy(0x58);
        g.Print("busyG=");
        k.PrintBusy(0x60);
        g.Print("tr=");
        k.PrintTr();
        g.Mark(ref afterBadCs);
        a.jmp(done);

        // ---- task B: CALLed (nested), returns with IRET; later resumed by a JMP through a task gate.
        g.Mark(ref taskB);
        a.mov(ebp, eax);
        g.Print("B eax=");
        a.mov(eax, ebp);
        k.Hex();
        g.Print("nt=");
        k.PrintNt();
        g.Print("link=");
        a.movzx(eax, __word_ptr[TssB]);
        k.Hex(4);
        g.Print("tr=");
        k.PrintTr();
        g.Print("busyA=");
        k.PrintBusy(0x18);
        g.Print("savedEip=");
        a.mov(eax, __dword_ptr[TssA + 0x20]);
        k.Hex();
        a.iretd();
        g.Print("B2 nt=");
        k.PrintNt();
        g.Print("busyA=");
        k.PrintBusy(0x18);
        k.JmpFar(0x18);

        // ---- task C: INT 0x40 through a task gate.
        g.Mark(ref taskC);
        g.Print("C link=");
        a.movzx(eax, __word_ptr[TssC]);
        k.Hex(4);
        g.Print("esi=");
        a.mov(eax, __dword_ptr[TssA + 0x40]);
        k.Hex();
        a.mov(__dword_ptr[TssA + 0x40], 0x5A5A_0002); // the caller's ESI, restored from its TSS by the IRET
        a.iretd();

        // ---- task E: #GP through a task gate, with the error code on E's stack. Loops for the next #GP.
        Label eSkip = a.CreateLabel(), eRet = a.CreateLabel();
        g.Mark(ref taskE);
        g.Print("E err=");
        a.pop(eax);
        k.Hex(4);
        g.Print("esp=");
        a.mov(eax, esp);
        k.Hex();
        g.Print("eip=");
        a.mov(eax, __dword_ptr[TssA + 0x20]);
        k.Hex();
        a.mov(eax, __dword_ptr[Recovery]);
        a.test(eax, eax);
        a.jz(eSkip);
        a.mov(__dword_ptr[TssA + 0x20], eax);
        a.mov(__dword_ptr[Recovery], 0);
        a.jmp(eRet);
        a.Label(ref eSkip);
        a.mov(eax, __dword_ptr[SkipLength]);
        a.add(__dword_ptr[TssA + 0x20], eax);
        a.Label(ref eRet);
        a.iretd();
        a.jmp(taskE);

        // ---- task D: a 16-bit TSS.
        g.Mark(ref taskD);
        a.movzx(esp, sp); // a 16-bit TSS loads only the low halves: the upper ones are not architecturally defined
        a.movzx(ebp, ax);
        g.Print("D ax=");
        a.mov(eax, ebp);
        k.Hex(4);
        g.Print("nt=");
        k.PrintNt();
        g.Print("tr=");
        k.PrintTr();
        a.iretd();

        // ---- task G: #TS through a task gate. From task A (bad TSS) it returns to the recovery point; from task F
        // (fault after the commit point) it JMPs to task A, whose saved EIP follows its JMP to F.
        Label gFromA = a.CreateLabel();
        g.Mark(ref taskG);
        g.Print("G err=");
        a.pop(eax);
        k.Hex(4);
        g.Print("link=");
        a.movzx(eax, __word_ptr[TssG]);
        k.Hex(4);
        a.cmp(__word_ptr[TssG], 0x18);
        a.je(gFromA);
        g.Print("F cs=");
        a.movzx(eax, __word_ptr[TssF + 0x4C]);
        k.Hex(4);
        k.JmpFar(0x18);
        a.jmp(taskG);
        a.Label(ref gFromA);
        a.mov(eax, __dword_ptr[Recovery]);
        a.mov(__dword_ptr[TssA + 0x20], eax);
        a.iretd();
        a.jmp(taskG);

        // #NP (an interrupt gate in task A): print the error code, resume at the recovery point.
        g.Mark(ref npHandler);
        g.Print("NP err=");
        a.pop(eax);
        k.Hex(4);
        a.mov(eax, __dword_ptr[Recovery]);
        a.mov(__dword_ptr[esp], eax);
        a.iretd();

        // #TS also reaches task G via the gate; a second handler is not needed.
        g.Mark(ref tsHandler);
        a.hlt();

        a.Label(ref done);
        g.Print("\r\ndone\r\n");
        g.Exit(ExitValue);
        k.Emit();
    });

    /// <summary>
    /// The classic use of a task gate (SDM Vol. 3A, 6.15 "Interrupt 8"): a ring-0 stack runs into a not-present page,
    /// the #PF cannot be delivered on that stack (a second #PF), and the double fault goes through a task gate to a
    /// task with its own stack and its own page directory (CR3 from the TSS: it maps linear 0x30000 to a page with a
    /// marker). The #DF task prints its error code, CR2, NT, the back link and the state saved in the faulting task's
    /// TSS, then exits.
    /// </summary>
    public static byte[] DoubleFaultTask() => PcGuest.Build(GuestMode.Protected, g =>
    {
        const uint pageDirectory = 0x40000, pageTable = 0x41000, dfDirectory = 0x42000, dfTable = 0x43000;
        var k = new Kit(g);
        Assembler a = g.A;
        Label main = a.CreateLabel(), dfTask = a.CreateLabel(), pfHandler = a.CreateLabel(), push = a.CreateLabel(),
            fill = a.CreateLabel();
        k.Gdt(
            0,
            0x00CF_9B00_0000_FFFF,
            0x00CF_9300_0000_FFFF,
            Descriptor(TssA, 0x67, 0x89, 0), // 0x18 the faulting task
            Descriptor(TssC, 0x67, 0x89, 0)); // 0x20 the #DF task
        a.mov(ax, 0x18);
        a.ltr(ax);
        k.Tss32(TssA, main, 0x7000);
        k.Tss32(TssC, dfTask, 0x5000);
        a.mov(__dword_ptr[TssC + 0x1C], dfDirectory);

        // Both directories map the first 4 MiB with 4-KiB pages; the faulting task's leaves 0x30000 not present,
        // the #DF task's maps it to 0x50000, where a marker is.
        a.mov(edi, pageTable);
        a.mov(eax, 3u);
        a.Label(ref fill);
        a.mov(__dword_ptr[edi], eax);
        a.mov(__dword_ptr[edi + (int)(dfTable - pageTable)], eax);
        a.add(eax, 0x1000);
        a.add(edi, 4);
        a.cmp(edi, pageTable + 0x1000);
        a.jb(fill);
        a.mov(__dword_ptr[pageTable + (0x30 * 4)], 0u);
        a.mov(__dword_ptr[dfTable + (0x30 * 4)], 0x50003u);
        a.mov(edi, pageDirectory);
        a.xor(eax, eax);
        a.mov(ecx, 0x1000 / 4);
        a.rep.stosd();
        a.mov(edi, dfDirectory);
        a.mov(ecx, 0x1000 / 4);
        a.rep.stosd();
        a.mov(__dword_ptr[pageDirectory], pageTable | 3);
        a.mov(__dword_ptr[dfDirectory], dfTable | 3);
        a.mov(__dword_ptr[0x50000], 0xD0AB_1E00u);
        a.mov(__dword_ptr[0x50004], 0u);

        k.IdtEntry(8, TaskGate(0x20));
        k.Gate(14, pfHandler);
        g.LoadIdt();
        a.mov(eax, pageDirectory);
        a.mov(cr3, eax);
        a.mov(eax, cr0);
        a.or(eax, unchecked((int)0x8000_0000));
        a.mov(cr0, eax);
        a.jmp(main);

        g.Mark(ref main);
        g.Print("overflow ");
        a.mov(esp, 0x31010);
        a.mov(eax, 0x1234_5678);
        g.Mark(ref push);
        a.push(eax);
        a.jmp(push);

        // Never reached: the #PF cannot be delivered on the overflowing stack.
        g.Mark(ref pfHandler);
        g.Print("PF handler\r\n");
        g.Exit(0x77);

        g.Mark(ref dfTask);
        g.Print("DF err=");
        a.pop(eax);
        k.Hex(4);
        g.Print("esp=");
        a.mov(eax, esp);
        k.Hex();
        g.Print("cr2=");
        a.mov(eax, cr2);
        k.Hex();
        g.Print("cr3=");
        a.mov(eax, cr3);
        k.Hex();
        g.Print("marker=");
        a.mov(eax, __dword_ptr[0x30000]);
        k.Hex();
        g.Print("nt=");
        k.PrintNt();
        g.Print("link=");
        a.movzx(eax, __word_ptr[TssC]);
        k.Hex(4);
        g.Print("busyA=");
        k.PrintBusy(0x18);
        g.Print("busyDF=");
        k.PrintBusy(0x20);
        g.Print("\r\nsaved eip=");
        a.mov(eax, __dword_ptr[TssA + 0x20]);
        k.Hex();
        g.Print("at push=");
        g.LoadAddressAx(push);
        a.cmp(eax, __dword_ptr[TssA + 0x20]);
        a.sete(al);
        a.movzx(eax, al);
        k.Hex(1);
        g.Print("esp=");
        a.mov(eax, __dword_ptr[TssA + 0x38]);
        k.Hex();
        g.Print("eax=");
        a.mov(eax, __dword_ptr[TssA + 0x28]);
        k.Hex();
        g.Print("eflags=");
        a.mov(eax, __dword_ptr[TssA + 0x24]);
        k.Hex();
        g.Print("\r\n");
        g.Exit(ExitValue);
        k.Emit();
    });

    /// <summary>
    /// The virtual-8086 code of <see cref="Virtual8086"/>, assembled for CS = 0x1000 at IP 0 (copied to linear
    /// 0x10000); <paramref name="taskEntry"/> is where the task entered by a task switch starts.
    /// </summary>
    private static byte[] V86Code(out ushort taskEntry)
    {
        var a = new Assembler(16);
        Label putc = a.CreateLabel(), wait = a.CreateLabel(), hex = a.CreateLabel(), hexLoop = a.CreateLabel(),
            digit = a.CreateLabel(), task = a.CreateLabel(), back = a.CreateLabel();

        void Say(string text)
        {
            foreach (char c in text)
            {
                a.mov(al, (byte)c);
                a.call(putc);
            }
        }

        // Tells the monitor how long the next faulting instruction is (a word at 1000:0F00, linear 0x10F00).
        void Skip(ushort bytes) => a.mov(__word_ptr[0x0F00], bytes);

        Say("v86 ");

        // Real-mode segmentation at CPL 3: 2000:0010 and 2001:0000 are the same byte.
        a.mov(ax, 0x2000);
        a.mov(ds, ax);
        a.mov(__word_ptr[0x10], 0xBEEF);
        a.mov(ax, 0x2001);
        a.mov(ds, ax);
        a.mov(ax, __word_ptr[0]);
        a.mov(bx, 0x1000);
        a.mov(ds, bx);
        a.call(hex);

        // IOPL 0: CLI, STI, PUSHF, POPF, IRET, INT n fault; IN from a port the I/O bitmap denies faults. The monitor
        // prints each and skips it. (Offsets beyond 0xFFFF are left to the unit tests: QEMU does not check limits.)
        Skip(1);
        a.cli();
        a.sti();
        a.pushf();
        a.popf();
        a.iret();
        Skip(2);
        a.@int(0x21);
        a.@in(al, 0x80);
        Skip(1);
        a.mov(dx, 0x3FF); // allowed by the bitmap: COM1's scratch register
        a.mov(al, 0x5A);
        a.@out(dx, al);
        a.@in(al, dx);
        a.xor(ah, ah);
        a.call(hex);

        // Ask the monitor for IOPL 3 (INT 0x30 faults like any INT n at IOPL 0).
        Skip(2);
        a.@int(0x30);
        Say("iopl3 ");
        a.pushf();
        a.pop(ax);
        a.call(hex);
        a.sti(); // the STI shadow keeps interrupts out until CLI has run
        a.cli();
        a.mov(ax, 0x08D5); // POPF at IOPL 3 cannot change IOPL (bits 12-13 of the image are 0); IF and DF stay 0
        a.push(ax);
        a.popf();
        a.pushf();
        a.pop(ax);
        a.call(hex);
        a.cli();

        // IRET at IOPL 3 is the 8086 one: FLAGS, CS, IP from the stack.
        a.pushf();
        a.push(cs);
        a.call(back); // pushes the IP after it: the IRET below returns there
        Say("iret ");

        // INT n at IOPL 3 goes through the IDT to a 32-bit ring-0 handler and returns with IRETD.
        a.mov(si, 0x1357);
        a.@int(0x21);
        a.mov(ax, si);
        a.call(hex);
        a.int3();
        Skip(2);
        a.xor(cx, cx);
        a.div(cx);
        Skip(1);
        a.hlt(); // privileged: #GP
        a.@int(0x31);

        // Entered by a task switch to a TSS whose EFLAGS has VM = 1.
        a.Label(ref task);
        Say("task ");
        a.mov(ax, ds);
        a.call(hex);
        a.pushf();
        a.pop(ax);
        a.call(hex);
        a.@int(0x31);

        a.Label(ref back);
        a.iret();

        // putc: AL to COM1 once THR is empty (ports 0x3F8-0x3FD are open in the bitmap).
        a.Label(ref putc);
        a.push(dx);
        a.push(ax);
        a.mov(dx, 0x3FD);
        a.Label(ref wait);
        a.@in(al, dx);
        a.test(al, 0x20);
        a.jz(wait);
        a.pop(ax);
        a.mov(dx, 0x3F8);
        a.@out(dx, al);
        a.pop(dx);
        a.ret();

        // hex: AX as 4 digits and a space.
        a.Label(ref hex);
        a.push(cx);
        a.push(bx);
        a.mov(bx, ax);
        a.mov(cx, 12);
        a.Label(ref hexLoop);
        a.mov(ax, bx);
        a.shr(ax, cl);
        a.and(al, 0xF);
        a.cmp(al, 10);
        a.jb(digit);
        a.add(al, 'A' - '0' - 10);
        a.Label(ref digit);
        a.add(al, (byte)'0');
        a.call(putc);
        a.sub(cx, 4);
        a.jns(hexLoop);
        a.mov(al, (byte)' ');
        a.call(putc);
        a.pop(bx);
        a.pop(cx);
        a.ret();

        using var stream = new MemoryStream();
        AssemblerResult result = a.Assemble(new StreamCodeWriter(stream), 0, BlockEncoderOptions.ReturnNewInstructionOffsets);
        taskEntry = (ushort)result.GetLabelRIP(task);
        return stream.ToArray();
    }

    /// <summary>
    /// Virtual-8086 mode (SDM Vol. 3B, chapter 20) under a small ring-0 monitor: entered by IRETD with VM = 1; 8086
    /// segmentation; CLI/STI/PUSHF/POPF/IRET/INT n faulting at IOPL 0 (the #GP handler prints the opcode, the error
    /// code and the pushed VM flag, and the data segment registers it finds null); IN/OUT through the TSS I/O
    /// bitmap; IOPL 3 granted by the monitor; INT n through the IDT to a 32-bit handler that prints the 9-dword frame;
    /// INT3, #DE and HLT from virtual-8086 mode; then a task switch into a second task whose TSS has VM = 1.
    /// </summary>
    public static byte[] Virtual8086() => PcGuest.Build(GuestMode.Protected, g =>
    {
        const uint tssV = 0x28000, v86Linear = 0x10000;
        byte[] code = V86Code(out ushort taskEntry);
        var k = new Kit(g);
        Assembler a = g.A;
        Label main = a.CreateLabel(), blob = a.CreateLabel(), gpHandler = a.CreateLabel(), int21 = a.CreateLabel(),
            int3 = a.CreateLabel(), deHandler = a.CreateLabel(), exitHandler = a.CreateLabel(), final = a.CreateLabel(),
            notIopl = a.CreateLabel();
        k.Gdt(
            0,
            0x00CF_9B00_0000_FFFF,
            0x00CF_9300_0000_FFFF,
            Descriptor(TssIo, 0x2068, 0x89, 0), // 0x18 task A with an I/O bitmap
            Descriptor(tssV, 0x2068, 0x89, 0)); // 0x20 task V, a virtual-8086 task
        k.Tss32(TssIo, main, 0x7000);
        k.Tss32(tssV, main, 0xFF00, eflags: (1u << 17) | 0x3002, cs: 0x1000, ss: 0x1000, ds: 0x1000);
        a.mov(__dword_ptr[tssV + 0x04], 0x6400u); // its own ring-0 stack
        a.mov(__dword_ptr[tssV + 0x20], (uint)taskEntry);
        foreach (uint tss in (uint[])[TssIo, tssV])
        {
            // I/O bitmap right after the 104-byte TSS: all ports allowed but 0x80; the byte after it all ones.
            a.mov(edi, tss + 0x68);
            a.xor(eax, eax);
            a.mov(ecx, 0x2000 / 4);
            a.rep.stosd();
            a.mov(__byte_ptr[tss + 0x68 + 0x2000], 0xFF);
            a.mov(__byte_ptr[tss + 0x68 + (0x80 / 8)], 1);
            a.mov(__word_ptr[tss + 0x66], 0x68);
        }

        a.mov(ax, 0x18);
        a.ltr(ax);
        g.LoadAddressSi(blob);
        a.mov(edi, v86Linear);
        a.mov(ecx, code.Length);
        a.rep.movsb();
        a.mov(__word_ptr[v86Linear + 0x0F00], 1);
        a.mov(__dword_ptr[Counter], 0);

        k.Gate(13, gpHandler);
        k.Gate(0, deHandler);
        k.Gate(0x21, int21, dpl: 3, trap: true);
        k.Gate(3, int3, dpl: 3, trap: true);
        k.Gate(0x31, exitHandler, dpl: 3);
        g.LoadIdt();
        a.jmp(main);

        g.Mark(ref main);
        g.Print("enter ");
        a.push(0); // GS
        a.push(0); // FS
        a.push(0x1000); // DS
        a.push(0x1000); // ES
        a.push(0x1000); // SS
        a.push(0xFFF0); // ESP
        a.push(unchecked((int)((1u << 17) | 2))); // EFLAGS: VM, IOPL 0, IF 0
        a.push(0x1000); // CS
        a.push(0); // EIP
        a.iretd();

        // #GP from virtual-8086 mode: error code, opcode, VM in the pushed EFLAGS, the handler's DS; skips the
        // instruction (length from 1000:0F00); INT 0x30 raises IOPL to 3.
        g.Mark(ref gpHandler);
        a.mov(ebp, ds);
        a.mov(ax, 0x10);
        a.mov(ds, ax);
        a.mov(es, ax);
        g.Print("GP e=");
        a.pop(eax);
        k.Hex(4);
        g.Print("ds=");
        a.mov(eax, ebp);
        k.Hex(4);
        g.Print("vm=");
        a.mov(eax, __dword_ptr[esp + 8]);
        a.shr(eax, 17);
        a.and(eax, 1);
        k.Hex(1);
        g.Print("op=");
        a.movzx(esi, __word_ptr[esp + 4]);
        a.shl(esi, 4);
        a.movzx(eax, __word_ptr[esp]);
        a.add(esi, eax);
        a.movzx(eax, __word_ptr[esi]);
        a.mov(ebx, eax);
        k.Hex(4);
        a.cmp(bx, 0x30CD);
        a.jne(notIopl);
        a.or(__dword_ptr[esp + 8], 0x3000);
        a.Label(ref notIopl);
        a.movzx(eax, __word_ptr[v86Linear + 0x0F00]);
        a.add(__dword_ptr[esp], eax);
        a.iretd();

        // INT 0x21 (trap gate, DPL 3): the frame GS FS DS ES SS ESP EFLAGS CS EIP, and the null segment registers.
        g.Mark(ref int21);
        a.mov(ebp, ds);
        a.mov(ax, 0x10);
        a.mov(ds, ax);
        g.Print("int21 ds=");
        a.mov(eax, ebp);
        k.Hex(4);
        a.mov(eax, es);
        k.Hex(4);
        a.mov(eax, fs);
        k.Hex(4);
        a.mov(eax, gs);
        k.Hex(4);
        g.Print("frame=");
        for (int i = 0; i < 9; i++)
        {
            a.mov(eax, __dword_ptr[esp + (i * 4)]);
            k.Hex();
        }

        a.mov(eax, 0x2468);
        a.mov(esi, eax); // returned in SI
        a.iretd();

        g.Mark(ref int3);
        a.mov(ax, 0x10);
        a.mov(ds, ax);
        g.Print("bp eip=");
        a.mov(eax, __dword_ptr[esp]);
        k.Hex(4);
        a.iretd();

        g.Mark(ref deHandler);
        a.mov(ax, 0x10);
        a.mov(ds, ax);
        g.Print("DE eip=");
        a.mov(eax, __dword_ptr[esp]);
        k.Hex(4);
        a.movzx(eax, __word_ptr[v86Linear + 0x0F00]);
        a.add(__dword_ptr[esp], eax);
        a.iretd();

        // INT 0x31: the first time, switch to task V (a virtual-8086 task); the second time, print and exit.
        g.Mark(ref exitHandler);
        a.mov(ax, 0x10);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.inc(__dword_ptr[Counter]);
        a.cmp(__dword_ptr[Counter], 1);
        a.jne(final);
        g.Print("\r\njmp ");
        k.JmpFar(0x20);
        a.Label(ref final);
        g.Print("exit tr=");
        k.PrintTr();
        g.Print("frame=");
        for (int i = 0; i < 9; i++)
        {
            a.mov(eax, __dword_ptr[esp + (i * 4)]);
            k.Hex();
        }

        g.Print("\r\n");
        g.Exit(ExitValue);

        g.Mark(ref blob);
        a.db(code);
        k.Emit();
    });

    /// <summary>
    /// Debug registers (SDM Vol. 3B, chapter 18): an instruction breakpoint (a fault; the handler sets RF in the
    /// saved EFLAGS to resume), data breakpoints on writes and on reads/writes with their lengths (traps, EIP after
    /// the access), a data breakpoint inside REP STOSD (a trap after the iteration), single-step traps (BS) and an I/O
    /// breakpoint with CR4.DE. The #DB handler prints DR6, the saved EIP, ECX and EDI each time. (The T flag of a TSS is
    /// checked in the tcg unit tests: QEMU 7.2 does not raise #DB for it.)
    /// </summary>
    public static byte[] DebugRegisters() => PcGuest.Build(GuestMode.Protected, g =>
    {
        const uint watched = 0x700, readWatched = 0x710, repWatched = 0x728;
        var k = new Kit(g);
        Assembler a = g.A;
        Label main = a.CreateLabel(), dbHandler = a.CreateLabel(), bp1 = a.CreateLabel(), loop = a.CreateLabel(),
            notInstruction = a.CreateLabel();
        k.Gdt(
            0,
            0x00CF_9B00_0000_FFFF,
            0x00CF_9300_0000_FFFF,
            Descriptor(TssA, 0x67, 0x89, 0)); // 0x18
        a.mov(ax, 0x18);
        a.ltr(ax);
        k.Tss32(TssA, main, 0x7000);
        k.Gate(1, dbHandler);
        g.LoadIdt();
        a.jmp(main);

        // #DB: DR6 and the saved EIP; an instruction breakpoint (DR6.B0, DR0 at an execute breakpoint) resumes with RF.
        g.Mark(ref dbHandler);
        a.push(eax);
        a.push(ebx);
        a.push(ecx);
        a.push(edx);
        a.push(esi);
        g.Print("DB dr6=");
        a.mov(eax, dr6);
        k.Hex();
        g.Print("eip=");
        a.mov(eax, __dword_ptr[esp + 20]);
        k.Hex();
        g.Print("ecx=");
        a.mov(eax, __dword_ptr[esp + 8]);
        k.Hex();
        g.Print("edi=");
        a.mov(eax, edi);
        k.Hex();
        a.inc(__dword_ptr[Counter]);
        a.mov(eax, dr6);
        a.test(eax, 1);
        a.jz(notInstruction);
        a.or(__dword_ptr[esp + 28], 0x10000); // RF in the saved EFLAGS: the breakpointed instruction runs once
        a.Label(ref notInstruction);
        a.xor(eax, eax);
        a.mov(dr6, eax);
        g.Print("\r\n");
        a.pop(esi);
        a.pop(edx);
        a.pop(ecx);
        a.pop(ebx);
        a.pop(eax);
        a.iretd();

        g.Mark(ref main);
        a.mov(__dword_ptr[Counter], 0);

        // Instruction breakpoint on bp1, passed twice.
        g.Print("exec\r\n");
        g.LoadAddressAx(bp1);
        a.mov(dr0, eax);
        a.mov(eax, 1); // L0, R/W0 = 00, LEN0 = 00
        a.mov(dr7, eax);
        a.xor(ecx, ecx);
        a.xor(edx, edx);
        a.Label(ref loop);
        a.inc(edx);
        g.Mark(ref bp1);
        a.inc(ecx);
        a.cmp(edx, 2);
        a.jb(loop);
        a.mov(eax, ecx);
        k.Hex(2);

        // Data breakpoints: DR1 on writes to a dword, DR2 on reads or writes of a word.
        g.Print("\r\ndata\r\n");
        a.mov(eax, watched);
        a.mov(dr1, eax);
        a.mov(eax, readWatched);
        a.mov(dr2, eax);
        a.mov(eax, (1u << 2) | (1u << 4) | (1u << 20) | (3u << 22) | (3u << 24) | (1u << 26)); // L1 W 4 bytes, L2 RW 2 bytes
        a.mov(dr7, eax);
        a.mov(eax, __dword_ptr[watched]); // a read: no trap
        a.mov(__dword_ptr[watched], eax); // trap
        a.mov(__byte_ptr[watched + 3], 1); // trap: inside the 4 bytes
        a.mov(__byte_ptr[watched + 4], 1); // outside
        a.mov(al, __byte_ptr[readWatched + 1]); // trap: a read
        a.mov(__byte_ptr[readWatched + 2], al); // outside the 2 bytes
        a.xor(eax, eax);
        a.mov(dr7, eax);

        // A data breakpoint inside REP STOSD (SDM Vol. 3B, 18.3.1.2): the trap follows the iteration that hit it,
        // with ECX/EDI as that iteration left them and EIP on the instruction, which then resumes. (A hit by the last
        // iteration traps after the instruction, EIP past it, in the tcg unit tests: QEMU 7.2 reports that one with
        // EIP still on the REP STOSD and ECX = 0, which contradicts the SDM's RF rule for the last iteration.)
        g.Print("rep\r\n");
        a.mov(eax, repWatched);
        a.mov(dr0, eax);
        a.mov(eax, 1 | (1u << 16) | (3u << 18)); // L0, writes, 4 bytes
        a.mov(dr7, eax);
        a.cld();
        a.mov(edi, repWatched - 8);
        a.mov(ecx, 6);
        a.mov(eax, 0x1111_1111);
        a.rep.stosd(); // the third store hits
        g.Print("ecx=");
        a.mov(eax, ecx);
        k.Hex();
        g.Print("edi=");
        a.mov(eax, edi);
        k.Hex();
        g.Print("\r\n");
        a.xor(eax, eax);
        a.mov(dr7, eax);

        // Single-step: TF set by POPFD takes effect after the next instruction; REP STOSB traps after each iteration.
        g.Print("step\r\n");
        a.pushfd();
        a.or(__dword_ptr[esp], 0x100);
        a.popfd();
        a.nop();
        a.mov(eax, 5);
        a.mov(edi, repWatched);
        a.mov(ecx, 3);
        a.rep.stosb(); // a trap after each iteration, EIP on the REP STOSB until the last
        a.pushfd();
        a.and(__dword_ptr[esp], ~0x100);
        a.popfd();

        // I/O breakpoint on COM1's scratch register (R/W = 10 needs CR4.DE).
        g.Print("io\r\n");
        a.mov(eax, cr4);
        a.or(eax, 8);
        a.mov(cr4, eax);
        a.mov(eax, 0x3FF);
        a.mov(dr3, eax);
        a.mov(eax, (1u << 6) | (2u << 28)); // L3, R/W3 = 10, LEN3 = 00
        a.mov(dr7, eax);
        a.mov(dx, 0x3FF);
        a.mov(al, 0x42);
        a.@out(dx, al);
        a.@in(al, dx);
        a.xor(eax, eax);
        a.mov(dr7, eax);

        g.Print("count=");
        a.mov(eax, __dword_ptr[Counter]);
        k.Hex(2);
        g.Print("\r\n");
        g.Exit(ExitValue);

        k.Emit();
    });
}
