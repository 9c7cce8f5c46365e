using System.Text;
using Hypervisor.Guests;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Tests.Guests;

/// <summary>The CPU mode a test guest's body runs in.</summary>
public enum GuestMode
{
    /// <summary>Real mode, CS = 0xF000, DS = ES = SS = 0 (interrupts through the IVT at 0).</summary>
    Real,

    /// <summary>32-bit protected mode, flat segments (code 0x08, data 0x10), no paging.</summary>
    Protected,

    /// <summary>64-bit long mode (code 0x18), the first 2 MiB identity-mapped with one large page.</summary>
    Long,
}

/// <summary>
/// Builds 64 KiB firmware images for device tests, as <c>qemu-system-x86_64 -bios</c> takes them: the reset vector
/// jumps to F000:0000; for <see cref="GuestMode.Protected"/> and <see cref="GuestMode.Long"/> a fixed stub switches
/// modes first (GDT in ROM with accessed bits preset, like the demo guest). The body is emitted by the test with
/// <see cref="Assembler"/> plus the helpers here (COM1 printing, PIC/PIT programming, interrupt vectors, exit).
/// </summary>
/// <remarks>
/// Layout in the image (its copy below 1 MiB starts at 0xF0000): real-mode code at 0x0000, protected-mode code at
/// 0x1000, long-mode code from 0x2000, GDT at 0xFF00, reset vector at 0xFFF0. RAM used: the stack below 0x7000,
/// scratch variables from 0x500, the IDT at 0x8000, page tables at 0x10000.
/// </remarks>
internal sealed class PcGuest
{
    public const int ImageSize = 0x10000;
    public const uint LowBase = 0xF0000;
    public const ushort Com1 = 0x3F8;
    public const ushort DebugExitPort = 0x501;

    /// <summary>Scratch RAM for guest variables (16-bit counter at +0, flags after it).</summary>
    public const uint Variables = 0x500;

    private const int ProtectedOffset = 0x1000;
    private const int LongOffset = 0x2000;
    private const int GdtOffset = 0xFF00;
    private const int GdtPointerOffset = 0xFF40;
    private const uint IdtBase = 0x8000;
    private const uint IdtPointer = 0x7F00;
    private const uint PageTables = 0x10000;

    private readonly List<(Label Label, byte[] Bytes)> _strings = [];
    private Label _print, _putChar, _printDecimal, _printTwoDigits;

    private readonly List<ulong> _addressed = [];
    private readonly Dictionary<ulong, Label> _marked = [];
    private readonly List<ulong>? _addresses;

    private PcGuest(GuestMode mode, List<ulong>? addresses)
    {
        Mode = mode;
        _addresses = addresses;
        A = new Assembler(mode switch { GuestMode.Real => 16, GuestMode.Protected => 32, _ => 64 });
        _print = A.CreateLabel("print");
        _putChar = A.CreateLabel("putChar");
        _printDecimal = A.CreateLabel("printDecimal");
        _printTwoDigits = A.CreateLabel("printTwoDigits");
    }

    /// <summary>
    /// In long mode: maps 0xFEC00000-0xFEFFFFFF uncached (I/O APIC, HPET, local APIC: two 2 MiB pages) through PDPT
    /// entry 3, with a page directory at 0x13000, and reloads CR3.
    /// </summary>
    public static void MapHighMmioPages(Assembler a)
    {
        const uint highPageDirectory = 0x13000;
        a.mov(edi, highPageDirectory);
        a.xor(eax, eax);
        a.mov(ecx, 1024);
        a.rep.stosd();
        a.mov(__dword_ptr[PageTables + 0x1000 + (3 * 8)], highPageDirectory + 3);
        a.mov(__dword_ptr[highPageDirectory + (0x1F6 * 8)], unchecked((int)(0xFEC0_0000u | 0x9B)));
        a.mov(__dword_ptr[highPageDirectory + (0x1F7 * 8)], unchecked((int)(0xFEE0_0000u | 0x9B)));
        a.mov(rax, cr3);
        a.mov(cr3, rax);
    }

    /// <summary>
    /// CLI; compare; STI;HLT (STI's shadow covers HLT) until the dword at <paramref name="counter"/> reaches
    /// <paramref name="target"/>. Handlers that return with IF clear make it exactly one interrupt per HLT.
    /// </summary>
    public static void WaitForCount(Assembler a, uint counter, int target)
    {
        Label loop = a.CreateLabel(), done = a.CreateLabel();
        a.Label(ref loop);
        a.cli();
        a.cmp(__dword_ptr[counter], target);
        a.jae(done);
        a.sti();
        a.hlt();
        a.jmp(loop);
        a.Label(ref done);
    }

    public GuestMode Mode { get; }

    public Assembler A { get; }

    /// <summary>Builds an image whose body (in <paramref name="mode"/>, after COM1 is initialised) is <paramref name="body"/>.</summary>
    public static byte[] Build(GuestMode mode, Action<PcGuest> body)
    {
        var image = new byte[ImageSize];
        int bodyOffset = mode switch { GuestMode.Real => 0, GuestMode.Protected => ProtectedOffset, _ => LongOffset };

        // Real-mode code is assembled at IP 0 of segment F000; the others at their linear address.
        ulong ip = mode == GuestMode.Real ? 0 : LowBase + (uint)bodyOffset;

        // Two passes: Iced addresses labels only RIP-relatively, which 16- and 32-bit code lacks, so the first pass
        // learns the addresses that LoadAddress moves as fixed-size immediates in the second.
        var first = new PcGuest(mode, null);
        first.Prologue();
        body(first);
        first.Epilogue();
        AssemblerResult firstResult = AssembleWithLabels(first.A, ip, out _);
        var addresses = first._addressed.Select(id => firstResult.GetLabelRIP(first._marked[id])).ToList();

        var guest = new PcGuest(mode, addresses);
        guest.Prologue();
        body(guest);
        guest.Epilogue();
        AssembleWithLabels(guest.A, ip, out byte[] code);
        // A protected-mode body may also use the long-mode stub's space, which only long-mode images need.
        int limit = mode switch { GuestMode.Real => ProtectedOffset, _ => GdtOffset };
        if (bodyOffset + code.Length > limit)
        {
            throw new InvalidOperationException($"The {mode} guest body is too large ({code.Length} bytes).");
        }

        code.CopyTo(image, bodyOffset);
        if (mode != GuestMode.Real)
        {
            RealModeSwitch().CopyTo(image, 0);
        }

        if (mode == GuestMode.Long)
        {
            ProtectedModeSwitch().CopyTo(image, ProtectedOffset);
        }

        FirmwareSkeleton.WriteFlatGdt(image, GdtOffset, GdtPointerOffset, LowBase);
        FirmwareSkeleton.WriteResetJump(image);
        return image;
    }

    /// <summary>Loads the address of <paramref name="label"/> (its offset in segment F000 in real mode) into SI/ESI/RSI.</summary>
    public void LoadAddressSi(Label label)
    {
        switch (Mode)
        {
            case GuestMode.Real:
                A.mov(si, (ushort)NextAddress(label));
                break;
            case GuestMode.Protected:
                A.mov(esi, (uint)NextAddress(label));
                break;
            default:
                A.lea(rsi, __[label]);
                break;
        }
    }

    /// <summary>Loads the address of <paramref name="label"/> (its offset in segment F000 in real mode) into AX/EAX/RAX.</summary>
    public void LoadAddressAx(Label label)
    {
        switch (Mode)
        {
            case GuestMode.Real:
                A.mov(ax, (ushort)NextAddress(label));
                break;
            case GuestMode.Protected:
                A.mov(eax, (uint)NextAddress(label));
                break;
            default:
                A.lea(rax, __[label]);
                break;
        }
    }

    /// <summary>
    /// Binds <paramref name="label"/> to the next instruction, like <see cref="Assembler.Label"/>; labels passed to
    /// <see cref="SetVector"/> or the LoadAddress methods must be bound through here.
    /// </summary>
    public void Mark(ref Label label)
    {
        A.Label(ref label);
        _marked[label.Id] = label;
    }

    private ulong NextAddress(Label label)
    {
        int index = _addressed.Count;
        _addressed.Add(label.Id);
        return _addresses is null ? 0 : _addresses[index];
    }

    /// <summary>Writes <paramref name="value"/> to <paramref name="port"/> (clobbers AL, DX).</summary>
    public void Out(ushort port, byte value)
    {
        A.mov(dx, port);
        A.mov(al, value);
        A.@out(dx, al);
    }

    /// <summary>Reads <paramref name="port"/> into AL (clobbers DX).</summary>
    public void In(ushort port)
    {
        A.mov(dx, port);
        A.@in(al, dx);
    }

    /// <summary>Prints <paramref name="text"/> (Latin-1) on COM1, polling LSR.THRE (clobbers AX, DX, the SI register).</summary>
    public void Print(string text)
    {
        Label s = A.CreateLabel();
        _strings.Add((s, [.. Encoding.Latin1.GetBytes(text), 0]));
        LoadAddressSi(s);
        A.call(_print);
    }

    /// <summary>Prints AL (0-255) in decimal without leading zeros (clobbers AX, BX, CX, DX).</summary>
    public void PrintDecimalAl() => A.call(_printDecimal);

    /// <summary>Prints AL (0-99) as exactly two decimal digits (clobbers AX, BX, DX).</summary>
    public void PrintTwoDigitsAl() => A.call(_printTwoDigits);

    /// <summary>Sends AL to COM1 once THRE is set (clobbers AH, DX).</summary>
    public void PutCharAl() => A.call(_putChar);

    /// <summary>
    /// Initialises both PICs (ICW1 edge/cascade/ICW4, ICW2 vector bases 0x20 and 0x28, ICW3 cascade on IRQ 2,
    /// ICW4 8086 mode) and sets their masks.
    /// </summary>
    public void ProgramPic(byte masterMask, byte slaveMask)
    {
        Out(0x20, 0x11);
        Out(0x21, 0x20);
        Out(0x21, 0x04);
        Out(0x21, 0x01);
        Out(0xA0, 0x11);
        Out(0xA1, 0x28);
        Out(0xA1, 0x02);
        Out(0xA1, 0x01);
        Out(0x21, masterMask);
        Out(0xA1, slaveMask);
    }

    /// <summary>
    /// Programs PIT channel 0: lobyte/hibyte access, <paramref name="pitMode"/> (2 rate generator, 3 square wave),
    /// binary, <paramref name="divisor"/>.
    /// </summary>
    public void ProgramPitChannel0(ushort divisor, int pitMode = 2)
    {
        Out(0x43, (byte)(0x30 | (pitMode << 1)));
        Out(0x40, (byte)divisor);
        Out(0x40, (byte)(divisor >> 8));
    }

    /// <summary>Points interrupt <paramref name="vector"/> at <paramref name="handler"/> (clobbers EAX/RAX).</summary>
    /// <remarks>Protected and long mode: gates go into an IDT at 0x8000; call <see cref="LoadIdt"/> once afterwards.</remarks>
    public void SetVector(int vector, Label handler)
    {
        switch (Mode)
        {
            case GuestMode.Real:
                LoadAddressAx(handler);
                A.mov(__word_ptr[vector * 4], ax);
                A.mov(__word_ptr[(vector * 4) + 2], 0xF000);
                break;
            case GuestMode.Protected:
            {
                // 32-bit interrupt gate (SDM Vol. 3A 6.11): offset 15:0, selector, 0x8E00 (P, DPL 0, type 0xE), offset 31:16.
                uint gate = IdtBase + (uint)(vector * 8);
                LoadAddressAx(handler);
                A.mov(__word_ptr[gate], ax);
                A.mov(__word_ptr[gate + 2], 0x08);
                A.mov(__word_ptr[gate + 4], 0x8E00);
                A.shr(eax, 16);
                A.mov(__word_ptr[gate + 6], ax);
                break;
            }

            default:
            {
                // 64-bit interrupt gate (SDM Vol. 3A 6.14.1): 16 bytes, offset 63:32 in the third dword.
                uint gate = IdtBase + (uint)(vector * 16);
                LoadAddressAx(handler);
                A.mov(__word_ptr[gate], ax);
                A.mov(__word_ptr[gate + 2], 0x18);
                A.mov(__word_ptr[gate + 4], 0x8E00);
                A.shr(rax, 16);
                A.mov(__word_ptr[gate + 6], ax);
                A.shr(rax, 16);
                A.mov(__dword_ptr[gate + 8], eax);
                A.mov(__dword_ptr[gate + 12], 0);
                break;
            }
        }
    }

    /// <summary>Loads IDTR with the table at 0x8000 covering vectors 0-255 (protected and long mode only).</summary>
    public void LoadIdt()
    {
        if (Mode == GuestMode.Real)
        {
            return;
        }

        A.mov(__word_ptr[IdtPointer], Mode == GuestMode.Long ? (256 * 16) - 1 : (256 * 8) - 1);
        A.mov(__dword_ptr[IdtPointer + 2], IdtBase);
        A.mov(__dword_ptr[IdtPointer + 6], 0);
        A.lidt(__[IdtPointer]);
    }

    /// <summary>Returns from an interrupt handler with the mode's IRET.</summary>
    public void Iret()
    {
        switch (Mode)
        {
            case GuestMode.Real:
                A.iret();
                break;
            case GuestMode.Protected:
                A.iretd();
                break;
            default:
                A.iretq();
                break;
        }
    }

    /// <summary>Writes <paramref name="value"/> to isa-debug-exit (status (value &lt;&lt; 1) | 1), then halts forever.</summary>
    public void Exit(byte value)
    {
        Label halt = A.CreateLabel();
        A.cli();
        Out(DebugExitPort, value);
        A.Label(ref halt);
        A.hlt();
        A.jmp(halt);
    }

    private void Prologue()
    {
        A.cli();
        A.cld();
        switch (Mode)
        {
            case GuestMode.Real:
                A.xor(ax, ax);
                A.mov(ds, ax);
                A.mov(es, ax);
                A.mov(ss, ax);
                A.mov(sp, 0x7000);
                break;
            case GuestMode.Protected:
                A.mov(ax, 0x10);
                A.mov(ds, ax);
                A.mov(es, ax);
                A.mov(ss, ax);
                A.mov(esp, 0x7000);
                break;
            default:
                A.mov(ax, 0x10);
                A.mov(ds, ax);
                A.mov(es, ax);
                A.mov(ss, ax);
                A.mov(rsp, 0x7000);
                break;
        }

        // COM1: 115200 8N1, FIFOs on (trigger level 1), DTR and RTS; interrupts off until a guest enables them.
        (ushort Port, byte Value)[] writes = [(Com1 + 1, 0x00), (Com1 + 3, 0x80), (Com1, 0x01), (Com1 + 1, 0x00), (Com1 + 3, 0x03), (Com1 + 2, 0x07), (Com1 + 4, 0x03)];
        foreach ((ushort port, byte value) in writes)
        {
            Out(port, value);
        }
    }

    private void Epilogue()
    {
        // print: zero-terminated string at (E/R)SI. In real mode the strings are in the ROM segment, so DS = CS here.
        Label loop = A.CreateLabel(), done = A.CreateLabel();
        A.Label(ref _print);
        if (Mode == GuestMode.Real)
        {
            A.push(ds);
            A.push(cs);
            A.pop(ds);
            A.Label(ref loop);
        }
        else
        {
            loop = _print;
        }

        A.lodsb();
        A.test(al, al);
        A.jz(done);
        A.call(_putChar);
        A.jmp(loop);
        A.Label(ref done);
        if (Mode == GuestMode.Real)
        {
            A.pop(ds);
        }

        A.ret();

        // putChar: AL to THR once LSR.THRE (bit 5) is set; clobbers AH and DX.
        Label wait = A.CreateLabel();
        A.Label(ref _putChar);
        A.mov(ah, al);
        A.Label(ref wait);
        A.mov(dx, Com1 + 5);
        A.@in(al, dx);
        A.test(al, 0x20);
        A.jz(wait);
        A.mov(al, ah);
        A.mov(dx, Com1);
        A.@out(dx, al);
        A.ret();

        // printDecimal: AL (0-255) without leading zeros; BH counts digits printed so far.
        Label noHundreds = A.CreateLabel(), noTens = A.CreateLabel(), tens = A.CreateLabel();
        A.Label(ref _printDecimal);
        A.movzx(ax, al);
        A.mov(bl, 100);
        A.div(bl);
        A.mov(cl, ah);
        A.xor(bh, bh);
        A.test(al, al);
        A.jz(noHundreds);
        A.add(al, (byte)'0');
        A.call(_putChar);
        A.inc(bh);
        A.Label(ref noHundreds);
        A.movzx(ax, cl);
        A.mov(bl, 10);
        A.div(bl);
        A.mov(cl, ah);
        A.test(bh, bh);
        A.jnz(tens);
        A.test(al, al);
        A.jz(noTens);
        A.Label(ref tens);
        A.add(al, (byte)'0');
        A.call(_putChar);
        A.Label(ref noTens);
        A.mov(al, cl);
        A.add(al, (byte)'0');
        A.call(_putChar);
        A.ret();

        // printTwoDigits: AL (0-99) as two digits.
        A.Label(ref _printTwoDigits);
        A.movzx(ax, al);
        A.mov(bl, 10);
        A.div(bl);
        A.mov(bh, ah);
        A.add(al, (byte)'0');
        A.call(_putChar);
        A.mov(al, bh);
        A.add(al, (byte)'0');
        A.call(_putChar);
        A.ret();

        foreach ((Label label, byte[] bytes) in _strings)
        {
            Label l = label;
            Mark(ref l);
            A.db(bytes);
        }
    }

    // Real mode at F000:0000: load the GDT and enter protected mode at 0x08:LowBase+ProtectedOffset.
    private static byte[] RealModeSwitch()
    {
        var a = new Assembler(16);
        a.cli();
        a.mov(ax, 0xF000);
        a.mov(ds, ax);
        a.lgdt(__[GdtPointerOffset]);
        a.mov(eax, cr0);
        a.or(eax, 1);
        a.mov(cr0, eax);
        a.db(0x66, 0xEA); // jmp dword 0x08:offset
        a.dd(LowBase + ProtectedOffset);
        a.dw(0x08);
        return Assemble(a, 0);
    }

    // Protected mode: identity-map the first 2 MiB (PML4 -> PDPT -> one 2 MiB page), PAE, EFER.LME, paging, far jump.
    private static byte[] ProtectedModeSwitch()
    {
        var a = new Assembler(32);
        a.mov(ax, 0x10);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(edi, PageTables);
        a.xor(eax, eax);
        a.mov(ecx, 3 * 1024);
        a.rep.stosd();
        a.mov(__dword_ptr[PageTables], PageTables + 0x1000 + 3);
        a.mov(__dword_ptr[PageTables + 0x1000], PageTables + 0x2000 + 3);
        a.mov(__dword_ptr[PageTables + 0x2000], 0x83);
        a.mov(eax, cr4);
        a.or(eax, 0x20);
        a.mov(cr4, eax);
        a.mov(eax, PageTables);
        a.mov(cr3, eax);
        a.mov(ecx, 0xC000_0080);
        a.rdmsr();
        a.or(eax, 0x100);
        a.wrmsr();
        a.mov(eax, cr0);
        a.or(eax, unchecked((int)0x8000_0000));
        a.mov(cr0, eax);
        a.db(0xEA);
        a.dd(LowBase + LongOffset);
        a.dw(0x18);
        return Assemble(a, LowBase + ProtectedOffset);
    }

    private static AssemblerResult AssembleWithLabels(Assembler a, ulong ip, out byte[] code)
    {
        using var stream = new MemoryStream();
        AssemblerResult result = a.Assemble(new StreamCodeWriter(stream), ip, BlockEncoderOptions.ReturnNewInstructionOffsets);
        code = stream.ToArray();
        return result;
    }

    private static byte[] Assemble(Assembler a, ulong ip)
    {
        using var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), ip);
        return stream.ToArray();
    }
}
