using Hypervisor.Accel.Tcg.Interpreter;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using Iced.Intel;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Accel.Tcg.Tests.System;

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

    public TestMachine(ulong ramSize = RamSize, Action<MemoryMap>? addRegions = null, IInterruptSource? interrupts = null)
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
        Vm = new TcgAccelerator().CreateVm(new VmCreationContext(Memory, Ports, interrupts, AcceleratorOptions.Empty,
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

    public void Dispose()
    {
        Vm.Dispose();
        Memory.Dispose();
    }
}
