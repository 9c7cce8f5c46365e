using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>
/// x87 exceptions by the SDM's rules (they cannot run natively): #NM with CR0.TS or CR0.EM (SDM Vol. 3A, Table 2-2); an
/// unmasked exception sets FSW.ES and is delivered as #MF by the next waiting instruction with CR0.NE set, while the
/// non-waiting FNSTSW still runs (SDM Vol. 1, 8.6 and 8.7).
/// </summary>
[TestFixture]
public sealed class X87FaultTests
{
    private const ulong Code = 0x8000, Data = 0x6000;

    private static TestMachine Start(ulong cr0Set, Action<Assembler> body)
    {
        var m = new TestMachine();
        m.StartLong64(Code);
        foreach (int vector in new[] { 6, 7, 16 })
        {
            ulong handler = 0x9000 + ((ulong)vector * 0x10);
            m.SetGate64(vector, handler);
            m.Load(64, handler, a =>
            {
                a.mov(ebx, vector);
                a.hlt();
            });
        }

        m.Load(64, Code, a =>
        {
            a.mov(ebx, 0xFF);
            a.mov(rsi, Data);
            body(a);
            a.mov(ebx, 0);
            a.hlt();
        });
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Cr0 |= cr0Set;
        m.Vcpu.SetSystemRegisters(s);
        return m;
    }

    [TestCase(1UL << 3, 7UL, TestName = "FADD with CR0.TS is #NM")]
    [TestCase(1UL << 2, 7UL, TestName = "FADD with CR0.EM is #NM")]
    [TestCase(0UL, 0UL, TestName = "FADD with CR0.EM and CR0.TS clear runs")]
    public void AvailabilityFollowsCr0(ulong cr0, ulong expected)
    {
        using TestMachine m = Start(cr0, a => a.fadd(st0, st0));
        Assert.That(m.Run(1000).Reason, Is.EqualTo(VcpuExitReason.Halted));
        Assert.That(m.Vcpu.GetGeneralRegisters().Rbx, Is.EqualTo(expected));
    }

    [Test]
    public void UnmaskedZeroDivideIsDeliveredAsMfByTheNextWaitingInstruction()
    {
        using TestMachine m = Start(1UL << 5, a => // CR0.NE
        {
            a.fninit();
            a.fldcw(__word_ptr[rsi + 8]);
            a.fild(__dword_ptr[rsi]);
            a.fidiv(__dword_ptr[rsi + 4]);
            a.fnstsw(ax); // non-waiting: runs with the exception pending
            a.fadd(st0, st0); // waiting: #MF
        });
        m.WriteDword(Data, 1);
        m.WriteDword(Data + 4, 0);
        m.WriteDword(Data + 8, 0x037B); // ZM clear (SDM Vol. 1, Figure 8-6)

        Assert.That(m.Run(1000).Reason, Is.EqualTo(VcpuExitReason.Halted));
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.Multiple(() =>
        {
            Assert.That(g.Rbx, Is.EqualTo(16UL), "#MF");
            Assert.That(g.Rax & 0x84, Is.EqualTo(0x84UL), "FNSTSW saw ES and ZE");
            Assert.That(m.Vcpu.GetFpuRegisters().St[0].SignExponent, Is.EqualTo((ushort)0x3FFF), "the unmasked divide left ST(0) = 1.0");
        });
    }
}
