using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.SystemGuests;

/// <summary>
/// 32-bit protected mode at CPL 0 with a GDT the test fills (at 0x10000), TR = 0x18 (task A, TSS at 0x20000), and an
/// IDT whose 32 exception vectors lead to stubs that record the vector, the error code, the saved EIP and TR, then
/// halt. Faults are read back with <see cref="Vector"/>, <see cref="ErrorCode"/>, <see cref="FaultEip"/> and
/// <see cref="FaultTr"/>.
/// </summary>
internal sealed class SystemHarness : IDisposable
{
    public const ulong Gdt = 0x10000, Idt = 0x11000, Stubs = 0x12000, Results = 0x13000;
    public const uint TssA = 0x20000, TssB = 0x20100, TssC = 0x20200;
    public const uint Code = 0x30000;

    private static readonly int[] ErrorVectors = [8, 10, 11, 12, 13, 14, 17];

    public SystemHarness(Hypervisor.Core.Io.IInterruptSource? interrupts = null, AcceleratorOptions? options = null)
    {
        M = new TestMachine(interrupts: interrupts, options: options);
        SetDescriptor(0x08, 0x00CF_9B00_0000_FFFF);
        SetDescriptor(0x10, 0x00CF_9300_0000_FFFF);
        SetDescriptor(0x18, Descriptor(TssA, 0x67, 0x8B, 0)); // task A, busy (TR)
        for (int v = 0; v < 32; v++)
        {
            ulong stub = Stubs + (ulong)(v * 64);
            M.Load(32, stub, a =>
            {
                a.push(0x10); // DS may be null (after a return to ring 3 or from virtual-8086 mode)
                a.pop(ds);
                a.mov(__dword_ptr[(uint)Results], v);
                if (Array.IndexOf(ErrorVectors, v) >= 0)
                {
                    a.pop(__dword_ptr[(uint)Results + 4]);
                }

                a.pop(__dword_ptr[(uint)Results + 8]);
                a.str(ax);
                a.mov(__word_ptr[(uint)Results + 12], ax);
                a.hlt();
            });
            SetGate(v, 0x8E00, (uint)stub);
        }

        M.WriteDword(Results, 0xFFFF_FFFF);
        M.WriteDword(Results + 4, 0xFFFF_FFFF);
        WriteTss32(TssA, Code, 0x9000);
    }

    public TestMachine M { get; }

    public int Vector => (int)M.ReadQword(Results);

    public uint ErrorCode => (uint)M.ReadQword(Results + 4);

    public uint FaultEip => (uint)M.ReadQword(Results + 8);

    public ushort FaultTr => (ushort)M.ReadQword(Results + 12);

    /// <summary>The EFLAGS image of the event a stub recorded (on the stack above the saved CS, same-privilege frames).</summary>
    public uint FaultEflags => (uint)M.ReadQword((uint)M.Vcpu.GetGeneralRegisters().Rsp + 4);

    public static ulong Descriptor(uint baseAddress, uint limit, byte access, byte flags) =>
        (limit & 0xFFFF) | ((ulong)(baseAddress & 0xFF_FFFF) << 16) | ((ulong)access << 40) |
        ((ulong)((limit >> 16) & 0xF) << 48) | ((ulong)(flags & 0xF) << 52) | ((ulong)(baseAddress >> 24) << 56);

    public static ulong TaskGate(ushort tss, int dpl = 0) => ((ulong)tss << 16) | ((ulong)(0x85 | (dpl << 5)) << 40);

    public void SetDescriptor(ushort selector, ulong descriptor) => M.WriteQword(Gdt + (ulong)(selector & 0xFFF8), descriptor);

    public ulong GetDescriptor(ushort selector) => M.ReadQword(Gdt + (ulong)(selector & 0xFFF8));

    /// <summary>Sets IDT entry <paramref name="vector"/>: <paramref name="typeBits"/> is bytes 4-5 (0x8E00 interrupt gate, 0xEE00 with DPL 3).</summary>
    public void SetGate(int vector, ushort typeBits, uint handler, ushort selector = 0x08) =>
        M.WriteQword(Idt + (ulong)(vector * 8), (handler & 0xFFFFUL) | ((ulong)selector << 16) | ((ulong)typeBits << 32) |
                                                ((ulong)(handler & 0xFFFF_0000) << 32));

    public void SetIdtEntry(int vector, ulong entry) => M.WriteQword(Idt + (ulong)(vector * 8), entry);

    /// <summary>A zeroed 32-bit TSS with EIP, ESP, EFLAGS 2, flat ring-0 segments and SS0:ESP0 = 0x10:0x8000.</summary>
    public void WriteTss32(uint tss, uint eip, uint esp, ushort cs = 0x08, ushort ss = 0x10, ushort ds = 0x10,
        uint eflags = 2, bool trap = false)
    {
        M.Memory.Write(new Core.Memory.GuestAddress(tss), new byte[0x68]);
        M.WriteDword(tss + 0x04, 0x8000);
        M.WriteDword(tss + 0x08, 0x10);
        M.WriteDword(tss + 0x20, eip);
        M.WriteDword(tss + 0x24, eflags);
        M.WriteDword(tss + 0x38, esp);
        M.WriteDword(tss + 0x48, ds);
        M.WriteDword(tss + 0x4C, cs);
        M.WriteDword(tss + 0x50, ss);
        M.WriteDword(tss + 0x54, ds);
        M.WriteDword(tss + 0x64, trap ? 1u : 0u);
    }

    /// <summary>Loads <paramref name="body"/> at <see cref="Code"/> and starts there with the harness's GDT, IDT and TR.</summary>
    public void Start(Action<Assembler> body, ulong cr4 = 0)
    {
        M.Load(32, Code, body);
        M.StartProtected32((uint)Code);
        SystemRegisters s = M.Vcpu.GetSystemRegisters();
        s.Gdt = new DescriptorTableRegister(Gdt, 0xFF);
        s.Idt = new DescriptorTableRegister(Idt, 0x7FF);
        s.Tr = SegmentRegister.FromAttributes(0x18, TssA, 0x67, 0x8B);
        s.Cr4 = cr4;
        M.Vcpu.SetSystemRegisters(s);
    }

    /// <summary>Runs until the guest halts (in a fault stub or at the end of the body).</summary>
    public VcpuExit Run()
    {
        VcpuExit exit = M.Run(100_000);
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        return exit;
    }

    /// <summary>The address of the <paramref name="index"/>th instruction of the body.</summary>
    public ulong InstructionAt(int index) => TestMachine.InstructionAddress(M, 32, Code, index);

    public void Dispose() => M.Dispose();
}
