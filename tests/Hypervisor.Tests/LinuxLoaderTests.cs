using System.Buffers.Binary;
using System.Text;
using Hypervisor.Core;
using Hypervisor.Core.Boot;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Devices.Acpi;
using Hypervisor.Hosting;
using Iced.Intel;
using Microsoft.Extensions.DependencyInjection;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Tests;

// The loader against the rules of Documentation/arch/x86/boot.rst and zero-page.rst (the expected values below are
// the protocol's, written out here), on synthetic bzImages small enough to build in the test.
public class LinuxLoaderTests
{
    private const ulong Mib = 1024 * 1024;

    /// <summary>A minimal bzImage: boot sector + 4 setup sectors with a 2.15 header, then <paramref name="payload"/>.</summary>
    internal static byte[] SyntheticBzImage(byte[] payload, ushort version = 0x020F, ushort xloadflags = 0x7F, uint initSize = 0x400000,
        ulong preferred = 0x1000000)
    {
        byte[] image = new byte[(5 * 512) + payload.Length];
        Span<byte> s = image;
        s[0x1F1] = 4; // setup_sects
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x1FE..], 0xAA55);
        s[0x200] = 0xEB; // jmp short
        s[0x201] = 0x6A; // header ends at 0x26C
        "HdrS"u8.CopyTo(s[0x202..]);
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x206..], version);
        s[0x211] = 0x01; // LOADED_HIGH
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x22C..], 0x7FFF_FFFF); // initrd_addr_max
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x230..], 0x20_0000); // kernel_alignment
        s[0x234] = 1; // relocatable_kernel
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x236..], xloadflags);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x238..], 0x7FF); // cmdline_size
        BinaryPrimitives.WriteUInt64LittleEndian(s[0x258..], preferred); // pref_address
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x260..], initSize); // init_size
        payload.CopyTo(s[(5 * 512)..]);
        return image;
    }

    private static byte[] Newc() => Encoding.ASCII.GetBytes("070701" + new string('0', 104));

    [Test]
    public void RejectsWhatIsNotABzImage()
    {
        Assert.That(() => LinuxSetupHeader.Parse(new byte[100]), Throws.TypeOf<GuestImageException>().With.Message.Contains("Not a Linux bzImage"));
        byte[] elf = new byte[0x4000];
        Encoding.Latin1.GetBytes("\x7F" + "ELF").CopyTo(elf, 0);
        Assert.That(() => LinuxSetupHeader.Parse(elf), Throws.TypeOf<GuestImageException>().With.Message.Contains("HdrS"));
    }

    [Test]
    public void RejectsProtocolsOlderThan212AndKernelsWithout64BitEntry()
    {
        byte[] old = SyntheticBzImage(new byte[512], version: 0x020B);
        Assert.That(() => LinuxSetupHeader.Parse(old), Throws.TypeOf<GuestImageException>().With.Message.Contains("2.11").And.Message.Contains("2.12"));
        byte[] no64 = SyntheticBzImage(new byte[512], xloadflags: 0);
        Assert.That(() => LinuxSetupHeader.Parse(no64), Throws.TypeOf<GuestImageException>().With.Message.Contains("XLF_KERNEL_64"));
        byte[] zimage = SyntheticBzImage(new byte[512]);
        zimage[0x211] = 0;
        Assert.That(() => LinuxSetupHeader.Parse(zimage), Throws.TypeOf<GuestImageException>().With.Message.Contains("zImage"));
    }

    [Test]
    public void RejectsAKernelTooLargeForMemoryAndBadInitramfs()
    {
        using var builder = new VirtualMachineBuilder();
        GuestMemoryLayout.AddRam(builder.Memory, 64 * Mib);
        // 70 MiB fits neither at pref_address (16 MiB) nor at the lowest aligned address (2 MiB) of a 64 MiB guest.
        byte[] huge = SyntheticBzImage(new byte[512], initSize: (uint)(70 * Mib));
        Assert.That(() => LinuxLoader.Load(builder.Memory, new LinuxBootOptions { Kernel = huge }),
            Throws.TypeOf<GuestImageException>().With.Message.Contains("more memory"));

        byte[] kernel = SyntheticBzImage(new byte[512]);
        Assert.That(() => LinuxLoader.Load(builder.Memory, new LinuxBootOptions { Kernel = kernel, Initrd = new byte[4096] }),
            Throws.TypeOf<GuestImageException>().With.Message.Contains("corrupt"));
        Assert.That(() => LinuxLoader.Load(builder.Memory, new LinuxBootOptions { Kernel = kernel, Initrd = Array.Empty<byte>() }),
            Throws.TypeOf<GuestImageException>().With.Message.Contains("empty"));
        byte[] tooBig = new byte[50 * Mib];
        Newc().CopyTo(tooBig, 0);
        Assert.That(() => LinuxLoader.Load(builder.Memory, new LinuxBootOptions { Kernel = kernel, Initrd = tooBig }),
            Throws.TypeOf<GuestImageException>().With.Message.Contains("does not fit"));
        Assert.That(() => LinuxLoader.Load(builder.Memory, new LinuxBootOptions { Kernel = kernel, CommandLine = new string('x', 0x800) }),
            Throws.TypeOf<GuestImageException>().With.Message.Contains("at most 2047"));
    }

    [Test]
    public void PlacesKernelInitramfsAndZeroPageAsTheProtocolRequires()
    {
        using var builder = new VirtualMachineBuilder();
        GuestMemoryLayout.AddRam(builder.Memory, 128 * Mib);
        byte[] payload = Enumerable.Range(0, 4096).Select(i => (byte)(i * 7)).ToArray();
        byte[] initrd = new byte[12345];
        Newc().CopyTo(initrd, 0);
        LinuxBootInfo info = LinuxLoader.Load(builder.Memory, new LinuxBootOptions
        {
            Kernel = SyntheticBzImage(payload), Initrd = initrd, CommandLine = "console=ttyS0 quiet",
        });
        MemoryMap m = builder.Memory;

        // Relocatable kernel at pref_address (16 MiB, a multiple of kernel_alignment); startup_64 at +0x200.
        Assert.That(info.KernelAddress.Value, Is.EqualTo(16 * Mib));
        Assert.That(info.EntryPoint.Value, Is.EqualTo((16 * Mib) + 0x200));
        Assert.That(Read(m, info.KernelAddress.Value, payload.Length), Is.EqualTo(payload));

        byte[] zp = Read(m, info.BootParams.Value, 4096);
        Assert.That(Encoding.ASCII.GetString(zp, 0x202, 4), Is.EqualTo("HdrS"));
        Assert.That(zp[0x210], Is.EqualTo(0xFF), "type_of_loader: undefined");
        uint cmdline = BinaryPrimitives.ReadUInt32LittleEndian(zp.AsSpan(0x228));
        Assert.That(Encoding.ASCII.GetString(Read(m, cmdline, 20)), Is.EqualTo("console=ttyS0 quiet\0"));
        uint ramdisk = BinaryPrimitives.ReadUInt32LittleEndian(zp.AsSpan(0x218));
        uint ramdiskSize = BinaryPrimitives.ReadUInt32LittleEndian(zp.AsSpan(0x21C));
        Assert.That(ramdiskSize, Is.EqualTo(initrd.Length));
        Assert.That(ramdisk % 4096, Is.Zero, "page aligned");
        Assert.That(ramdisk, Is.GreaterThanOrEqualTo((16 * Mib) + 0x400000), "above the kernel's init_size");
        Assert.That((ulong)ramdisk + ramdiskSize, Is.LessThanOrEqualTo(128 * Mib), "inside RAM");
        Assert.That(Read(m, ramdisk, initrd.Length), Is.EqualTo(initrd));

        // The e820 table: 0-640K usable, the legacy option-ROM window reserved, 1 MiB-128 MiB usable.
        Assert.That(zp[0x1E8], Is.EqualTo(3));
        var table = Enumerable.Range(0, 3).Select(i => (
            BinaryPrimitives.ReadUInt64LittleEndian(zp.AsSpan(0x2D0 + (20 * i))),
            BinaryPrimitives.ReadUInt64LittleEndian(zp.AsSpan(0x2D8 + (20 * i))),
            BinaryPrimitives.ReadUInt32LittleEndian(zp.AsSpan(0x2E0 + (20 * i))))).ToArray();
        Assert.That(table, Is.EqualTo(new[] { (0UL, 0xA0000UL, 1u), (0xC0000UL, 0x20000UL, 2u), (Mib, 127 * Mib, 1u) }));

        // Identity mapping of what the protocol names (kernel to init_size, zero page, command line), by a page walk
        // written from the SDM's 4-level paging rules (Vol. 3A, 4.5).
        foreach (ulong va in new[] { info.KernelAddress.Value, info.KernelAddress.Value + 0x3FFFFF, info.BootParams.Value, cmdline, (ulong)ramdisk })
        {
            Assert.That(Walk(m, LinuxLoader.Pml4Address, va), Is.EqualTo(va), $"0x{va:X} is identity-mapped");
        }

        // GDT: __BOOT_CS a present DPL-0 64-bit execute/read code segment, __BOOT_DS a flat read/write data segment.
        ulong cs = BinaryPrimitives.ReadUInt64LittleEndian(Read(m, LinuxLoader.GdtAddress + LinuxLoader.BootCodeSelector, 8));
        ulong ds = BinaryPrimitives.ReadUInt64LittleEndian(Read(m, LinuxLoader.GdtAddress + LinuxLoader.BootDataSelector, 8));
        Assert.That((cs >> 40) & 0xFF, Is.EqualTo(0x9Bu), "P, DPL 0, S, code execute/read accessed");
        Assert.That((cs >> 53) & 1, Is.EqualTo(1u), "L");
        Assert.That((ds >> 40) & 0xFF, Is.EqualTo(0x93u), "P, DPL 0, S, data read/write accessed");
        Assert.That(((ds & 0xFFFF) | ((ds >> 32) & 0xF0000)) << 12 | 0xFFF, Is.EqualTo(0xFFFF_FFFFUL), "4 GiB limit with G");
    }

    // The whole path on tcg: loader, entry state, ACPI tables, PM device.
    [Test]
    public void EntryStateIsWhatTheProtocolRequiresAndS5PowersOff()
    {
        var services = new ServiceCollection();
        services.AddHypervisor(o => o.Accelerator = "tcg").AddAllAccelerators();
        using ServiceProvider provider = services.BuildServiceProvider();
        var serial = new MemoryStream();
        using VirtualMachine vm = provider.GetRequiredService<IVirtualMachineFactory>().Create(new MachineRequest
        {
            Kernel = EntryStateKernel(),
            SerialOutput = serial,
        });
        MachineRunResult result = vm.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(30)));
        Assert.That(result.Reason, Is.EqualTo(MachineStopReason.PowerOff), $"{result.Reason}: {result.Detail}");
        Assert.That(result.ExitStatus, Is.Zero);
        Assert.That(Encoding.ASCII.GetString(serial.ToArray()), Is.EqualTo("64OK"));
        Assert.That(vm.GetDevice<AcpiPmDevice>()!.PoweredOff, Is.True);
    }

    [Test]
    public void TheCliBootsAKernelAndRejectsBadOnes()
    {
        string kernel = Path.Combine(Path.GetTempPath(), $"hv-kernel-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(kernel, EntryStateKernel());
        try
        {
            (int code, string stdout, string stderr) = Hv("run", "--accel", "tcg", "--kernel", kernel, "--append", "console=ttyS0");
            Assert.That((code, stdout), Is.EqualTo((0, "64OK")), stderr);
            Assert.That(stderr, Does.Contain("guest powered off"));
            (code, _, stderr) = Hv("run", "--accel", "tcg", "--kernel", typeof(LinuxLoaderTests).Assembly.Location);
            Assert.That(code, Is.EqualTo(66));
            Assert.That(stderr, Does.Contain("Not a Linux bzImage"));
            (code, _, stderr) = Hv("run", "--accel", "tcg", "--initrd", kernel);
            Assert.That(code, Is.EqualTo(64));
            Assert.That(stderr, Does.Contain("need --kernel"));
        }
        finally
        {
            File.Delete(kernel);
        }
    }

    private static (int Code, string Stdout, string Stderr) Hv(params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "hv.dll"));
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = System.Diagnostics.Process.Start(psi)!;
        p.StandardInput.Close();
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            p.Kill(entireProcessTree: true);
        }

        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>
    /// A synthetic "kernel" whose startup_64 checks the entry state (64-bit mode, __BOOT_CS/__BOOT_DS, IF clear,
    /// RSI pointing at "HdrS"), prints "64OK" on COM1 and powers off through the ACPI PM1a control block with the \_S5
    /// sleep type (or writes 1 to isa-debug-exit when a check fails).
    /// </summary>
    private static byte[] EntryStateKernel()
    {
        var a = new Assembler(64);
        Label fail = a.CreateLabel(), print = a.CreateLabel();
        a.mov(ax, cs);
        a.cmp(ax, LinuxLoader.BootCodeSelector);
        a.jne(fail);
        a.mov(ax, ds);
        a.cmp(ax, LinuxLoader.BootDataSelector);
        a.jne(fail);
        a.mov(ax, ss);
        a.cmp(ax, LinuxLoader.BootDataSelector);
        a.jne(fail);
        a.pushfq();
        a.pop(rax);
        a.test(eax, 0x200);
        a.jnz(fail);
        a.mov(eax, __dword_ptr[rsi + 0x202]);
        a.cmp(eax, 0x53726448); // "HdrS"
        a.jne(fail);
        a.mov(rax, 0x3634_4F4B_0000_0000UL); // only a 64-bit register keeps the high half
        a.shr(rax, 32);
        a.mov(ecx, 4);
        a.Label(ref print);
        a.mov(dx, 0x3F8);
        a.rol(eax, 8);
        a.@out(dx, al);
        a.dec(ecx);
        a.jnz(print);
        a.mov(dx, AcpiPmDevice.DefaultPort + AcpiPmDevice.ControlOffset);
        a.mov(ax, (AcpiTables.S5SleepType << 10) | AcpiPmDevice.SleepEnable);
        a.@out(dx, ax);
        a.hlt();
        a.Label(ref fail);
        a.mov(dx, 0x501);
        a.mov(al, 1);
        a.@out(dx, al);
        a.hlt();
        var writer = new CodeWriterImpl();
        a.Assemble(writer, (16 * Mib) + 0x200);
        return SyntheticBzImage(new byte[0x200].Concat(writer.Bytes).ToArray());
    }

    [Test]
    public void AcpiTablesChecksumAndPointAtEachOther()
    {
        byte[] block = AcpiTables.Build(new AcpiTableOptions { IncludeMadt = true });
        ulong b = AcpiTables.DefaultBaseAddress;
        Assert.That(Encoding.ASCII.GetString(block, 0, 8), Is.EqualTo("RSD PTR "));
        Assert.That(Sum(block.AsSpan(0, 20)), Is.Zero, "RSDP checksum (ACPI 5.2.5.3)");
        Assert.That(Sum(block.AsSpan(0, 36)), Is.Zero, "RSDP extended checksum");
        int xsdt = (int)(BinaryPrimitives.ReadUInt64LittleEndian(block.AsSpan(24)) - b);
        int rsdt = (int)(BinaryPrimitives.ReadUInt32LittleEndian(block.AsSpan(16)) - b);
        var signatures = new List<string>();
        foreach ((int table, int entrySize) in new[] { (rsdt, 4), (xsdt, 8) })
        {
            int length = BinaryPrimitives.ReadInt32LittleEndian(block.AsSpan(table + 4));
            Assert.That(Sum(block.AsSpan(table, length)), Is.Zero);
            for (int o = 36; o < length; o += entrySize)
            {
                int t = (int)((entrySize == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(block.AsSpan(table + o)) : BinaryPrimitives.ReadUInt64LittleEndian(block.AsSpan(table + o))) - b);
                Assert.That(Sum(block.AsSpan(t, BinaryPrimitives.ReadInt32LittleEndian(block.AsSpan(t + 4)))), Is.Zero);
                signatures.Add(Encoding.ASCII.GetString(block, t, 4));
            }
        }

        Assert.That(signatures, Is.EqualTo(new[] { "FACP", "APIC", "FACP", "APIC" }));
        int fadt = (int)(BinaryPrimitives.ReadUInt32LittleEndian(block.AsSpan(rsdt + 36)) - b);
        int dsdt = (int)(BinaryPrimitives.ReadUInt32LittleEndian(block.AsSpan(fadt + 40)) - b);
        int facs = (int)(BinaryPrimitives.ReadUInt32LittleEndian(block.AsSpan(fadt + 36)) - b);
        Assert.That(Encoding.ASCII.GetString(block, dsdt, 4), Is.EqualTo("DSDT"));
        Assert.That(Sum(block.AsSpan(dsdt, BinaryPrimitives.ReadInt32LittleEndian(block.AsSpan(dsdt + 4)))), Is.Zero);
        Assert.That(Encoding.ASCII.GetString(block, facs, 4), Is.EqualTo("FACS"));
        Assert.That((b + (ulong)facs) % 64, Is.Zero, "FACS is 64-byte aligned (ACPI 5.2.10)");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(block.AsSpan(fadt + 64)), Is.EqualTo(AcpiPmDevice.DefaultPort + AcpiPmDevice.ControlOffset), "PM1a_CNT_BLK");
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(255)]
    public void MadtListsEveryProcessorAndFitsBesideTheHpetTable(int processors)
    {
        // ACPI 6.5, 5.2.12: one Processor Local APIC structure (type 0, length 8) per processor with UID = APIC ID = its
        // index and the Enabled flag, then the I/O APIC (type 1, ID 0) and the IRQ 0 -> GSI 2 override (type 2).
        byte[] block = AcpiTables.Build(new AcpiTableOptions
        {
            IncludeMadt = true,
            ProcessorCount = processors,
            Hpet = new AcpiHpetDescription(0x8086_A201, 0xFED0_0000),
        });
        ulong b = AcpiTables.DefaultBaseAddress;
        int rsdt = (int)(BinaryPrimitives.ReadUInt32LittleEndian(block.AsSpan(16)) - b);
        int[] tables = Enumerable.Range(0, (BinaryPrimitives.ReadInt32LittleEndian(block.AsSpan(rsdt + 4)) - 36) / 4)
            .Select(i => (int)(BinaryPrimitives.ReadUInt32LittleEndian(block.AsSpan(rsdt + 36 + (4 * i))) - b)).ToArray();
        int madt = tables.Single(t => Encoding.ASCII.GetString(block, t, 4) == "APIC");
        int hpet = tables.Single(t => Encoding.ASCII.GetString(block, t, 4) == "HPET");
        int length = BinaryPrimitives.ReadInt32LittleEndian(block.AsSpan(madt + 4));
        Assert.That(Sum(block.AsSpan(madt, length)), Is.Zero);
        Assert.That(Sum(block.AsSpan(hpet, BinaryPrimitives.ReadInt32LittleEndian(block.AsSpan(hpet + 4)))), Is.Zero);
        Assert.That(madt + length <= AcpiTables.BlockSize && (hpet + AcpiTables.HpetTableLength <= madt || madt + length <= hpet), Is.True, "the tables overlap or overflow the block");

        var entries = new List<(byte Type, byte A, byte B, uint Flags)>();
        for (int o = madt + 44; o < madt + length; o += block[o + 1])
        {
            entries.Add((block[o], block[o + 2], block[o + 3], block[o] == 0 ? BinaryPrimitives.ReadUInt32LittleEndian(block.AsSpan(o + 4)) : 0));
        }

        var expected = Enumerable.Range(0, processors).Select(i => ((byte)0, (byte)i, (byte)i, 1u)).ToList();
        expected.Add((1, 0, 0, 0)); // I/O APIC ID 0 (byte 3 is reserved)
        expected.Add((2, 0, 0, 0)); // ISA bus 0, source IRQ 0
        Assert.That(entries, Is.EqualTo(expected));
    }

    [Test]
    public void MoreThanOneProcessorNeedsAMadtAndAtMost255()
    {
        Assert.That(() => AcpiTables.Build(new AcpiTableOptions { ProcessorCount = 2 }), Throws.ArgumentException.With.Message.Contains("MADT"));
        Assert.That(() => AcpiTables.Build(new AcpiTableOptions { IncludeMadt = true, ProcessorCount = 256 }), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => AcpiTables.Build(new AcpiTableOptions { IncludeMadt = true, ProcessorCount = 0 }), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    private static byte Sum(ReadOnlySpan<byte> data)
    {
        int sum = 0;
        foreach (byte x in data)
        {
            sum += x;
        }

        return (byte)sum;
    }

    private static byte[] Read(MemoryMap m, ulong address, int length)
    {
        byte[] data = new byte[length];
        m.Read(new GuestAddress(address), data);
        return data;
    }

    private static ulong Walk(MemoryMap m, ulong cr3, ulong va)
    {
        ulong table = cr3 & ~0xFFFUL;
        for (int level = 3; level >= 0; level--)
        {
            int index = (int)((va >> (12 + (9 * level))) & 0x1FF);
            ulong entry = BinaryPrimitives.ReadUInt64LittleEndian(Read(m, table + ((ulong)index * 8), 8));
            if ((entry & 1) == 0)
            {
                return ulong.MaxValue;
            }

            ulong frame = entry & 0x000F_FFFF_FFFF_F000UL;
            if (level is 1 or 2 && (entry & 0x80) != 0)
            {
                ulong pageSize = 1UL << (12 + (9 * level));
                return (frame & ~(pageSize - 1)) | (va & (pageSize - 1));
            }

            table = frame;
        }

        return table | (va & 0xFFF);
    }

    private sealed class CodeWriterImpl : CodeWriter
    {
        public List<byte> Bytes { get; } = [];

        public override void WriteByte(byte value) => Bytes.Add(value);
    }
}
