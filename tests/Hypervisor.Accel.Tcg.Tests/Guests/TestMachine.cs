using Hypervisor.Accel.Tcg.Interpreter;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using Iced.Intel;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Accel.Tcg.Tests.Guests;

/// <summary>A port device that records every access (the test's view of OUT/IN).</summary>
internal sealed class RecordingPort(uint readValue = 0) : IPortDevice
{
    public List<(ushort Offset, int Size, uint Value)> Writes { get; } = [];

    public int Reads { get; private set; }

    public string Text => new(Writes.Select(w => (char)(w.Value & 0xFF)).ToArray());

    public uint Read(ushort offset, int size)
    {
        Reads++;
        return readValue + offset;
    }

    public void Write(ushort offset, int size, uint value) => Writes.Add((offset, size, value));
}

/// <summary>A small machine for CPU tests: RAM at 0, the tcg accelerator created directly, and one vCPU.</summary>
internal sealed class TestMachine : IDisposable
{
    public const ulong RamSize = 4 * 1024 * 1024;

    public TestMachine(ulong ramSize = RamSize, Action<MemoryMap>? addRegions = null, IInterruptSource? interrupts = null,
        AcceleratorOptions? options = null)
    {
        IoLock = new IoLock();
        Memory = new MemoryMap(IoLock);
        Ports = new PortIoBus(IoLock);
        Memory.AddRam(GuestAddress.Zero, ramSize, "ram");
        addRegions?.Invoke(Memory);
        Serial = new RecordingPort();
        Exit = new RecordingPort();
        Ports.Register(0x3F8, 1, Serial, "serial");
        Ports.Register(0x501, 2, Exit, "exit");
        Memory.Freeze();
        Vm = new TcgAccelerator().CreateVm(new VmCreationContext(Memory, Ports, interrupts, options ?? AcceleratorOptions.Empty,
            NullLoggerFactory.Instance));
        Vcpu = Vm.CreateVcpu(0);
    }

    public IoLock IoLock { get; }

    public MemoryMap Memory { get; }

    public PortIoBus Ports { get; }

    public RecordingPort Serial { get; }

    public RecordingPort Exit { get; }

    public IAcceleratorVm Vm { get; }

    public IVcpu Vcpu { get; }

    internal TcgCpu Cpu => (TcgCpu)Vcpu;

    /// <summary>Assembles code for <paramref name="bitness"/> at <paramref name="address"/> and writes it to RAM.</summary>
    public ulong Load(int bitness, ulong address, Action<Assembler> body)
    {
        byte[] code = Assemble(bitness, address, body);
        Memory.Write(new GuestAddress(address), code);
        return address + (ulong)code.Length;
    }

    public static byte[] Assemble(int bitness, ulong address, Action<Assembler> body)
    {
        var a = new Assembler(bitness);
        body(a);
        using var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), address);
        return ms.ToArray();
    }

    /// <summary>The address of instruction number <paramref name="index"/> from <paramref name="start"/>, as Iced's decoder sees it.</summary>
    public static ulong InstructionAddress(TestMachine m, int bitness, ulong start, int index)
    {
        byte[] code = new byte[index * 15 + 15];
        m.Memory.Read(new GuestAddress(start), code);
        var decoder = Decoder.Create(bitness, new ByteArrayCodeReader(code), start);
        for (int i = 0; i < index; i++)
        {
            decoder.Decode();
        }

        return decoder.IP;
    }

    public void WriteQword(ulong address, ulong value) => Memory.Write(new GuestAddress(address), BitConverter.GetBytes(value));

    public void WriteDword(ulong address, uint value) => Memory.Write(new GuestAddress(address), BitConverter.GetBytes(value));

    public ulong ReadQword(ulong address)
    {
        Span<byte> b = stackalloc byte[8];
        Memory.Read(new GuestAddress(address), b);
        return BitConverter.ToUInt64(b);
    }

    /// <summary>Starts real-mode execution at 0:<paramref name="ip"/> with SS:SP = 0:0x7000.</summary>
    public void StartReal(ushort ip)
    {
        SystemRegisters s = ResetState.System();
        s.Cs = new SegmentRegister(0, 0, 0xFFFF, 0xB, true, 0, false, true, false, false, false, false);
        Vcpu.SetSystemRegisters(s);
        GeneralRegisters g = ResetState.General();
        g.Rip = ip;
        g.Rsp = 0x7000;
        Vcpu.SetGeneralRegisters(g);
    }

    /// <summary>Starts flat 32-bit protected mode (CPL 0, no paging) at <paramref name="eip"/>.</summary>
    public void StartProtected32(uint eip, uint esp = 0x9_0000)
    {
        SystemRegisters s = ResetState.System();
        s.Cr0 = 0x11; // PE, ET
        s.Cs = Flat(0x08, code: true, longMode: false);
        s.Ds = s.Es = s.Fs = s.Gs = s.Ss = Flat(0x10, code: false, longMode: false);
        s.Gdt = new DescriptorTableRegister(GdtBase, 0x2F);
        WriteStandardGdt();
        Vcpu.SetSystemRegisters(s);
        GeneralRegisters g = default;
        g.Rip = eip;
        g.Rsp = esp;
        g.Rflags = 2;
        Vcpu.SetGeneralRegisters(g);
    }

    public const ulong GdtBase = 0x500;

    /// <summary>GDT: 0 null, 0x08 code32, 0x10 data, 0x18 code64, 0x20 user code32 (DPL3), 0x28 user data (DPL3), 0x30 user code64.</summary>
    public void WriteStandardGdt()
    {
        ulong[] gdt =
        [
            0,
            0x00CF_9A00_0000_FFFF,
            0x00CF_9200_0000_FFFF,
            0x00AF_9A00_0000_FFFF,
            0x00CF_FA00_0000_FFFF,
            0x00CF_F200_0000_FFFF,
            0x00AF_FA00_0000_FFFF,
        ];
        for (int i = 0; i < gdt.Length; i++)
        {
            WriteQword(GdtBase + (ulong)i * 8, gdt[i]);
        }
    }

    public static SegmentRegister Flat(ushort selector, bool code, bool longMode, byte dpl = 0) =>
        new((ushort)(selector | dpl), 0, 0xFFFF_FFFF, (byte)(code ? 0xB : 0x3), true, dpl, !longMode, true, longMode && code,
            true, false, false);

    public VcpuExit Run(long limit = 1_000_000) => Vcpu.Run(limit);

    public const ulong Pml4 = 0x20000, Pdpt = 0x21000, Pd = 0x22000, Pt = 0x23000, IdtBase = 0x1000, TssBase = 0x3000;

    /// <summary>
    /// Starts 64-bit mode at <paramref name="rip"/>, CPL 0, interrupts off: 4-level paging where 0-2 MiB is mapped
    /// with 4 KiB pages (PT at 0x23000, flags P|RW|US), 2-4 MiB with one 2 MiB page, IDT at 0x1000 (empty, limit
    /// 0xFFF), 64-bit TSS at 0x3000, GDT from <see cref="WriteStandardGdt"/> plus the TSS descriptor at 0x38.
    /// </summary>
    public void StartLong64(ulong rip, ulong rsp = 0x7_F000)
    {
        WriteStandardGdt();
        // 64-bit available TSS descriptor (type 9) at selector 0x38, limit 0x67.
        WriteQword(GdtBase + 0x38, 0x0000_8900_0000_0067UL | ((TssBase & 0xFF_FFFF) << 16));
        WriteQword(GdtBase + 0x40, 0);
        WriteQword(Pml4, Pdpt | 7);
        WriteQword(Pdpt, Pd | 7);
        WriteQword(Pd, Pt | 7);
        WriteQword(Pd + 8, 0x20_0000 | 0x87);
        for (ulong i = 0; i < 512; i++)
        {
            WriteQword(Pt + i * 8, (i << 12) | 7);
        }

        SystemRegisters s = ResetState.System();
        s.Cr0 = 0x8000_0011;
        s.Cr3 = Pml4;
        s.Cr4 = 0x20;
        s.Efer = 0x500;
        s.Cs = Flat(0x18, code: true, longMode: true);
        s.Ds = s.Es = s.Fs = s.Gs = s.Ss = Flat(0x10, code: false, longMode: false);
        s.Gdt = new DescriptorTableRegister(GdtBase, 0x47);
        s.Idt = new DescriptorTableRegister(IdtBase, 0xFFF);
        s.Tr = new SegmentRegister(0x38, TssBase, 0x67, 0xB, true, 0, false, false, false, false, false, false);
        Vcpu.SetSystemRegisters(s);
        GeneralRegisters g = default;
        g.Rip = rip;
        g.Rsp = rsp;
        g.Rflags = 2;
        Vcpu.SetGeneralRegisters(g);
    }

    /// <summary>Writes a 64-bit IDT gate (SDM Vol. 3A, Figure 6-8): interrupt gate (0xE) or trap gate (0xF).</summary>
    public void SetGate64(int vector, ulong handler, int dpl = 0, int ist = 0, bool trap = false, ushort selector = 0x18)
    {
        ulong type = trap ? 0xFUL : 0xEUL;
        ulong lo = (handler & 0xFFFF) | ((ulong)selector << 16) | ((ulong)ist << 32) | (type << 40) | ((ulong)dpl << 45) |
                   (1UL << 47) | ((handler & 0xFFFF_0000) << 32);
        WriteQword(IdtBase + (ulong)vector * 16, lo);
        WriteQword(IdtBase + (ulong)vector * 16 + 8, handler >> 32);
    }

    /// <summary>Writes a 32-bit IDT gate (SDM Vol. 3A, Figure 6-2).</summary>
    public void SetGate32(int vector, uint handler, int dpl = 0, bool trap = false, ushort selector = 0x08)
    {
        ulong type = trap ? 0xFUL : 0xEUL;
        ulong g = (handler & 0xFFFFUL) | ((ulong)selector << 16) | (type << 40) | ((ulong)dpl << 45) | (1UL << 47) |
                  ((ulong)(handler & 0xFFFF_0000) << 32);
        WriteQword(IdtBase + (ulong)vector * 8, g);
    }

    public void Dispose()
    {
        Vm.Dispose();
        Memory.Dispose();
    }
}
