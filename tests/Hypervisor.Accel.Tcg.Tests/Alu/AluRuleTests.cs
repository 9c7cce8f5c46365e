using System.Numerics;
using System.Runtime.Intrinsics.X86;
using AluOps = Hypervisor.Accel.Tcg.Alu.Alu;
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
            Assert.That(AluOps.Parity((ulong)value | 0xABCD_EF00), Is.EqualTo(even), $"byte {value:X2}");
        }
    }

    [Test]
    public void AamWithZeroImmediateReportsDivideError()
    {
        // SDM AAM: "If ... imm8 = 0 THEN #DE". The flags must be left alone, since the instruction does not complete.
        for (int al = 0; al < 256; al++)
        {
            ulong flags = AluFlags.Status | 2;
            Assert.That(AluOps.Aam((byte)al, 0, out _, ref flags), Is.False, $"AL {al:X2}");
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
        ulong garbage = bits == 64 ? 0 : ~AluOps.Mask(bits);
        Assert.Multiple(() =>
        {
            Assert.That(AluOps.Div(0, 1, garbage, bits, out _, out _), Is.False);
            Assert.That(AluOps.Idiv(0, 1, garbage, bits, out _, out _), Is.False);
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
        ulong min = AluOps.SignBit(bits);
        ulong high = AluOps.Mask(bits); // sign extension of MIN into the high half
        Assert.That(AluOps.Idiv(high, min, AluOps.Mask(bits), bits, out _, out _), Is.False);
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
            Assert.That(AluOps.Rcl(value, count, bits, ref f1), Is.EqualTo(AluOps.Rcl(value, masked, bits, ref f2)));
            Assert.That(AluOps.Sar(value, count, bits, ref f1), Is.EqualTo(AluOps.Sar(value, masked, bits, ref f2)));
            if (bits > 8)
            {
                Assert.That(AluOps.Shrd(value, src, count, bits, ref f1), Is.EqualTo(AluOps.Shrd(value, src, masked, bits, ref f2)));
            }

            Assert.That(f1, Is.EqualTo(f2));
        }
    }

    [Test]
    public void PortablePdepAndPextMatchTheHostInstructions()
    {
        // Where the host has BMI2, Alu uses the instructions and the portable loops are dead code here; compare them
        // with the host's PDEP/PEXT so that hosts without BMI2 get the same answers.
        if (!Bmi2.X64.IsSupported)
        {
            Assert.Ignore("the host CPU has no BMI2 to compare the portable PDEP/PEXT with");
        }

        var random = new Random(11);
        for (int n = 0; n < 20000; n++)
        {
            ulong src = (ulong)random.NextInt64() ^ ((ulong)random.Next(2) << 63);
            ulong mask = (ulong)random.NextInt64() >> random.Next(64);
            mask = random.Next(3) == 0 ? ~mask : mask;
            Assert.That(AluOps.PdepPortable(src, mask), Is.EqualTo(Bmi2.X64.ParallelBitDeposit(src, mask)), $"PDEP {src:X} {mask:X}");
            Assert.That(AluOps.PextPortable(src, mask), Is.EqualTo(Bmi2.X64.ParallelBitExtract(src, mask)), $"PEXT {src:X} {mask:X}");
        }
    }

    [Test]
    public void EveryOperationRunsWithoutAllocating()
    {
        // The interpreter calls these once per instruction; the runtime's own allocation counter is the judge.
        ulong sink = 0;
        Exercise(ref sink); // JIT and static data first
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            Exercise(ref sink);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(allocated, Is.Zero, $"allocated {allocated} bytes (sink {sink})");
    }

    private static void Exercise(ref ulong sink)
    {
        ulong f = 0x8D5;
        for (int bits = 8; bits <= 64; bits *= 2)
        {
            ulong a = 0x8123_4567_89AB_CDEF, b = 0xFEDC_BA98_7654_3211;
            sink += AluOps.Add(a, b, bits, ref f) + AluOps.Adc(a, b, bits, ref f) + AluOps.Sub(a, b, bits, ref f) + AluOps.Sbb(a, b, bits, ref f);
            AluOps.Cmp(a, b, bits, ref f);
            AluOps.Test(a, b, bits, ref f);
            sink += AluOps.Neg(a, bits, ref f) + AluOps.Inc(a, bits, ref f) + AluOps.Dec(a, bits, ref f) + AluOps.Not(a, bits);
            sink += AluOps.And(a, b, bits, ref f) + AluOps.Or(a, b, bits, ref f) + AluOps.Xor(a, b, bits, ref f);
            sink += AluOps.CmpXchg(a, b, bits, ref f) ? 1UL : 0UL;
            sink += AluOps.Shl(a, 5, bits, ref f) + AluOps.Shr(a, 5, bits, ref f) + AluOps.Sar(a, 5, bits, ref f);
            sink += AluOps.Rol(a, 5, bits, ref f) + AluOps.Ror(a, 5, bits, ref f) + AluOps.Rcl(a, 5, bits, ref f) + AluOps.Rcr(a, 5, bits, ref f);
            sink += AluOps.Mul(a, b, bits, out ulong high, ref f) + high + AluOps.Imul(a, b, bits, out high, ref f) + high;
            sink += AluOps.Div(1, b, a, bits, out ulong q, out ulong r) ? q + r : 0;
            sink += AluOps.Idiv(ulong.MaxValue, b, a, bits, out q, out r) ? q + r : 0;
            sink += AluOps.Bts(a, b, bits, ref f) + AluOps.Btr(a, b, bits, ref f) + AluOps.Btc(a, b, bits, ref f);
            sink += AluOps.Bsf(a, bits, out ulong index, ref f) ? index : 0;
            sink += AluOps.Bsr(a, bits, out index, ref f) ? index : 0;
            sink += AluOps.Popcnt(a, bits, ref f) + AluOps.Lzcnt(a, bits, ref f) + AluOps.Tzcnt(a, bits, ref f);
            if (bits >= 16)
            {
                sink += AluOps.Shld(a, b, 7, bits, ref f) + AluOps.Shrd(a, b, 7, bits, ref f) + AluOps.Bswap(a, bits);
            }

            if (bits >= 32)
            {
                sink += AluOps.Adcx(a, b, bits, ref f) + AluOps.Adox(a, b, bits, ref f) + AluOps.Andn(a, b, bits, ref f);
                sink += AluOps.Bextr(a, 0x0804, bits, ref f) + AluOps.Blsi(a, bits, ref f) + AluOps.Blsmsk(a, bits, ref f) + AluOps.Blsr(a, bits, ref f);
                sink += AluOps.Bzhi(a, 9, bits, ref f) + AluOps.Mulx(a, b, bits, out high) + high;
                sink += AluOps.Pdep(a, b, bits) + AluOps.Pext(a, b, bits) + AluOps.Rorx(a, 3, bits);
                sink += AluOps.Sarx(a, 3, bits) + AluOps.Shlx(a, 3, bits) + AluOps.Shrx(a, 3, bits);
            }
        }

        sink += (ulong)AluOps.Daa(0x9A, ref f) + AluOps.Das(0x9A, ref f) + AluOps.Aaa(0x1FA, ref f) + AluOps.Aas(0x1FA, ref f);
        sink += AluOps.Aam(0x55, 10, out ushort ax, ref f) ? ax : 0UL;
        sink += AluOps.Aad(0x0505, 10, ref f) + f;
        // A 128-bit division, the one path that could be tempted to box or allocate.
        sink += AluOps.Div(5, 7, ulong.MaxValue, 64, out ulong q128, out ulong r128) ? q128 + r128 : 0;
    }
}
