using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Hosting;
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Core.Tests;

// The selector's own logic (ordering, fallback, error reporting) is tested with scripted accelerators; the real
// backends are exercised in their own test projects.
public class SelectionTests
{
    [Test]
    public void AutoTriesKvmThenWhpxThenTcg()
    {
        AcceleratorSpec spec = AcceleratorSpec.Parse("auto", ["tcg"]);
        Assert.That(spec.IsAuto, Is.True);
        Assert.That(spec.Candidates.Select(c => c.Name), Is.EqualTo(new[] { "kvm", "whpx", "tcg" }));
    }

    [Test]
    public void ListsKeepTheirOrderAndOptions()
    {
        AcceleratorSpec spec = AcceleratorSpec.Parse(" KVM:tcg,jit=off,threshold=5 ", ["kvm", "tcg"]);
        Assert.That(spec.Candidates.Select(c => c.Name), Is.EqualTo(new[] { "kvm", "tcg" }));
        Assert.That(spec.Candidates[1].Options.GetSwitch("jit", true), Is.False);
        Assert.That(spec.Candidates[1].Options.Get("THRESHOLD"), Is.EqualTo("5"));
        Assert.That(spec.Candidates[0].Options.Values, Is.Empty);
    }

    [TestCase("", "empty")]
    [TestCase("qemu", "Unknown accelerator 'qemu'")]
    [TestCase("kvm::tcg", "empty entry")]
    [TestCase("tcg,=on", "Malformed option")]
    [TestCase("tcg:tcg", "twice")]
    [TestCase("kvm:auto", "'auto' cannot be part of a list")]
    [TestCase("tcg,jit=on,jit=off", "given twice")]
    public void MalformedSpecificationsListTheValidNames(string text, string expected)
    {
        var e = Assert.Throws<HypervisorConfigurationException>(() => AcceleratorSpec.Parse(text, ["tcg", "kvm", "whpx"]));
        Assert.That(e!.Message, Does.Contain(expected));
    }

    [Test]
    public void UnknownNameMessageListsTheValidOnes()
    {
        var e = Assert.Throws<HypervisorConfigurationException>(() => AcceleratorSpec.Parse("hvf", ["tcg"]));
        Assert.That(e!.Message, Does.Contain("auto").And.Contain("kvm").And.Contain("tcg").And.Contain("whpx"));
    }

    [Test]
    public void UnavailableCandidatesAreSkippedWithTheirReasons()
    {
        var kvm = new ScriptedAccelerator("kvm", available: false, reason: "no /dev/kvm");
        var tcg = new ScriptedAccelerator("tcg", available: true, reason: "software");
        var selector = new AcceleratorSelector([kvm, tcg]);
        AcceleratorSelection selection = selector.Select(selector.Parse("auto"), Context);
        Assert.That(selection.Accelerator, Is.SameAs(tcg));
        Assert.That(selection.Attempts.Select(a => (a.Name, a.Outcome)), Is.EqualTo(new[]
        {
            ("kvm", AcceleratorAttemptOutcome.Unavailable),
            ("whpx", AcceleratorAttemptOutcome.NotRegistered),
            ("tcg", AcceleratorAttemptOutcome.Chosen),
        }));
        Assert.That(selection.Attempts[0].Reason, Is.EqualTo("no /dev/kvm"));
        Assert.That(kvm.Created, Is.Zero);
    }

    [Test]
    public void ACandidateWhoseVmCreationFailsFallsBackToTheNext()
    {
        var kvm = new ScriptedAccelerator("kvm", available: true, reason: "ok", failCreate: true);
        var tcg = new ScriptedAccelerator("tcg", available: true, reason: "software");
        var selector = new AcceleratorSelector([kvm, tcg]);
        AcceleratorSelection selection = selector.Select(selector.Parse("kvm:tcg"), Context);
        Assert.That(selection.Accelerator.Name, Is.EqualTo("tcg"));
        Assert.That(selection.Attempts[0].Outcome, Is.EqualTo(AcceleratorAttemptOutcome.CreationFailed));
        Assert.That(selection.Attempts[0].Reason, Does.Contain("KVM_CREATE_VM failed"));
    }

    [Test]
    public void RequiringAnUnavailableAcceleratorThrowsWithEveryProbeResult()
    {
        var kvm = new ScriptedAccelerator("kvm", available: false, reason: "no /dev/kvm");
        var whpx = new ScriptedAccelerator("whpx", available: false, reason: "not Windows");
        var selector = new AcceleratorSelector([kvm, whpx]);
        var e = Assert.Throws<AcceleratorUnavailableException>(() => selector.Select(selector.Parse("kvm:whpx"), Context));
        Assert.That(e!.Attempts.Select(a => a.Reason), Is.EqualTo(new[] { "no /dev/kvm", "not Windows" }));
        Assert.That(e.Message, Does.Contain("no /dev/kvm").And.Contain("not Windows"));
    }

    [Test]
    public void AProbeThatThrowsCountsAsUnavailableInsteadOfFailingSelection()
    {
        var broken = new ScriptedAccelerator("kvm", available: true, reason: "x", throwOnProbe: true);
        var tcg = new ScriptedAccelerator("tcg", available: true, reason: "software");
        var selector = new AcceleratorSelector([broken, tcg]);
        AcceleratorSelection selection = selector.Select(selector.Parse("auto"), Context);
        Assert.That(selection.Accelerator, Is.SameAs(tcg));
        Assert.That(selection.Attempts[0].Reason, Does.Contain("probe failed unexpectedly"));
    }

    [Test]
    public void UnsupportedOptionsAreRejectedNamingTheSupportedOnes()
    {
        var tcg = new ScriptedAccelerator("tcg", available: true, reason: "software");
        var selector = new AcceleratorSelector([tcg]);
        var e = Assert.Throws<HypervisorConfigurationException>(() => selector.Select(selector.Parse("tcg,turbo=on"), Context));
        Assert.That(e!.Message, Does.Contain("turbo").And.Contain("jit"));
    }

    [TestCase("128", 128UL << 20)]
    [TestCase("128M", 128UL << 20)]
    [TestCase("2G", 2UL << 30)]
    [TestCase("65536k", 64UL << 20)]
    [TestCase("512MiB", 512UL << 20)]
    [TestCase("1gb", 1UL << 30)]
    public void MemorySizesParseLikeQemu(string text, ulong expected) =>
        Assert.That(MemorySize.Parse(text), Is.EqualTo(expected));

    [TestCase("")]
    [TestCase("0")]
    [TestCase("-5")]
    [TestCase("12X")]
    [TestCase("1.5G")]
    [TestCase("2T")]
    [TestCase("3K")]
    public void BadMemorySizesAreRejected(string text) =>
        Assert.Throws<HypervisorConfigurationException>(() => MemorySize.Parse(text));

    private static VmCreationContext Context(AcceleratorOptions options) =>
        new(new MemoryMap(new IoLock()), new PortIoBus(new IoLock()), null, options, NullLoggerFactory.Instance);

    private sealed class ScriptedAccelerator(string name, bool available, string reason, bool failCreate = false, bool throwOnProbe = false)
        : IAccelerator
    {
        public int Created { get; private set; }

        public string Name { get; } = name;

        public IReadOnlyDictionary<string, string> SupportedOptions { get; } = new Dictionary<string, string> { ["jit"] = "on/off" };

        public AcceleratorProbeResult Probe() => throwOnProbe
            ? throw new InvalidOperationException("boom")
            : available ? AcceleratorProbeResult.Available(reason, AcceleratorCapabilities.None) : AcceleratorProbeResult.Unavailable(reason);

        public IAcceleratorVm CreateVm(VmCreationContext context)
        {
            Created++;
            return failCreate ? throw new AcceleratorException("KVM_CREATE_VM failed: EPERM") : new NoVm(this);
        }
    }

    private sealed class NoVm(IAccelerator accelerator) : IAcceleratorVm
    {
        public IAccelerator Accelerator { get; } = accelerator;

        public IVcpu CreateVcpu(int index) => throw new NotSupportedException("selection tests create no vCPUs");

        public void Dispose()
        {
        }
    }
}
