using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Benchmarks.Workloads;

/// <summary>Workloads that exercise exits and the MMU rather than the ALU, each with its host-side expected checksum.</summary>
public static class SystemWorkloads
{
    /// <summary>OUT instructions per port-I/O workload.</summary>
    public const int OutCount = 1_000_000;

    /// <summary>A port no device claims, on QEMU's <c>pc</c> machine and on ours.</summary>
    public const ushort UnclaimedPort = 0x7F0;

    /// <summary>The POST-code port (a device on both QEMU's <c>pc</c> machine and ours).</summary>
    public const ushort PostPort = 0x80;

    /// <summary>Virtual base of the scattered mapping (PDPT entry 1: 1 GiB).</summary>
    public const uint ScatterVirtualBase = 0x4000_0000;

    /// <summary>Physical frames of the scattered mapping: 512 pages from 2 MiB.</summary>
    public const uint ScatterPhysicalBase = 0x20_0000;

    /// <summary>Dword touches per pass of the paging workload.</summary>
    public const int TouchesPerPass = 65536;

    /// <summary>Byte stride between consecutive touches (five pages and 13 dwords: every touch lands on another page).</summary>
    public const uint TouchStride = (4096 * 5) + (4 * 13);

    /// <summary>CR3 is reloaded (flushing the non-global TLB) after every this many touches.</summary>
    public const int TouchesPerCr3Reload = 64;

    /// <summary>IRQ0s the timer workload waits for.</summary>
    public const int TimerInterrupts = 10_000;

    /// <summary>PIT channel 0 divisor: 1193182 Hz / 119 = 10027 Hz (the PIT's input clock, Intel 8254 datasheet / every PC).</summary>
    public const ushort PitDivisor = 119;

    /// <summary>The PIT input clock in Hz.</summary>
    public const double PitInputHz = 1_193_182;

    private const uint PagePermutationMultiplier = 167; // odd, so i * 167 mod 512 is a permutation of the 512 pages

    // ---- port I/O: a tight OUT loop, EAX = the number of OUTs done ----

    /// <summary>Emits <see cref="OutCount"/> byte OUTs to <paramref name="port"/>; EAX = the count.</summary>
    public static void EmitOutLoop(GuestAsm g, ushort port)
    {
        Assembler a = g.A;
        Label loop = a.CreateLabel();
        a.mov(ecx, OutCount);
        a.xor(ebp, ebp);
        a.mov(dx, port);
        a.Label(ref loop);
        a.mov(al, cl);
        a.@out(dx, al);
        a.inc(ebp);
        a.dec(ecx);
        a.jnz(loop);
        a.mov(eax, ebp);
    }

    // ---- timer interrupts: PIT channel 0 at ~10 kHz through the PIC to an IDT handler in 32-bit protected mode ----

    /// <summary>
    /// Emits (32-bit protected mode): an IDT whose vector 0x20 is an interrupt gate to the handler at
    /// <see cref="FirmwareImage.FixedRoutineOffset"/>; where CPUID reports a local APIC, the APIC software-enabled and
    /// LINT0 set to ExtINT as a BIOS does (QEMU masks LINT0 at reset since its commit "target-i386: disable LINT0 after
    /// reset"; Intel SDM Vol. 3A 11.5.1); both 8259s initialised (IRQ0 at vector 0x20, every other line masked); PIT
    /// channel 0 in rate-generator mode at <see cref="PitDivisor"/>; then HLT until the handler has counted
    /// <see cref="TimerInterrupts"/> IRQ0s. EAX = <see cref="TimerInterrupts"/> once reached (the count is checked
    /// with interrupts off; reaching it is what is verified).
    /// </summary>
    public static void EmitTimer(GuestAsm g)
    {
        if (g.Mode != GuestMode.Protected32)
        {
            throw new ArgumentException("The timer workload is 32-bit code.", nameof(g));
        }

        Assembler a = g.A;
        Label wait = a.CreateLabel(), done = a.CreateLabel(), noApic = a.CreateLabel();
        const uint idt = GuestAsm.DataBase + 0x8000, idtr = GuestAsm.DataBase + 0x8800;
        const uint handler = FirmwareImage.LowBase + FirmwareImage.FixedRoutineOffset;
        a.mov(__dword_ptr[idt + (0x20 * 8)], (int)((0x08u << 16) | (handler & 0xFFFF)));
        a.mov(__dword_ptr[idt + (0x20 * 8) + 4], (int)((handler & 0xFFFF_0000) | 0x8E00)); // present, DPL 0, 32-bit interrupt gate
        a.mov(__word_ptr[idtr], (ushort)((256 * 8) - 1));
        a.mov(__dword_ptr[idtr + 2], (int)idt);
        a.lidt(__[idtr]);
        a.mov(g.Var(0), 0);

        a.mov(eax, 1);
        a.cpuid();
        a.test(edx, 1 << 9); // CPUID.01H:EDX.APIC
        a.jz(noApic);
        a.mov(__dword_ptr[0xFEE0_00F0], 0x1FF); // spurious-interrupt vector register: APIC software-enabled, vector 0xFF
        a.mov(__dword_ptr[0xFEE0_0350], 0x700); // LVT LINT0: ExtINT, unmasked
        a.Label(ref noApic);

        (byte Port, byte Value)[] init =
        [
            (0x20, 0x11), (0x21, 0x20), (0x21, 0x04), (0x21, 0x01), (0x21, 0xFE), // master: ICW1-4 (vectors 0x20-0x27), unmask IRQ0 only
            (0xA0, 0x11), (0xA1, 0x28), (0xA1, 0x02), (0xA1, 0x01), (0xA1, 0xFF), // slave: ICW1-4, all masked
            (0x43, 0x34), (0x40, (byte)(PitDivisor & 0xFF)), (0x40, (byte)(PitDivisor >> 8)), // ch0, lo/hi, mode 2
        ];
        foreach ((byte port, byte value) in init)
        {
            a.mov(al, value);
            a.@out(port, al);
        }

        a.Label(ref wait);
        a.cli();
        a.mov(eax, g.Var(0));
        a.cmp(eax, TimerInterrupts);
        a.jae(done);
        a.sti();
        a.hlt(); // STI's shadow: the interrupt cannot slip in between STI and HLT
        a.jmp(wait);
        a.Label(ref done);
        a.mov(eax, TimerInterrupts);
    }

    /// <summary>The IRQ0 handler for <see cref="EmitTimer"/> (32-bit code).</summary>
    public static void EmitTimerHandler(Assembler a)
    {
        ArgumentNullException.ThrowIfNull(a);
        a.push(eax);
        a.inc(__dword_ptr[GuestAsm.DataBase + GuestAsm.VarArea]);
        a.mov(al, 0x20); // non-specific EOI
        a.@out(0x20, al);
        a.pop(eax);
        a.iretd();
    }

    // ---- paging: a 2 MiB region of 4 KiB pages mapped to scattered frames, touched with a stride, CR3 reloads ----

    /// <summary>
    /// Emits (64-bit only): build a page table mapping <see cref="ScatterVirtualBase"/> + i * 4 KiB to frame
    /// 2 MiB + ((i * 167) mod 512) * 4 KiB, zero the frames, run <paramref name="passes"/> passes of
    /// <see cref="TouchesPerPass"/> read-modify-write dword touches through the mapping (reloading CR3 every
    /// <see cref="TouchesPerCr3Reload"/> touches), then fold the frames in physical order into EAX.
    /// </summary>
    public static void EmitPaging(GuestAsm g, int passes)
    {
        if (g.Mode != GuestMode.Long64)
        {
            throw new ArgumentException("The paging workload is 64-bit code.", nameof(g));
        }

        Assembler a = g.A;
        Label pte = a.CreateLabel(), pass = a.CreateLabel(), touch = a.CreateLabel(), noReload = a.CreateLabel(), fold = a.CreateLabel();
        const uint pt = FirmwareImage.SparePage0, pd = FirmwareImage.SparePage1;

        // PT entries (the spare pages are zeroed by the mode entry, so the upper dwords are already 0).
        a.xor(ecx, ecx);
        a.Label(ref pte);
        a.imul(eax, ecx, (int)PagePermutationMultiplier);
        a.and(eax, 511);
        a.shl(eax, 12);
        a.add(eax, (int)(ScatterPhysicalBase | 3));
        a.mov(__dword_ptr[rcx * 8 + (int)pt], eax);
        a.inc(ecx);
        a.cmp(ecx, 512);
        a.jb(pte);
        a.mov(__dword_ptr[pd], pt | 3);
        a.mov(__dword_ptr[FirmwareImage.Pdpt + 8], pd | 3);
        a.mov(rax, cr3);
        a.mov(cr3, rax);

        // Zero the 512 frames through the identity mapping.
        a.mov(edi, ScatterPhysicalBase);
        a.xor(eax, eax);
        a.mov(ecx, 512 * 4096 / 8);
        a.rep.stosq();

        a.xor(r14d, r14d); // pass
        a.Label(ref pass);
        a.imul(r13d, r14d, 68);
        a.and(r13d, 0xFFC); // start offset of the pass
        a.xor(r12d, r12d); // touch index
        a.Label(ref touch);
        a.imul(eax, r12d, (int)TouchStride);
        a.add(eax, r13d);
        a.and(eax, 0x1F_FFFC);
        a.mov(ecx, r12d);
        a.xor(ecx, r14d);
        a.add(__dword_ptr[rax + (int)ScatterVirtualBase], ecx);
        a.mov(eax, r12d);
        a.and(eax, TouchesPerCr3Reload - 1);
        a.cmp(eax, TouchesPerCr3Reload - 1);
        a.jne(noReload);
        a.mov(rax, cr3);
        a.mov(cr3, rax);
        a.Label(ref noReload);
        a.inc(r12d);
        a.cmp(r12d, TouchesPerPass);
        a.jb(touch);
        a.inc(r14d);
        a.cmp(r14d, passes);
        a.jb(pass);

        // Fold the frames in physical order: h = h * 31 + dword.
        a.mov(esi, ScatterPhysicalBase);
        a.mov(ecx, 512 * 4096 / 4);
        a.xor(eax, eax);
        a.Label(ref fold);
        a.imul(eax, eax, 31);
        a.add(eax, __dword_ptr[rsi]);
        a.add(rsi, 4);
        a.dec(ecx);
        a.jnz(fold);
    }

    /// <summary>The paging workload simulated on a host array standing for the 512 physical frames.</summary>
    public static uint ExpectedPaging(int passes)
    {
        var frames = new uint[512 * 4096 / 4];
        for (uint p = 0; p < (uint)passes; p++)
        {
            uint start = (p * 68) & 0xFFC;
            for (uint k = 0; k < TouchesPerPass; k++)
            {
                uint offset = unchecked((k * TouchStride) + start) & 0x1F_FFFC;
                uint page = offset >> 12;
                uint frame = (page * PagePermutationMultiplier) & 511;
                uint physical = (frame << 12) | (offset & 0xFFF);
                frames[physical / 4] = unchecked(frames[physical / 4] + (k ^ p));
            }
        }

        uint h = 0;
        foreach (uint v in frames)
        {
            h = unchecked((h * 31) + v);
        }

        return h;
    }
}
