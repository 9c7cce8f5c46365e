using Hypervisor.Core;
using Hypervisor.Core.Accelerators;

namespace Hypervisor.Accel.Whpx.Tests;

[TestFixture]
public sealed class WhpxExceptionTests
{
    [Test]
    public void AFailedHresultNamesTheCallAndCarriesTheCode()
    {
        const int gpaRangeNotFound = unchecked((int)0x80370305); // WHV_E_GPA_RANGE_NOT_FOUND

        var e = Assert.Throws<WhpxException>(() => WhpxException.ThrowIfFailed(gpaRangeNotFound, "WHvUnmapGpaRange"));

        Assert.Multiple(() =>
        {
            Assert.That(e!.Function, Is.EqualTo("WHvUnmapGpaRange"));
            Assert.That(e.HResult, Is.EqualTo(gpaRangeNotFound));
            Assert.That(e.Message, Is.EqualTo("WHvUnmapGpaRange failed with HRESULT 0x80370305."));
            Assert.That(e, Is.InstanceOf<AcceleratorException>().And.InstanceOf<HypervisorException>());
        });
    }

    [TestCase(0)]          // S_OK
    [TestCase(1)]          // S_FALSE is a success code too (the high bit is clear)
    public void SuccessCodesDoNotThrow(int hresult) =>
        Assert.That(() => WhpxException.ThrowIfFailed(hresult, "WHvSetupPartition"), Throws.Nothing);
}
