namespace Hypervisor.Core.Tests;

public class SmokeTests
{
    [Test]
    public void Addition() { int a = 1; Assert.That(a + 1, Is.EqualTo(2)); }
    [Test]
    public void Skipped() => Assert.Ignore("because");
}
