using System.Text;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Guests;

/// <summary>
/// The boot path every PC guest takes (Intel SDM Vol. 3A, 10.9 "Mode switching" and 10.8.5 "Initializing IA-32e
/// mode"): real mode, LGDT, CR0.PE, a far jump to 32-bit code, PAE paging with EFER.LME and CR0.PG, a far jump to a
/// 64-bit code segment, then serial output with OUT and a debug-exit write.
/// </summary>
public class ModeSwitchTests
{
    internal const string Message = "Hello from long mode\n";

    /// <summary>Writes the whole real → protected → long mode guest into <paramref name="m"/>; entry at 0:0x8000.</summary>
    internal static void LoadBootGuest(TestMachine m)
    {
        m.WriteStandardGdt();
        // GDTR image at 0x600: limit 0x37 (7 descriptors), base 0x500.
        m.Memory.Write(new GuestAddress(0x600), [0x37, 0x00, 0x00, 0x05, 0x00, 0x00]);
        m.Memory.Write(new GuestAddress(0xB000), Encoding.ASCII.GetBytes(Message + "\0"));

        m.Load(16, 0x8000, a =>
        {
            a.cli();
            a.xor(ax, ax);
            a.mov(ds, ax);
            a.lgdt(__[0x600]);
            a.mov(eax, cr0);
            a.or(eax, 1);
            a.mov(cr0, eax);
            a.jmp(0x08, 0x9000);
        });

        m.Load(32, 0x9000, a =>
        {
            a.mov(ax, 0x10);
            a.mov(ds, ax);
            a.mov(es, ax);
            a.mov(ss, ax);
            a.mov(esp, 0x9_0000);
            // PML4[0] -> PDPT at 0x11000 -> PD at 0x12000 whose entry 0 maps 2 MiB identity (PS).
            a.mov(__dword_ptr[0x10000], 0x11003);
            a.mov(__dword_ptr[0x10004], 0);
            a.mov(__dword_ptr[0x11000], 0x12003);
            a.mov(__dword_ptr[0x11004], 0);
            a.mov(__dword_ptr[0x12000], 0x83);
            a.mov(__dword_ptr[0x12004], 0);
            a.mov(eax, cr4);
            a.or(eax, 0x20); // PAE
            a.mov(cr4, eax);
            a.mov(eax, 0x10000);
            a.mov(cr3, eax);
            a.mov(ecx, 0xC000_0080); // IA32_EFER
            a.rdmsr();
            a.or(eax, 0x100); // LME
            a.wrmsr();
            a.mov(eax, cr0);
            a.or(eax, 0x8000_0000); // PG
            a.mov(cr0, eax);
            a.jmp(0x18, 0xA000);
        });

        m.Load(64, 0xA000, a =>
        {
            var loop = a.CreateLabel();
            var done = a.CreateLabel();
            a.mov(rsi, 0xB000);
            a.mov(dx, 0x3F8);
            a.Label(ref loop);
            a.lodsb();
            a.test(al, al);
            a.jz(done);
            a.@out(dx, al);
            a.jmp(loop);
            a.Label(ref done);
            a.mov(dx, 0x501);
            a.mov(al, 0x31);
            a.@out(dx, al);
            a.hlt();
        });
    }

    [Test]
    public void RealToProtectedToLongModeThenSerialAndDebugExit()
    {
        using var m = new TestMachine();
        LoadBootGuest(m);
        m.StartReal(0x8000);

        VcpuExit exit = m.Run();

        // HLT with IF=0 (CLI at the start) must stop with Halted, RIP after the HLT.
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        Assert.That(m.Serial.Text, Is.EqualTo(Message));
        Assert.That(m.Exit.Writes, Has.Count.EqualTo(1));
        Assert.That(m.Exit.Writes[0].Value, Is.EqualTo(0x31u));
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        // SDM 10.8.5: with CR0.PG set while EFER.LME=1, the processor sets EFER.LMA.
        Assert.That(s.Efer & 0x500, Is.EqualTo(0x500UL), "EFER.LME and EFER.LMA");
        Assert.That(s.Cs.Long, Is.True, "CS.L after the far jump to the 64-bit code segment");
        Assert.That(s.Cs.Selector, Is.EqualTo((ushort)0x18));
        Assert.That(s.Cr0 & 0x8000_0001, Is.EqualTo(0x8000_0001UL));
    }

    [Test]
    public void TheSameGuestRunsThroughTheMachineBuilderAndSelector()
    {
        using var builder = new VirtualMachineBuilder();
        GuestMemoryLayout.AddRam(builder.Memory, 16 * 1024 * 1024);
        var serial = new RecordingPort();
        builder.Ports.Register(0x3F8, 1, serial, "serial");
        builder.Ports.Register(0x501, 2, new DebugExitPort(builder.Control), "debug-exit");

        // A 64 KiB firmware whose reset vector (0xFFFF0) jumps to 0:0x8000 in RAM, where the boot guest lives.
        byte[] firmware = new byte[64 * 1024];
        byte[] jump = TestMachine.Assemble(16, 0xFFF0, a => a.jmp(0x0000, 0x8000));
        jump.CopyTo(firmware, 0xFFF0);
        GuestMemoryLayout.AddFirmware(builder.Memory, firmware);

        var selector = new Hypervisor.Core.Accelerators.AcceleratorSelector([new TcgAccelerator()]);
        using VirtualMachine vm = builder.Build(selector, selector.Parse("tcg"));
        using (var m = new GuestWriter(vm.Memory))
        {
            m.LoadBootGuest();
        }

        MachineRunResult result = vm.Run(new MachineRunOptions(TimeSpan.FromSeconds(30)));

        Assert.That(vm.AcceleratorName, Is.EqualTo("tcg"));
        Assert.That(result.Reason, Is.EqualTo(MachineStopReason.DebugExit), result.Detail);
        // isa-debug-exit semantics (guest-contract.md): status = (value << 1) | 1.
        Assert.That(result.ExitStatus, Is.EqualTo((0x31 << 1) | 1));
        Assert.That(serial.Text, Is.EqualTo(Message));
        Assert.That(result.Instructions, Is.GreaterThan(40));
    }

    /// <summary>isa-debug-exit as the guest contract defines it: a write of v stops the machine with status (v &lt;&lt; 1) | 1.</summary>
    private sealed class DebugExitPort(IMachineControl control) : Hypervisor.Core.Io.IPortDevice
    {
        public uint Read(ushort offset, int size) => 0xFFFF_FFFF;

        public void Write(ushort offset, int size, uint value) =>
            control.RequestStop(MachineStopReason.DebugExit, (int)((value << 1) | 1));
    }

    /// <summary>Loads the boot guest into a machine's memory (same layout as <see cref="LoadBootGuest"/>).</summary>
    private sealed class GuestWriter(IMemoryMap memory) : IDisposable
    {
        public void LoadBootGuest()
        {
            using var scratch = new TestMachine();
            ModeSwitchTests.LoadBootGuest(scratch);
            byte[] low = new byte[0x13000];
            scratch.Memory.Read(GuestAddress.Zero, low);
            memory.Write(GuestAddress.Zero, low);
        }

        public void Dispose()
        {
        }
    }
}
