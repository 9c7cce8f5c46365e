using System.Numerics;
using Hypervisor.Accel.Tcg.Alu;

namespace Hypervisor.Accel.Tcg.Tests.Alu;

/// <summary>
/// The cases the host CPU cannot be asked about without faulting (#DE) or that need no CPU: checked against the SDM's
/// rules directly.
/// </summary>
[TestFixture]
public sealed class AluRuleTests
{
    [Test]
    public void ParityTableMatchesBitCount()
    {
        // SDM Vol. 1, 3.4.3.1: PF is set if the least-significant byte of the result contains an even number of 1 bits.
        for (int value = 0; value < 256; value++)
        {
            ulong even = BitOperations.PopCount((uint)value) % 2 == 0 ? 1UL : 0UL;
            Assert.That(IntAlu.Parity((ulong)value | 0xABCD_EF00), Is.EqualTo(even), $"byte {value:X2}");
        }
    }

    [Test]
    public void AamWithZeroImmediateReportsDivideError()
    {
        // SDM AAM: "If ... imm8 = 0 THEN #DE". The flags must be left alone, since the instruction does not complete.
        for (int al = 0; al < 256; al++)
        {
            ulong flags = AluFlags.Status | 2;
            Assert.That(IntAlu.Aam((byte)al, 0, out _, ref flags), Is.False, $"AL {al:X2}");
            Assert.That(flags, Is.EqualTo(AluFlags.Status | 2));
        }
    }

    [TestCase(8)]
    [TestCase(16)]
    [TestCase(32)]
    [TestCase(64)]
    public void DivisionByZeroReportsDivideError(int bits)
    {
        // SDM DIV/IDIV: "IF SRC = 0 THEN #DE". Garbage above the operand size must not turn a zero divisor into a
        // non-zero one.
        ulong garbage = bits == 64 ? 0 : ~IntAlu.Mask(bits);
        Assert.Multiple(() =>
        {
            Assert.That(IntAlu.Div(0, 1, garbage, bits, out _, out _), Is.False);
            Assert.That(IntAlu.Idiv(0, 1, garbage, bits, out _, out _), Is.False);
        });
    }

    [TestCase(8)]
    [TestCase(16)]
    [TestCase(32)]
    [TestCase(64)]
    public void SignedDivisionOfMostNegativeByMinusOneReportsDivideError(int bits)
    {
        // SDM IDIV: #DE when the quotient is too large for the destination; MIN / -1 = -MIN is the classic case, and it
        // also overflows C#'s own division (which would throw instead of reporting).
        ulong min = IntAlu.SignBit(bits);
        ulong high = IntAlu.Mask(bits); // sign extension of MIN into the high half
        Assert.That(IntAlu.Idiv(high, min, IntAlu.Mask(bits), bits, out _, out _), Is.False);
    }

    [TestCase(8)]
    [TestCase(16)]
    [TestCase(32)]
    [TestCase(64)]
    public void ShiftCountsAreMaskedBeforeUse(int bits)
    {
        // SDM SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR, SHLD/SHRD: the count is masked to 5 bits (6 with REX.W); the native tests
        // can only pass counts through CL (8 bits), so wider garbage is checked against the rule here.
        var random = new Random(7);
        for (int n = 0; n < 2000; n++)
        {
            ulong value = (ulong)random.NextInt64(), src = (ulong)random.NextInt64();
            ulong count = (ulong)random.NextInt64();
            ulong masked = count & (bits == 64 ? 0x3FUL : 0x1FUL);
            ulong flags = (ulong)random.Next() & AluFlags.Status, f1 = flags, f2 = flags;
            Assert.That(IntAlu.Rcl(value, count, bits, ref f1), Is.EqualTo(IntAlu.Rcl(value, masked, bits, ref f2)));
            Assert.That(IntAlu.Sar(value, count, bits, ref f1), Is.EqualTo(IntAlu.Sar(value, masked, bits, ref f2)));
            if (bits > 8)
            {
                Assert.That(IntAlu.Shrd(value, src, count, bits, ref f1), Is.EqualTo(IntAlu.Shrd(value, src, masked, bits, ref f2)));
            }

            Assert.That(f1, Is.EqualTo(f2));
        }
    }

    [Test]
    public void PortablePdepAndPextMatchTheHostInstructions()
    {
        // Where the host has BMI2, IntAlu uses the instructions and the portable loops are dead code here; compare them
        // with the host's PDEP/PEXT so that hosts without BMI2 get the same answers.
        if (!System.Runtime.Intrinsics.X86.Bmi2.X64.IsSupported)
        {
            Assert.Ignore("the host CPU has no BMI2 to compare the portable PDEP/PEXT with");
        }

        var random = new Random(11);
        for (int n = 0; n < 20000; n++)
        {
            ulong src = (ulong)random.NextInt64() ^ ((ulong)random.Next(2) << 63);
            ulong mask = (ulong)random.NextInt64() >> random.Next(64);
            mask = random.Next(3) == 0 ? ~mask : mask;
            Assert.That(IntAlu.PdepPortable(src, mask), Is.EqualTo(System.Runtime.Intrinsics.X86.Bmi2.X64.ParallelBitDeposit(src, mask)), $"PDEP {src:X} {mask:X}");
            Assert.That(IntAlu.PextPortable(src, mask), Is.EqualTo(System.Runtime.Intrinsics.X86.Bmi2.X64.ParallelBitExtract(src, mask)), $"PEXT {src:X} {mask:X}");
        }
    }
}
