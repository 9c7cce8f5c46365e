// Direct boot of a Linux x86-64 bzImage through the 64-bit boot protocol (Documentation/arch/x86/boot.rst, "64-bit
// BOOT PROTOCOL"), the way qemu -kernel with a 64-bit entry, Firecracker and Cloud Hypervisor start Linux:
//
//   0x00500  GDT: null, null, __BOOT_CS (0x10, 64-bit code), __BOOT_DS (0x18, flat data)
//   0x07000  boot_params, the "zero page" (Documentation/arch/x86/zero-page.rst)
//   0x08FF0  initial stack (the kernel sets up its own at once)
//   0x09000  PML4, 0x0A000 PDPT, 0x0B000-0x0EFFF four page directories: 0-4 GiB identity-mapped with 2 MiB pages
//   0x20000  command line (up to 64 KiB)
//   pref_address (or the first kernel_alignment boundary at or above 1 MiB): the protected-mode kernel, init_size bytes
//   top of RAM below min(4 GiB, initrd_addr_max): the initramfs, page aligned
//
// Entry: 64-bit mode, paging on, CS = __BOOT_CS, DS = ES = SS = __BOOT_DS, interrupts off, RSI = boot_params,
// RIP = load address + 0x200 (startup_64).
using System.Buffers.Binary;
using System.Text;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;

namespace Hypervisor.Core.Boot;

/// <summary>Loads a bzImage, its initramfs and command line into guest memory and sets the 64-bit entry state.</summary>
public static class LinuxLoader
{
    /// <summary>The GDT's guest-physical address.</summary>
    public const ulong GdtAddress = 0x500;

    /// <summary>Where boot_params (the zero page) goes.</summary>
    public const ulong BootParamsAddress = 0x7000;

    /// <summary>The initial stack pointer.</summary>
    public const ulong StackPointer = 0x8FF0;

    /// <summary>The PML4 of the identity map (CR3).</summary>
    public const ulong Pml4Address = 0x9000;

    /// <summary>Where the command line goes.</summary>
    public const ulong CommandLineAddress = 0x20000;

    /// <summary>__BOOT_CS: the selector the 64-bit protocol requires for the code segment.</summary>
    public const ushort BootCodeSelector = 0x10;

    /// <summary>__BOOT_DS: the selector the 64-bit protocol requires for the data segments.</summary>
    public const ushort BootDataSelector = 0x18;

    private const ulong PdptAddress = 0xA000;
    private const ulong PageDirectoryAddress = 0xB000;
    private const int MaxCommandLineBytes = 0x10000;
    private const int MaxE820EntriesInZeroPage = 128;
    private const ulong FourGiB = 0x1_0000_0000;

    /// <summary>
    /// Validates the kernel and initramfs and writes the kernel, initramfs, command line, boot_params, GDT and page
    /// tables into <paramref name="memory"/> (which must already hold the machine's RAM and BIOS-area regions, since
    /// the e820 map is built from it).
    /// </summary>
    /// <returns>Where everything went and the entry point; pass it to <see cref="SetEntryState"/>.</returns>
    /// <exception cref="GuestImageException">
    /// Not a bzImage, protocol older than 2.12, no 64-bit entry, too large for the guest's memory, a command line too
    /// long or not ASCII, or an initramfs that is empty, in no format the kernel unpacks, or does not fit.
    /// </exception>
    public static LinuxBootInfo Load(IMemoryMap memory, LinuxBootOptions options)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(options);
        ReadOnlySpan<byte> image = options.Kernel.Span;
        LinuxSetupHeader header = LinuxSetupHeader.Parse(image);

        byte[] commandLine = EncodeCommandLine(options.CommandLine, header);
        RequireRam(memory, new GuestAddress(0), 0x30000, "the boot structures (GDT, boot_params, page tables, command line)");

        ulong loadAddress = ChooseLoadAddress(memory, header);
        ulong kernelEnd = loadAddress + header.InitSize;

        ulong initrdAddress = 0, initrdSize = 0;
        if (options.Initrd is { } initrdMemory)
        {
            ReadOnlySpan<byte> initrd = initrdMemory.Span;
            InitramfsFormat.Validate(initrd);
            initrdSize = (ulong)initrd.Length;
            initrdAddress = ChooseInitrdAddress(memory, header, loadAddress, kernelEnd, initrdSize);
        }

        IReadOnlyList<E820Entry> e820 = E820Entry.FromMemoryMap(memory);
        if (e820.Count > MaxE820EntriesInZeroPage)
        {
            throw new GuestImageException($"The memory map has {e820.Count} ranges; boot_params holds {MaxE820EntriesInZeroPage}.");
        }

        memory.Write(new GuestAddress(loadAddress), image[header.KernelOffset..]);
        if (options.Initrd is { } toCopy)
        {
            memory.Write(new GuestAddress(initrdAddress), toCopy.Span);
        }

        memory.Write(new GuestAddress(CommandLineAddress), commandLine);
        memory.Write(new GuestAddress(BootParamsAddress),
            BuildBootParams(image, header, loadAddress, initrdAddress, initrdSize, e820));
        memory.Write(new GuestAddress(GdtAddress), BuildGdt());
        memory.Write(new GuestAddress(Pml4Address), BuildPageTables());

        return new LinuxBootInfo(header, new GuestAddress(loadAddress), new GuestAddress(loadAddress + 0x200),
            new GuestAddress(BootParamsAddress), new GuestAddress(CommandLineAddress),
            initrdSize == 0 ? null : new GuestAddress(initrdAddress), initrdSize, e820);
    }

    /// <summary>
    /// Puts <paramref name="vcpu"/> into the state the 64-bit boot protocol requires: long mode with the identity map,
    /// the boot GDT with CS = __BOOT_CS and DS = ES = SS = __BOOT_DS, interrupts off, RSI = boot_params, RIP at startup_64.
    /// </summary>
    /// <remarks>Call from the thread that owns the vCPU, before the machine runs.</remarks>
    public static void SetEntryState(IVcpu vcpu, LinuxBootInfo info)
    {
        ArgumentNullException.ThrowIfNull(vcpu);
        ArgumentNullException.ThrowIfNull(info);
        SystemRegisters s = vcpu.GetSystemRegisters();
        var code = new SegmentRegister(BootCodeSelector, 0, 0xFFFF_FFFF, 0xB, true, 0, false, true, true, true, false, false);
        var data = new SegmentRegister(BootDataSelector, 0, 0xFFFF_FFFF, 0x3, true, 0, true, true, false, true, false, false);
        s.Cs = code;
        s.Ds = s.Es = s.Ss = s.Fs = s.Gs = data;
        // A 64-bit busy TSS and an unusable LDT: what hardware virtualization requires of TR/LDTR in long mode.
        s.Tr = new SegmentRegister(0, 0, 0xFFFF, 0xB, true, 0, false, false, false, false, false, false);
        s.Ldt = new SegmentRegister(0, 0, 0xFFFF, 0x2, true, 0, false, false, false, false, false, true);
        s.Gdt = new DescriptorTableRegister(GdtAddress, 4 * 8 - 1);
        s.Idt = new DescriptorTableRegister(0, 0);
        s.Cr0 = 0x8000_0011; // PG | ET | PE
        s.Cr3 = Pml4Address;
        s.Cr4 = 0x20; // PAE
        s.Efer = 0x500; // LMA | LME
        vcpu.SetSystemRegisters(s);

        var g = new GeneralRegisters
        {
            Rip = info.EntryPoint.Value,
            Rsi = info.BootParams.Value,
            Rsp = StackPointer,
            Rflags = 0x2, // IF clear
        };
        vcpu.SetGeneralRegisters(g);
    }

    private static byte[] EncodeCommandLine(string commandLine, LinuxSetupHeader header)
    {
        ArgumentNullException.ThrowIfNull(commandLine);
        foreach (char c in commandLine)
        {
            if (c is < ' ' or > '~')
            {
                throw new GuestImageException($"The kernel command line must be printable ASCII; it contains U+{(int)c:X4}.");
            }
        }

        int max = (int)Math.Min(header.CommandLineSize, MaxCommandLineBytes - 1);
        if (commandLine.Length > max)
        {
            throw new GuestImageException($"The kernel command line has {commandLine.Length} bytes; this kernel accepts at most {max}.");
        }

        byte[] bytes = new byte[commandLine.Length + 1];
        Encoding.ASCII.GetBytes(commandLine, bytes);
        return bytes;
    }

    private static void RequireRam(IMemoryMap memory, GuestAddress start, ulong size, string what)
    {
        MemoryRegion? region = memory.FindRegion(start);
        if (region is null || region.Kind != MemoryRegionKind.Ram || region.End.Value - start.Value < size)
        {
            throw new GuestImageException($"The guest has no RAM for {what} at {start} (0x{size:X} bytes).");
        }
    }

    private static ulong ChooseLoadAddress(IMemoryMap memory, LinuxSetupHeader header)
    {
        ulong address = header.PreferredAddress;
        if (header.Relocatable && !Fits(memory, address, header.InitSize))
        {
            ulong align = header.KernelAlignment;
            address = (0x100000 + align - 1) & ~(align - 1);
        }

        if (!Fits(memory, address, header.InitSize) || address + header.InitSize > FourGiB)
        {
            MemoryRegion? ram = memory.FindRegion(new GuestAddress(0x100000));
            ulong available = ram is { Kind: MemoryRegionKind.Ram } ? ram.End.Value : 0;
            throw new GuestImageException(
                $"The kernel needs 0x{header.InitSize:X} bytes of RAM from 0x{address:X} (init_size) but the guest's RAM " +
                $"below 4 GiB ends at 0x{available:X}: give the machine more memory.");
        }

        return address;
    }

    private static bool Fits(IMemoryMap memory, ulong address, ulong size)
    {
        MemoryRegion? region = memory.FindRegion(new GuestAddress(address));
        return region is { Kind: MemoryRegionKind.Ram } && region.End.Value - address >= size;
    }

    private static ulong ChooseInitrdAddress(IMemoryMap memory, LinuxSetupHeader header, ulong kernelStart, ulong kernelEnd, ulong size)
    {
        MemoryRegion ram = memory.FindRegion(new GuestAddress(kernelStart))!;
        ulong top = Math.Min(ram.End.Value, (ulong)header.InitrdAddressMax + 1);
        if (size > top || ((top - size) & ~0xFFFUL) < kernelEnd)
        {
            throw new GuestImageException(
                $"The initramfs of {size} bytes does not fit between the kernel's end (0x{kernelEnd:X}) and 0x{top:X} " +
                "(the end of RAM or the kernel's initrd_addr_max): give the machine more memory or use a smaller initramfs.");
        }

        return (top - size) & ~0xFFFUL;
    }

    private static byte[] BuildBootParams(ReadOnlySpan<byte> image, LinuxSetupHeader header, ulong loadAddress,
        ulong initrdAddress, ulong initrdSize, IReadOnlyList<E820Entry> e820)
    {
        // Offsets from Documentation/arch/x86/zero-page.rst and boot.rst.
        byte[] bp = new byte[4096];
        image.Slice(LinuxSetupHeader.HeaderOffset, header.HeaderLength).CopyTo(bp.AsSpan(LinuxSetupHeader.HeaderOffset));
        Span<byte> s = bp;
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x1FA..], 0xFFFF); // vid_mode: "normal"
        s[0x210] = 0xFF; // type_of_loader: undefined (no assigned id)
        s[0x211] = (byte)(header.LoadFlags & ~0x20); // loadflags; QUIET_FLAG clear
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x214..], (uint)loadAddress); // code32_start
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x218..], (uint)initrdAddress); // ramdisk_image
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x21C..], (uint)initrdSize); // ramdisk_size
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x228..], (uint)CommandLineAddress); // cmd_line_ptr
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x0C0..], (uint)(initrdAddress >> 32)); // ext_ramdisk_image
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x0C4..], (uint)(initrdSize >> 32)); // ext_ramdisk_size
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x0C8..], (uint)(CommandLineAddress >> 32)); // ext_cmd_line_ptr
        s[0x1E8] = (byte)e820.Count; // e820_entries
        for (int i = 0; i < e820.Count; i++)
        {
            Span<byte> entry = s.Slice(0x2D0 + (i * 20), 20);
            BinaryPrimitives.WriteUInt64LittleEndian(entry, e820[i].Start.Value);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[8..], e820[i].SizeInBytes);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[16..], (uint)e820[i].Type);
        }

        return bp;
    }

    private static byte[] BuildGdt()
    {
        byte[] gdt = new byte[32];
        // 0x10: 64-bit code, present, DPL 0, execute/read, G=1, L=1. 0x18: flat data, read/write, G=1, D/B=1.
        BinaryPrimitives.WriteUInt64LittleEndian(gdt.AsSpan(BootCodeSelector), 0x00AF_9B00_0000_FFFF);
        BinaryPrimitives.WriteUInt64LittleEndian(gdt.AsSpan(BootDataSelector), 0x00CF_9300_0000_FFFF);
        return gdt;
    }

    private static byte[] BuildPageTables()
    {
        // PML4[0] -> PDPT; PDPT[0..3] -> four page directories; each PD maps 1 GiB with 2 MiB pages (P | RW | PS).
        const ulong present = 1, writable = 2, large = 0x80;
        byte[] tables = new byte[(int)(PageDirectoryAddress + (4 * 0x1000) - Pml4Address)];
        Span<byte> t = tables;
        BinaryPrimitives.WriteUInt64LittleEndian(t, PdptAddress | present | writable);
        for (int i = 0; i < 4; i++)
        {
            ulong pd = PageDirectoryAddress + ((ulong)i * 0x1000);
            BinaryPrimitives.WriteUInt64LittleEndian(t[(int)(PdptAddress - Pml4Address + ((ulong)i * 8))..], pd | present | writable);
            for (int j = 0; j < 512; j++)
            {
                ulong physical = ((ulong)i << 30) | ((ulong)j << 21);
                BinaryPrimitives.WriteUInt64LittleEndian(t[(int)(pd - Pml4Address + ((ulong)j * 8))..], physical | present | writable | large);
            }
        }

        return tables;
    }
}

/// <summary>Where <see cref="LinuxLoader.Load"/> put the kernel and its data.</summary>
/// <param name="Header">The kernel's setup header.</param>
/// <param name="KernelAddress">The load address of the protected-mode kernel.</param>
/// <param name="EntryPoint">startup_64: the load address + 0x200.</param>
/// <param name="BootParams">The zero page (RSI at entry).</param>
/// <param name="CommandLine">The command line.</param>
/// <param name="Initrd">The initramfs, or null for none.</param>
/// <param name="InitrdSizeInBytes">The initramfs size (0 for none).</param>
/// <param name="E820">The memory map handed to the kernel.</param>
public sealed record LinuxBootInfo(
    LinuxSetupHeader Header,
    GuestAddress KernelAddress,
    GuestAddress EntryPoint,
    GuestAddress BootParams,
    GuestAddress CommandLine,
    GuestAddress? Initrd,
    ulong InitrdSizeInBytes,
    IReadOnlyList<E820Entry> E820);
