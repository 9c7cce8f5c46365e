using System.Reflection;
using System.Runtime.Intrinsics.X86;
using Hypervisor.Core.Cpu;

namespace Hypervisor.Accel.Whpx.Tests.Translation;

/// <summary>
/// What whpx answers at a CPUID exit (<see cref="WhpxCpuid"/>), with this machine's own CPU standing in for the
/// platform's default result: the answer must carry the model's identity, and each feature bit must be set exactly
/// when the model has it, the platform's answer has it, and the adapter does not withhold it. The model's bits are
/// read from <see cref="CpuModel.Features"/> and the platform's from the host's CPUID instruction, both independently
/// of the code under test.
/// </summary>
[TestFixture]
public sealed class CpuidAnswerTests
{
    private static readonly CpuFeature[] s_allFeatures =
        [.. typeof(CpuFeatures).GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.FieldType == typeof(CpuFeature)).Select(f => (CpuFeature)f.GetValue(null)!)];

    private static CpuidResult Host(uint leaf, uint subleaf)
    {
        (int eax, int ebx, int ecx, int edx) = X86Base.CpuId(unchecked((int)leaf), unchecked((int)subleaf));
        return new CpuidResult((uint)eax, (uint)ebx, (uint)ecx, (uint)edx);
    }

    private static void RequireX86()
    {
        if (!X86Base.IsSupported)
        {
            Assert.Ignore("the host CPU is not x86: there is no CPUID to stand in for the platform's answer");
        }
    }

    [Test]
    public void EveryLeafTheModelDefinesExits()
    {
        CpuidTable table = WhpxCpuid.Table(localApic: true);
        uint[] exits = WhpxCpuid.ExitLeaves(table.Model);
        Assert.That(table.GetEntries(0).Select(e => e.Leaf).Distinct(), Is.SubsetOf(exits));
        Assert.That(exits, Does.Contain(0x4000_0000u), "a guest probing for a hypervisor signature gets the model's answer");
        Assert.That(exits, Is.Unique);
    }

    [TestCase(true)]
    [TestCase(false)]
    public void FeatureBitsAreTheModelsThatThePlatformHasAndThatAreNotWithheld(bool localApic)
    {
        RequireX86();
        CpuidTable table = WhpxCpuid.Table(localApic);
        var withheld = new HashSet<CpuFeature> { CpuFeatures.X2Apic, CpuFeatures.TscDeadline };
        Assert.Multiple(() =>
        {
            foreach (CpuFeature feature in s_allFeatures)
            {
                CpuidRegisterLocation at = feature.Location;
                CpuidResult answer = WhpxCpuid.Answer(table, at.Leaf, at.Subleaf, 0, Host(at.Leaf, at.Subleaf));
                bool inModel = (CpuModel.Default.Features.GetMask(at) & feature.Mask) != 0;
                bool onHost = (Host(at.Leaf, at.Subleaf)[at.Register] & feature.Mask) != 0;
                bool expected = feature == CpuFeatures.Apic ? inModel && localApic : inModel && onHost && !withheld.Contains(feature);
                bool leafPresent = at.Leaf <= CpuModel.Default.MaxBasicLeaf || at.Leaf >= 0x8000_0000;
                if (!leafPresent)
                {
                    continue;
                }

                Assert.That((answer[at.Register] & feature.Mask) != 0, Is.EqualTo(expected), feature.ToString());
            }
        });
    }

    [Test]
    public void IdentityIsTheModelsWhateverTheHost()
    {
        RequireX86();
        CpuidTable table = WhpxCpuid.Table(localApic: false);
        CpuidResult leaf0 = WhpxCpuid.Answer(table, 0, 0, 0, Host(0, 0));
        string vendor = string.Concat(new[] { leaf0.Ebx, leaf0.Edx, leaf0.Ecx }.Select(r => System.Text.Encoding.ASCII.GetString(BitConverter.GetBytes(r))));
        CpuidResult leaf1 = WhpxCpuid.Answer(table, 1, 0, 3, Host(1, 0));
        Assert.Multiple(() =>
        {
            Assert.That(vendor, Is.EqualTo(CpuModel.Default.Vendor));
            Assert.That(leaf0.Eax, Is.EqualTo(CpuModel.Default.MaxBasicLeaf));
            Assert.That(leaf1.Eax, Is.EqualTo(CpuModel.Default.Signature));
            Assert.That(leaf1.Ebx >> 24, Is.EqualTo(3u), "initial APIC ID (SDM Vol. 2A, CPUID leaf 01H, EBX[31:24])");
            Assert.That(leaf1.Ecx & (1u << 31), Is.Zero, "no hypervisor-present bit: the model has none");
        });
    }

    [Test]
    public void DynamicBitsFollowThePlatform()
    {
        CpuidTable table = WhpxCpuid.Table(localApic: false);
        uint osxsave = CpuFeatures.Osxsave.Mask;
        var platform1 = new CpuidResult(0, 0, uint.MaxValue, uint.MaxValue);
        var platformD = new CpuidResult(uint.MaxValue, 0x340, 0x1000, 0);
        var platformSizes = new CpuidResult(0x3027, 0, 0, 0); // MAXPHYADDR 39, narrower than the model's 40
        Assert.Multiple(() =>
        {
            // CPUID.1:ECX.OSXSAVE mirrors CR4.OSXSAVE (SDM Vol. 2A, CPUID, Table 3-10): the platform knows CR4.
            Assert.That(WhpxCpuid.Answer(table, 1, 0, 0, platform1).Ecx & osxsave, Is.EqualTo(osxsave));
            Assert.That(WhpxCpuid.Answer(table, 1, 0, 0, platform1 with { Ecx = ~osxsave }).Ecx & osxsave, Is.Zero);
            // CPUID.0DH.0:EBX is the XSAVE size for the current XCR0; ECX, the size for every component offered, is the model's.
            CpuidResult d = WhpxCpuid.Answer(table, 0xD, 0, 0, platformD);
            Assert.That(d.Ebx, Is.EqualTo(0x340u));
            Assert.That(d.Ecx, Is.EqualTo(table.Query(0xD, 0, 0).Ecx));
            Assert.That(d.Eax, Is.EqualTo(table.Query(0xD, 0, 0).Eax));
            Assert.That(WhpxCpuid.Answer(table, 0x8000_0008, 0, 0, platformSizes).Eax & 0xFF, Is.EqualTo(39u));
            Assert.That(WhpxCpuid.Answer(table, 0x8000_0008, 0, 0, platformSizes with { Eax = 0x3034 }).Eax & 0xFF, Is.EqualTo(40u));
        });
    }

    [Test]
    public void LeavesOutsideTheModelAnswerAsItsHighestBasicLeaf()
    {
        CpuidTable table = WhpxCpuid.Table(localApic: false);
        var signature = new CpuidResult(0x4000_000B, 0x7263694D, 0x666F736F, 0x76482074); // "Microsoft Hv"
        CpuidResult answer = WhpxCpuid.Answer(table, 0x4000_0000, 0, 0, signature);
        // Intel SDM Vol. 2A, CPUID: a leaf above the highest returns the data of the highest basic leaf.
        Assert.That(answer, Is.EqualTo(table.Query(CpuModel.Default.MaxBasicLeaf, 0, 0)));
        Assert.That(answer, Is.Not.EqualTo(signature));
    }
}
