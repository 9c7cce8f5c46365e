using Hypervisor.Guests;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Benchmarks.Workloads;

/// <summary>
/// Builds 64 KiB firmware images (guest-contract.md: mapped to end at 4 GiB, the image also at 0xF0000) that start at
/// the reset vector, enter the mode a workload needs, run its body, print EAX as eight lower-case hex digits and CR LF
/// on COM1 and write 0 to isa-debug-exit (QEMU's exit status 1).
/// </summary>
public static class FirmwareImage
{
    /// <summary>The image size.</summary>
    public const int ImageSize = 64 * 1024;

    /// <summary>The port of COM1.</summary>
    public const ushort Com1 = 0x3F8;

    /// <summary>The port of isa-debug-exit.</summary>
    public const ushort DebugExitPort = 0x501;

    /// <summary>Page tables of the 64-bit entry: PML4, PDPT and a PD identity-mapping the first 1 GiB with 2 MiB pages.</summary>
    public const uint Pml4 = 0x10000, Pdpt = 0x11000, Pd = 0x12000;

    /// <summary>Two more zeroed page-table pages a workload may use (the paging workload's PT and PD).</summary>
    public const uint SparePage0 = 0x13000, SparePage1 = 0x14000;

    /// <summary>Where the image's low alias starts (segment F000 in real mode).</summary>
    public const uint LowBase = 0xF0000;
    private const int RealOffset = 0x0000, ProtectedOffset = 0x1000, LongOffset = 0x2000, SectionLimit = 0xD000;
    private const int GdtOffset = 0xFE00, GdtPointerOffset = 0xFE40;

    /// <summary>Offset in the image (and in segment F000 in real mode) of an optional fixed-position 16-bit routine.</summary>
    public const int FixedRoutineOffset = 0xF000;

    /// <summary>Builds an image whose body (leaving the checksum in EAX) runs in <paramref name="mode"/>.</summary>
    /// <param name="mode">The mode of the body.</param>
    /// <param name="body">Emits the body.</param>
    /// <param name="fixedRoutine">Optional code of the body's bitness placed at <see cref="FixedRoutineOffset"/> (an interrupt handler whose address the body needs).</param>
    public static byte[] Build(GuestMode mode, Action<GuestAsm> body, Action<Assembler>? fixedRoutine = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        var image = new byte[ImageSize];

        FirmwareSkeleton.WriteFlatGdt(image, GdtOffset, GdtPointerOffset, LowBase);
        FirmwareSkeleton.WriteResetJump(image);

        if (fixedRoutine is not null)
        {
            var r = new Assembler((int)mode);
            fixedRoutine(r);
            byte[] code = Assemble(r, mode == GuestMode.Real16 ? FixedRoutineOffset : LowBase + FixedRoutineOffset);
            if (code.Length > GdtOffset - FixedRoutineOffset)
            {
                throw new InvalidOperationException($"The fixed routine is too large ({code.Length} bytes).");
            }

            code.CopyTo(image, FixedRoutineOffset);
        }

        Place(image, RealOffset, RealMode(mode, body));
        if (mode != GuestMode.Real16)
        {
            Place(image, ProtectedOffset, ProtectedMode(mode, body));
        }

        if (mode == GuestMode.Long64)
        {
            Place(image, LongOffset, LongMode(body));
        }

        return image;
    }

    /// <summary>An image that prints <paramref name="text"/> right after the reset vector (real mode) and exits.</summary>
    public static byte[] BuildPrintAndExit(string text)
    {
        var image = new byte[ImageSize];
        FirmwareSkeleton.WriteResetJump(image);
        var a = new Assembler(16);
        foreach (char c in text)
        {
            PutChar(a, (byte)c);
        }

        Exit(a);
        Place(image, RealOffset, Assemble(a, 0));
        return image;
    }

    private static byte[] RealMode(GuestMode mode, Action<GuestAsm> body)
    {
        var a = new Assembler(16);
        a.cli();
        a.cld();
        a.xor(ax, ax);
        a.mov(ss, ax);
        a.mov(sp, 0x7000);
        a.mov(ax, 0xF000);
        a.mov(ds, ax);
        if (mode == GuestMode.Real16)
        {
            a.mov(ax, (ushort)(GuestAsm.DataBase >> 4));
            a.mov(ds, ax);
            a.mov(es, ax);
            body(new GuestAsm(a, mode));
            PrintHexAndExit(a);
        }
        else
        {
            a.lgdt(__[GdtPointerOffset]);
            a.mov(eax, cr0);
            a.or(eax, 1);
            a.mov(cr0, eax);
            a.db(0x66, 0xEA); // jmp dword 0x08:LowBase+ProtectedOffset
            a.dd(LowBase + ProtectedOffset);
            a.dw(0x08);
        }

        return Assemble(a, RealOffset);
    }

    private static byte[] ProtectedMode(GuestMode mode, Action<GuestAsm> body)
    {
        var a = new Assembler(32);
        a.mov(ax, 0x10);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(fs, ax);
        a.mov(gs, ax);
        a.mov(ss, ax);
        a.mov(esp, 0x7000);
        if (mode == GuestMode.Protected32)
        {
            body(new GuestAsm(a, mode));
            PrintHexAndExit(a);
            return Assemble(a, LowBase + ProtectedOffset);
        }

        // Zero PML4, PDPT, PD and the two spare pages; identity-map 1 GiB with 2 MiB pages.
        Label pd = a.CreateLabel();
        a.mov(edi, Pml4);
        a.xor(eax, eax);
        a.mov(ecx, 5 * 1024);
        a.rep.stosd();
        a.mov(__dword_ptr[Pml4], Pdpt | 3);
        a.mov(__dword_ptr[Pdpt], Pd | 3);
        a.xor(ecx, ecx);
        a.Label(ref pd);
        a.mov(eax, ecx);
        a.shl(eax, 21);
        a.or(eax, 0x83); // present, writable, 2 MiB page
        a.mov(__dword_ptr[ecx * 8 + (int)Pd], eax);
        a.inc(ecx);
        a.cmp(ecx, 512);
        a.jb(pd);
        a.mov(eax, cr4);
        a.or(eax, 0x20); // CR4.PAE
        a.mov(cr4, eax);
        a.mov(eax, Pml4);
        a.mov(cr3, eax);
        a.mov(ecx, 0xC000_0080); // IA32_EFER
        a.rdmsr();
        a.or(eax, 0x100); // EFER.LME
        a.wrmsr();
        a.mov(eax, cr0);
        a.or(eax, unchecked((int)0x8000_0000)); // CR0.PG: long mode becomes active
        a.mov(cr0, eax);
        a.db(0xEA);
        a.dd(LowBase + LongOffset);
        a.dw(0x18);
        return Assemble(a, LowBase + ProtectedOffset);
    }

    private static byte[] LongMode(Action<GuestAsm> body)
    {
        var a = new Assembler(64);
        a.mov(ax, 0x10);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(rsp, 0x7000);
        body(new GuestAsm(a, GuestMode.Long64));
        PrintHexAndExit(a);
        return Assemble(a, LowBase + LongOffset);
    }

    // EAX as eight lower-case hex digits, CR LF, then isa-debug-exit with 0. Uses EBP, ECX, EDX, AX.
    private static void PrintHexAndExit(Assembler a)
    {
        Label digit = a.CreateLabel(), letterDone = a.CreateLabel();
        a.mov(ebp, eax);
        a.mov(ecx, 8);
        a.Label(ref digit);
        a.rol(ebp, 4);
        a.mov(eax, ebp);
        a.and(eax, 0xF);
        a.cmp(eax, 10);
        a.jb(letterDone);
        a.add(eax, 'a' - '0' - 10);
        a.Label(ref letterDone);
        a.add(eax, '0');
        a.mov(ah, al);
        PutAh(a);
        a.dec(ecx);
        a.jnz(digit);
        PutChar(a, (byte)'\r');
        PutChar(a, (byte)'\n');
        Exit(a);
    }

    private static void PutChar(Assembler a, byte c)
    {
        a.mov(ah, c);
        PutAh(a);
    }

    // AH to COM1 once LSR.THRE (bit 5) says the transmitter holding register is empty.
    private static void PutAh(Assembler a)
    {
        Label wait = a.CreateLabel();
        a.mov(dx, (ushort)(Com1 + 5));
        a.Label(ref wait);
        a.@in(al, dx);
        a.test(al, 0x20);
        a.jz(wait);
        a.mov(al, ah);
        a.mov(dx, Com1);
        a.@out(dx, al);
    }

    private static void Exit(Assembler a)
    {
        Label halt = a.CreateLabel();
        a.mov(dx, DebugExitPort);
        a.mov(al, 0);
        a.@out(dx, al);
        a.Label(ref halt);
        a.cli();
        a.hlt();
        a.jmp(halt);
    }

    private static void Place(byte[] image, int offset, byte[] code)
    {
        if (code.Length > (offset == LongOffset ? SectionLimit : 0x1000))
        {
            throw new InvalidOperationException($"Section at 0x{offset:X} is too large ({code.Length} bytes).");
        }

        code.CopyTo(image, offset);
    }

    private static byte[] Assemble(Assembler a, ulong ip)
    {
        using var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), ip);
        return stream.ToArray();
    }
}
