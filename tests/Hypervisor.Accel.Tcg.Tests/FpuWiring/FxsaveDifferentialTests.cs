using System.Runtime.InteropServices;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Accel.Tcg.Tests.Native;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using Hypervisor.Accel.Tcg.Tests.Jit;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>
/// FXSAVE/FXSAVE64 of the SSE state against the host CPU: the same XMM0-15 and MXCSR are loaded and saved natively and in
/// the interpreter, and MXCSR, MXCSR_MASK (bytes 24-31, low 16 bits), the XMM area (160-415) and the software-available bytes the
/// processor must not write (464-511) must match. The x87 part is not compared: the host's x87 state is the runtime's.
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public sealed class FxsaveDifferentialTests(string engine)
{
    private const ulong Code = 0x8000;
    private const ulong GuestBuffer = 0x6000;
    private const int BufferBytes = 1024;
    private const int XmmInputs = 512, MxcsrInput = 768, SavedMxcsr = 772;

    private static void Body(Assembler a, bool rexW)
    {
        a.stmxcsr(__dword_ptr[rsi + SavedMxcsr]);
        a.ldmxcsr(__dword_ptr[rsi + MxcsrInput]);
        AssemblerRegisterXMM[] xmm = [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15];
        for (int i = 0; i < 16; i++)
        {
            a.movdqu(xmm[i], __xmmword_ptr[rsi + XmmInputs + (16 * i)]);
        }

        if (rexW)
        {
            a.fxsave64(__[rsi]);
        }
        else
        {
            a.fxsave(__[rsi]);
        }

        a.ldmxcsr(__dword_ptr[rsi + SavedMxcsr]);
    }

    [TestCase(true, TestName = "FXSAVE64 stores MXCSR, MXCSR_MASK and XMM0-15 as the host does")]
    [TestCase(false, TestName = "FXSAVE in 64-bit mode stores MXCSR, MXCSR_MASK and XMM0-15 as the host does")]
    public void SseAreaMatchesHost(bool rexW)
    {
        if (NativeCpu.UnsupportedReason is { } reason)
        {
            Assert.Ignore(reason);
        }

        var input = new byte[BufferBytes];
        input.AsSpan(0, 512).Fill(0xA5);
        new Random(rexW ? 1 : 2).NextBytes(input.AsSpan(XmmInputs, 256));
        BitConverter.TryWriteBytes(input.AsSpan(MxcsrInput), 0x7F80u | 0x3D); // RC=11, some sticky flags, all masked

        // Host: a pinned, 64-byte aligned copy.
        byte[] pinned = GC.AllocateArray<byte>(BufferBytes + 64, pinned: true);
        nint address = Marshal.UnsafeAddrOfPinnedArrayElement(pinned, 0);
        int offset = (int)((64 - (address & 63)) & 63);
        input.CopyTo(pinned.AsSpan(offset));
        using (var cpu = new NativeCpu())
        {
            NativeStub stub = cpu.Compile64(a => Body(a, rexW));
            RegisterFile regs = default;
            regs.Rsi = (ulong)(address + offset);
            regs.Rflags = 2;
            cpu.Run(stub, ref regs);
        }

        byte[] host = pinned.AsSpan(offset, BufferBytes).ToArray();

        using var m = new TestMachine(options: JitCoverage.For(engine));
        m.StartLong64(Code);
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Cr4 |= 0x600;
        m.Vcpu.SetSystemRegisters(s);
        ulong halted = m.Load(64, Code, a =>
        {
            a.mov(rsi, GuestBuffer);
            Body(a, rexW);
            a.hlt();
        });
        m.Memory.Write(new GuestAddress(GuestBuffer), input);
        VcpuExit exit = m.Run(1000);
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
        Assert.That(m.Vcpu.GetGeneralRegisters().Rip, Is.EqualTo(halted));
        var guest = new byte[BufferBytes];
        m.Memory.Read(new GuestAddress(GuestBuffer), guest);

        Assert.Multiple(() =>
        {
            Assert.That(Convert.ToHexString(guest, 24, 4), Is.EqualTo(Convert.ToHexString(host, 24, 4)), "MXCSR");
            // AMD hosts also report MXCSR_MASK bit 17 (MM, misaligned SSE mode, AMD APM Vol. 4); this CPU models Intel's
            // MXCSR without it, so only the low 16 bits (the architectural MXCSR fields) are compared.
            Assert.That(BitConverter.ToUInt32(guest, 28), Is.EqualTo(BitConverter.ToUInt32(host, 28) & 0xFFFF), "MXCSR_MASK");
            Assert.That(Convert.ToHexString(guest, 160, 256), Is.EqualTo(Convert.ToHexString(host, 160, 256)), "XMM0-15");
            Assert.That(Convert.ToHexString(guest, 464, 48), Is.EqualTo(Convert.ToHexString(host, 464, 48)), "bytes 464-511");
        });
    }
}
