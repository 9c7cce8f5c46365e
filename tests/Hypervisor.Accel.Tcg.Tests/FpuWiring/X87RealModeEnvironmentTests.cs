using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using Hypervisor.Accel.Tcg.Tests.Jit;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>
/// FNSTENV and FLDENV in real mode, checked field by field against the real-mode layouts of the SDM (Vol. 1, Figure 8-10
/// for 16-bit operand size, Figure 8-12 for 32-bit; the host cannot run real-mode code). There the instruction and data
/// pointers are 20-bit linear addresses (segment * 16 + offset) split into a low word and a high nibble/word that shares
/// a dword or word with the 11-bit opcode. Code runs at CS 0800h (base 8000h) and the operand is addressed through DS
/// 1234h, so that both bases matter. Reserved fields are not compared.
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public sealed class X87RealModeEnvironmentTests(string engine)
{
    private const ushort CodeSegment = 0x0800, CodeOffset = 0x1000, DataSegment = 0x1234;
    private const ulong CodeLinear = (CodeSegment * 16UL) + CodeOffset;
    private const ulong DataBase = DataSegment * 16UL;

    private TestMachine Run(Action<Assembler> body)
    {
        var m = new TestMachine(options: JitCoverage.For(engine));
        m.Load(16, 0x8000, a => a.jmp(CodeSegment, CodeOffset));
        m.Load(16, CodeLinear, a =>
        {
            a.mov(ax, DataSegment);
            a.mov(ds, ax);
            body(a);
            a.hlt();
        });
        m.StartReal(0x8000);
        return m;
    }

    private static byte[] Read(TestMachine m, ulong linear, int length)
    {
        var b = new byte[length];
        m.Memory.Read(new GuestAddress(linear), b);
        return b;
    }

    [Test]
    public void FnstenvStoresLinearPointersAndTheOpcodeInBothRealModeLayouts()
    {
        using TestMachine m = Run(a =>
        {
            a.fninit();
            a.fld(__dword_ptr[0x0010]);
            a.fnstenv(__[0x0100]);
            a.db(0x66);
            a.fnstenv(__[0x0200]);
        });
        m.WriteDword(DataBase + 0x10, 0x3F80_0000); // 1.0f
        Assert.That(m.Run(1000).Reason, Is.EqualTo(VcpuExitReason.Halted));
        ulong fip = TestMachine.InstructionAddress(m, 16, CodeLinear, 3); // after MOV AX, MOV DS, FNINIT
        ulong fdp = DataBase + 0x10;
        const int Fop = 0x106; // FLD m32fp = D9 /0, ModR/M 06h (disp16): (D9h & 7) << 8 | 06h
        byte[] e16 = Read(m, DataBase + 0x100, 14);
        byte[] e32 = Read(m, DataBase + 0x200, 28);
        Assert.Multiple(() =>
        {
            Assert.That(BitConverter.ToUInt16(e16, 0), Is.EqualTo(0x037F), "16: FCW");
            Assert.That(BitConverter.ToUInt16(e16, 2), Is.EqualTo(0x3800), "16: FSW (TOP 7)");
            Assert.That(BitConverter.ToUInt16(e16, 4), Is.EqualTo(0x3FFF), "16: FTW (R7 valid)");
            Assert.That(BitConverter.ToUInt16(e16, 6), Is.EqualTo((ushort)fip), "16: FIP 15-0");
            Assert.That(BitConverter.ToUInt16(e16, 8), Is.EqualTo((ushort)((((fip >> 16) & 0xF) << 12) | Fop)), "16: FIP 19-16 and FOP");
            Assert.That(BitConverter.ToUInt16(e16, 10), Is.EqualTo((ushort)fdp), "16: FDP 15-0");
            Assert.That(BitConverter.ToUInt16(e16, 12) >> 12, Is.EqualTo((int)((fdp >> 16) & 0xF)), "16: FDP 19-16");

            Assert.That(BitConverter.ToUInt16(e32, 0), Is.EqualTo(0x037F), "32: FCW");
            Assert.That(BitConverter.ToUInt16(e32, 4), Is.EqualTo(0x3800), "32: FSW");
            Assert.That(BitConverter.ToUInt16(e32, 8), Is.EqualTo(0x3FFF), "32: FTW");
            Assert.That(BitConverter.ToUInt16(e32, 12), Is.EqualTo((ushort)fip), "32: FIP 15-0");
            Assert.That(BitConverter.ToUInt32(e32, 16) & 0x0FFF_FFFF, Is.EqualTo((uint)(((fip >> 16) << 12) | Fop)), "32: FIP 31-16 and FOP");
            Assert.That(BitConverter.ToUInt16(e32, 20), Is.EqualTo((ushort)fdp), "32: FDP 15-0");
            Assert.That(BitConverter.ToUInt32(e32, 24) & 0x0FFF_F000, Is.EqualTo((uint)((fdp >> 16) << 12)), "32: FDP 31-16");
        });
    }

    [TestCase(false, TestName = "FLDENV of a 14-byte real-mode image stores back the same pointers and opcode")]
    [TestCase(true, TestName = "FLDENV of a 28-byte real-mode image stores back the same pointers and opcode")]
    public void FldenvRoundTripsTheRealModePointers(bool wide)
    {
        var image = new byte[28];
        const uint Fip = 0x000A_BCDE, Fdp = 0x0005_4321;
        const ushort Fop = 0x5A5;
        if (wide)
        {
            BitConverter.TryWriteBytes(image.AsSpan(0), 0xFFFF_037Fu);
            BitConverter.TryWriteBytes(image.AsSpan(4), 0xFFFF_0000u);
            BitConverter.TryWriteBytes(image.AsSpan(8), 0xFFFF_FFFFu);
            BitConverter.TryWriteBytes(image.AsSpan(12), 0xFFFF_0000u | (Fip & 0xFFFF));
            BitConverter.TryWriteBytes(image.AsSpan(16), ((Fip >> 16) << 12) | Fop);
            BitConverter.TryWriteBytes(image.AsSpan(20), 0xFFFF_0000u | (Fdp & 0xFFFF));
            BitConverter.TryWriteBytes(image.AsSpan(24), (Fdp >> 16) << 12);
        }
        else
        {
            BitConverter.TryWriteBytes(image.AsSpan(0), (ushort)0x037F);
            BitConverter.TryWriteBytes(image.AsSpan(4), (ushort)0xFFFF);
            BitConverter.TryWriteBytes(image.AsSpan(6), (ushort)(Fip & 0xFFFF));
            BitConverter.TryWriteBytes(image.AsSpan(8), (ushort)(((Fip >> 16) << 12) | Fop));
            BitConverter.TryWriteBytes(image.AsSpan(10), (ushort)(Fdp & 0xFFFF));
            BitConverter.TryWriteBytes(image.AsSpan(12), (ushort)((Fdp >> 16) << 12));
        }

        using TestMachine m = Run(a =>
        {
            if (wide)
            {
                a.db(0x66);
            }

            a.fldenv(__[0x0300]);
            a.fnclex(); // a control instruction: the pointers stay as loaded
            if (wide)
            {
                a.db(0x66);
            }

            a.fnstenv(__[0x0400]);
        });
        m.Memory.Write(new GuestAddress(DataBase + 0x300), image);
        Assert.That(m.Run(1000).Reason, Is.EqualTo(VcpuExitReason.Halted));
        byte[] back = Read(m, DataBase + 0x400, 28);
        Assert.Multiple(() =>
        {
            if (wide)
            {
                Assert.That(BitConverter.ToUInt16(back, 12), Is.EqualTo((ushort)(Fip & 0xFFFF)), "FIP 15-0");
                Assert.That(BitConverter.ToUInt32(back, 16) & 0x0FFF_FFFF, Is.EqualTo(((Fip >> 16) << 12) | Fop), "FIP 31-16 and FOP");
                Assert.That(BitConverter.ToUInt16(back, 20), Is.EqualTo((ushort)(Fdp & 0xFFFF)), "FDP 15-0");
                Assert.That(BitConverter.ToUInt32(back, 24) & 0x0FFF_F000, Is.EqualTo((Fdp >> 16) << 12), "FDP 31-16");
            }
            else
            {
                Assert.That(BitConverter.ToUInt16(back, 6), Is.EqualTo((ushort)(Fip & 0xFFFF)), "FIP 15-0");
                Assert.That(BitConverter.ToUInt16(back, 8), Is.EqualTo((ushort)(((Fip >> 16) << 12) | Fop)), "FIP 19-16 and FOP");
                Assert.That(BitConverter.ToUInt16(back, 10), Is.EqualTo((ushort)(Fdp & 0xFFFF)), "FDP 15-0");
                Assert.That(BitConverter.ToUInt16(back, 12) >> 12, Is.EqualTo((int)(Fdp >> 16)), "FDP 19-16");
            }
        });
    }
}
