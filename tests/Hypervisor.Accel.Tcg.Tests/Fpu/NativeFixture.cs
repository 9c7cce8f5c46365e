namespace Hypervisor.Accel.Tcg.Tests.Fpu;

/// <summary>Base for differential fixtures: owns the native harness and skips where it cannot run.</summary>
[NonParallelizable]
public abstract class NativeFixture
{
    internal NativeFloat Native { get; private set; } = null!;

    [OneTimeSetUp]
    public void SetUpNative()
    {
        if (!NativeFloat.Supported)
            Assert.Ignore("differential tests need an x86-64 Linux host to run the instructions natively");
        Native = new NativeFloat();
    }

    [OneTimeTearDown]
    public void TearDownNative() => Native?.Dispose();

    /// <summary>Collects mismatches, keeping the first few for the message.</summary>
    internal sealed class Mismatches
    {
        private readonly List<string> _shown = new();
        public int Count { get; private set; }
        public int Total { get; private set; }

        public void Check(bool equal, Func<string> describe)
        {
            Total++;
            if (equal)
                return;
            Count++;
            if (_shown.Count < 15)
                _shown.Add(describe());
        }

        public void AssertNone() => Assert.That(_shown, Is.Empty, $"{Count} of {Total} differ");
    }
}
