namespace Hypervisor.Accel.Whpx.Tests;

/// <summary>Native names stay in the internal Interop folder; the package's public surface is small.</summary>
[TestFixture]
public sealed class PublicSurfaceTests
{
    [Test]
    public void OnlyTheAcceleratorItsExceptionAndItsRegistrationArePublic()
    {
        var exported = typeof(WhpxAccelerator).Assembly.GetExportedTypes().Select(t => t.FullName).Order(StringComparer.Ordinal);

        Assert.That(exported, Is.EqualTo(new[]
        {
            "Hypervisor.Accel.Whpx.WhpxAccelerator",
            "Hypervisor.Accel.Whpx.WhpxException",
            "Hypervisor.Accel.Whpx.WhpxHypervisorBuilderExtensions",
        }));
    }
}
