using Hypervisor.Core.Machine;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Guests;

/// <summary>
/// The interpreter links decoded blocks to their successors and continues a block across a same-page direct CALL or
/// JMP. These guests change what a linked or continued block must run, in the ways the SDM allows, and check that the
/// new code runs: a store to the code (Vol. 3A, 11.6: the store is seen by later execution), from the same page and
/// from another page, and a new mapping of the code's linear page made visible by a CR3 reload (4.10.4.1).
/// </summary>
public class BlockCacheTests
{
    [TestCase(false)]
    [TestCase(true)]
    public void StoreToACalledFunctionOnTheSamePageIsSeenByTheNextCall(bool patchFromAnotherPage)
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        // 0x8100: f: mov eax, 1 (B8 imm32; the immediate's low byte at 0x8101); ret
        m.Load(64, 0x8100, a =>
        {
            a.mov(eax, 1);
            a.ret();
        });
        // 0x9000 (another page): the same patch as a subroutine
        m.Load(64, 0x9000, a =>
        {
            a.mov(__byte_ptr[0x8101], 5);
            a.ret();
        });
        m.Load(64, 0x8000, a =>
        {
            Label loop = a.CreateLabel();
            a.mov(ecx, 3);
            a.xor(ebx, ebx);
            a.Label(ref loop);
            a.call(0x8100); // same page: the block continues into f
            a.add(ebx, eax);
            if (patchFromAnotherPage)
            {
                a.mov(rdx, 0x9000);
                a.call(rdx);
            }
            else
            {
                a.mov(__byte_ptr[0x8101], 5);
            }

            a.dec(ecx);
            a.jnz(loop);
            a.hlt();
        });

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        Assert.That(m.Vcpu.GetGeneralRegisters().Rbx, Is.EqualTo(1UL + 5 + 5), "f returned 1, then the patched 5 twice");
    }

    [Test]
    public void NewMappingOfTheCodePageIsSeenAfterCr3Reload()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        m.Load(64, 0x60000, a =>
        {
            a.mov(eax, 1);
            a.ret();
        });
        m.Load(64, 0x61000, a =>
        {
            a.mov(eax, 2);
            a.ret();
        });
        m.WriteQword(TestMachine.Pt + 0x50 * 8, 0x60000 | 3); // linear 0x50000 -> physical 0x60000
        m.Load(64, 0x8000, a =>
        {
            Label loop = a.CreateLabel();
            a.mov(rbx, 0x50000);
            a.mov(ecx, 3);
            a.xor(esi, esi);
            a.Label(ref loop);
            a.call(rbx); // from the second iteration on, the same block calls linear 0x50000: its link must not survive
            a.add(esi, eax);
            a.xor(__qword_ptr[TestMachine.Pt + 0x50 * 8], 0x1000); // remap 0x50000 to the other frame ...
            a.mov(rdx, cr3);
            a.mov(cr3, rdx); // ... and flush the TLB
            a.dec(ecx);
            a.jnz(loop);
            a.hlt();
        });

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.That(g.Rsi, Is.EqualTo(1UL + 2 + 1), "the calls ran physical 0x60000, 0x61000, 0x60000");
    }
}
