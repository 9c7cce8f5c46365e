using System.Reflection;
using System.Runtime.Intrinsics.X86;
using System.Text;
using Hypervisor.Core.Cpu;
using Hypervisor.Core.Registers;

namespace Hypervisor.Core.Tests.Cpu;

/// <summary>
/// The CPU model and its CPUID tables. Register layouts (vendor order, brand order, feature bit positions, XSAVE
/// sizes) are checked against the host CPU's own CPUID and the .NET runtime's independent feature detection; the
/// intersection and out-of-range rules against the Intel SDM (Vol. 2A, CPUID).
/// </summary>
public sealed class CpuModelTests
{
    private static CpuidResult Host(uint leaf, uint subleaf)
    {
        (int a, int b, int c, int d) = X86Base.CpuId((int)leaf, (int)subleaf);
        return new CpuidResult((uint)a, (uint)b, (uint)c, (uint)d);
    }

    private static void RequireX86()
    {
        if (!X86Base.IsSupported)
        {
            Assert.Ignore("the host is not x86: no CPUID to compare with");
        }
    }

    private static CpuModel Model(string vendor = "GenuineIntel", string brand = "test", uint maxBasic = 0xD,
        CpuFeatureSet? features = null, int physicalBits = 40) =>
        new(vendor, 0x623, brand, maxBasic, 0x8000_0008, physicalBits, 48, features ?? CpuModel.Default.Features);

    private static IEnumerable<(string Name, CpuFeature Feature)> AllFeatures() =>
        typeof(CpuFeatures).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.FieldType == typeof(CpuFeature))
            .Select(f => (f.Name, (CpuFeature)f.GetValue(null)!));

    [Test]
    public void VendorStringIsEncodedInEbxEdxEcxOrderAsTheHostCpuDoes()
    {
        RequireX86();
        CpuidResult host = Host(0, 0);
        byte[] bytes = new byte[12];
        BitConverter.TryWriteBytes(bytes.AsSpan(0), host.Ebx);
        BitConverter.TryWriteBytes(bytes.AsSpan(4), host.Edx);
        BitConverter.TryWriteBytes(bytes.AsSpan(8), host.Ecx);
        string vendor = Encoding.ASCII.GetString(bytes);
        Assume.That(Ascii.IsValid(vendor), "host vendor string is ASCII");

        CpuidResult ours = Model(vendor).Present(CpuFeatureSet.Empty).Query(0, 0, 0);
        Assert.Multiple(() =>
        {
            Assert.That((ours.Ebx, ours.Edx, ours.Ecx), Is.EqualTo((host.Ebx, host.Edx, host.Ecx)), vendor);
            Assert.That(ours.Eax, Is.EqualTo(0xDu), "highest basic leaf");
        });
    }

    [Test]
    public void BrandStringIsEncodedInLeaves80000002To80000004AsTheHostCpuDoes()
    {
        RequireX86();
        Assume.That(Host(0x8000_0000, 0).Eax, Is.GreaterThanOrEqualTo(0x8000_0004u), "host has a brand string");
        var bytes = new List<byte>();
        for (uint leaf = 0x8000_0002; leaf <= 0x8000_0004; leaf++)
        {
            CpuidResult r = Host(leaf, 0);
            foreach (uint v in new[] { r.Eax, r.Ebx, r.Ecx, r.Edx })
            {
                bytes.AddRange(BitConverter.GetBytes(v));
            }
        }

        int end = bytes.IndexOf(0);
        Assume.That(end, Is.InRange(0, 47), "host brand string is NUL-terminated");
        Assume.That(bytes.Skip(end).All(b => b == 0), Is.True, "host brand string is padded with NULs");
        string brand = Encoding.ASCII.GetString(bytes.Take(end).ToArray());

        CpuidTable table = Model(brand: brand).Present(CpuFeatureSet.Empty);
        for (uint leaf = 0x8000_0002; leaf <= 0x8000_0004; leaf++)
        {
            Assert.That(table.Query(leaf, 0, 0), Is.EqualTo(Host(leaf, 0)), $"leaf {leaf:X} of \"{brand}\"");
        }
    }

    [Test]
    public void FeatureBitPositionsAgreeWithTheRuntimesOwnDetection()
    {
        RequireX86();
        CpuFeatureSet host = CpuFeatureSet.FromCpuid((leaf, subleaf) => Host(leaf, subleaf));
        Assert.Multiple(() =>
        {
            Assert.That(host.Contains(CpuFeatures.Sse), Is.EqualTo(Sse.IsSupported), "SSE");
            Assert.That(host.Contains(CpuFeatures.Sse2), Is.EqualTo(Sse2.IsSupported), "SSE2");
            Assert.That(host.Contains(CpuFeatures.Sse3), Is.EqualTo(Sse3.IsSupported), "SSE3");
            Assert.That(host.Contains(CpuFeatures.Ssse3), Is.EqualTo(Ssse3.IsSupported), "SSSE3");
            Assert.That(host.Contains(CpuFeatures.Sse41), Is.EqualTo(Sse41.IsSupported), "SSE4.1");
            Assert.That(host.Contains(CpuFeatures.Sse42), Is.EqualTo(Sse42.IsSupported), "SSE4.2");
            Assert.That(host.Contains(CpuFeatures.Popcnt), Is.EqualTo(Popcnt.IsSupported), "POPCNT");
            Assert.That(host.Contains(CpuFeatures.Aes), Is.EqualTo(Aes.IsSupported), "AES");
            Assert.That(host.Contains(CpuFeatures.Pclmulqdq), Is.EqualTo(Pclmulqdq.IsSupported), "PCLMULQDQ");
            Assert.That(host.Contains(CpuFeatures.Lzcnt), Is.EqualTo(Lzcnt.IsSupported), "LZCNT");
            Assert.That(host.Contains(CpuFeatures.Bmi1), Is.EqualTo(Bmi1.IsSupported), "BMI1");
            Assert.That(host.Contains(CpuFeatures.Bmi2), Is.EqualTo(Bmi2.IsSupported), "BMI2");
            Assert.That(host.Contains(CpuFeatures.LongMode), Is.EqualTo(Environment.Is64BitOperatingSystem), "LM");
            // The runtime reports AVX only when the OS enabled it (OSXSAVE and XCR0), so the CPUID bit is implied.
            if (Avx.IsSupported)
            {
                Assert.That(host.Contains(CpuFeatures.Avx) && host.Contains(CpuFeatures.Osxsave) && host.Contains(CpuFeatures.Xsave),
                    Is.True, "AVX, OSXSAVE, XSAVE");
                Assert.That(host.Contains(CpuFeatures.XsaveAvxState) && host.Contains(CpuFeatures.XsaveSseState), Is.True,
                    "XCR0 components AVX and SSE");
            }

            if (Avx2.IsSupported)
            {
                Assert.That(host.Contains(CpuFeatures.Avx2), Is.True, "AVX2");
            }
        });
    }

    [Test]
    public void XsaveSizesAgreeWithTheHostsEnumeration()
    {
        RequireX86();
        Assume.That(Host(0, 0).Eax, Is.GreaterThanOrEqualTo(0xDu), "host has leaf 0DH");
        Assume.That(Host(0xD, 0).Eax & 4, Is.EqualTo(4u), "host supports AVX state");
        CpuFeatureSet features = CpuFeatureSet.Of(CpuFeatures.Xsave, CpuFeatures.XsaveX87State, CpuFeatures.XsaveSseState,
            CpuFeatures.XsaveAvxState);
        CpuidTable withAvx = Model(features: features).Present(features);
        CpuidTable withoutAvx = Model(features: features).Present(features.Without(CpuFeatures.XsaveAvxState));
        CpuidResult hostAvx = Host(0xD, 2);
        Assert.Multiple(() =>
        {
            Assert.That(withAvx.Query(0xD, 2, 0), Is.EqualTo(hostAvx with { Ecx = 0, Edx = 0 }), "AVX component size and offset");
            Assert.That(withAvx.Query(0xD, 0, 0).Ecx, Is.EqualTo(hostAvx.Ebx + hostAvx.Eax), "size of x87+SSE+AVX");
            Assert.That(withoutAvx.Query(0xD, 0, 0).Ecx, Is.EqualTo(hostAvx.Ebx), "x87+SSE end where AVX begins");
            Assert.That(withoutAvx.Query(0xD, 0, 0).Eax, Is.EqualTo(3u), "XCR0 bits x87 and SSE");
            Assert.That(withoutAvx.Query(0xD, 2, 0), Is.EqualTo(default(CpuidResult)), "no AVX sub-leaf");
        });
    }

    [Test]
    public void AGuestSeesOnlyFeaturesInBothTheModelAndTheAccelerator()
    {
        CpuModel model = Model(features: CpuFeatureSet.Of(CpuFeatures.Sse, CpuFeatures.Fpu, CpuFeatures.LongMode, CpuFeatures.Bmi1));
        CpuidTable table = model.Present(CpuFeatureSet.Of(CpuFeatures.Sse, CpuFeatures.Avx, CpuFeatures.Bmi1, CpuFeatures.Nx));
        Assert.Multiple(() =>
        {
            Assert.That(table.Query(1, 0, 0).Edx, Is.EqualTo(1u << 25), "SSE only: FPU is not available");
            Assert.That(table.Query(1, 0, 0).Ecx, Is.Zero, "AVX is not in the model");
            Assert.That(table.Query(7, 0, 0).Ebx, Is.EqualTo(1u << 3), "BMI1");
            Assert.That(table.Query(0x8000_0001, 0, 0).Edx, Is.Zero, "LM not available, NX not in the model");
            Assert.That(table.Features, Is.EqualTo(CpuFeatureSet.Of(CpuFeatures.Sse, CpuFeatures.Bmi1)));
        });
    }

    [Test]
    public void EveryFeatureHasItsOwnBitInAFeatureRegister()
    {
        var seen = new Dictionary<(CpuidRegisterLocation, int), string>();
        foreach ((string name, CpuFeature feature) in AllFeatures())
        {
            Assert.That(CpuFeatures.FeatureRegisters, Does.Contain(feature.Location), name);
            Assert.That(feature.Bit, Is.InRange(0, 31), name);
            Assert.That(seen.TryAdd((feature.Location, feature.Bit), name), Is.True,
                $"{name} shares its bit with {seen.GetValueOrDefault((feature.Location, feature.Bit))}");
        }

        Assert.That(seen, Has.Count.GreaterThan(60));
    }

    [Test]
    public void Leaf1CarriesTheResetSignatureAndTheApicId()
    {
        CpuidTable table = CpuModel.Default.Present(CpuModel.Default.Features);
        CpuidResult leaf1 = table.Query(1, 0, 5);
        Assert.Multiple(() =>
        {
            Assert.That(leaf1.Eax, Is.EqualTo(ResetState.ProcessorSignature), "same as EDX after reset");
            Assert.That(leaf1.Ebx >> 24, Is.EqualTo(5u), "initial APIC ID");
            Assert.That((leaf1.Ebx >> 8) & 0xFF, Is.EqualTo(8u), "CLFLUSH line size 64 bytes with CLFSH");
            Assert.That(table.GetEntries(3).Single(e => e.Leaf == 1).Result.Ebx >> 24, Is.EqualTo(3u));
            Assert.That(CpuModel.Default.Present(CpuFeatureSet.Empty).Query(1, 0, 0).Ebx & 0xFF00, Is.Zero, "no CLFSH, no line size");
        });
    }

    [Test]
    public void LeavesBeyondTheHighestAnswerAsTheHighestBasicLeafAndGapsReadZero()
    {
        CpuModel model = Model(maxBasic: 7, features: CpuFeatureSet.Of(CpuFeatures.Bmi2));
        CpuidTable table = model.Present(model.Features);
        CpuidResult max = table.Query(7, 0, 0);
        Assert.Multiple(() =>
        {
            Assert.That(max.Ebx, Is.EqualTo(1u << 8));
            Assert.That(table.Query(8, 0, 0), Is.EqualTo(max), "basic leaf beyond the highest");
            Assert.That(table.Query(0x8000_0009, 0, 0), Is.EqualTo(max), "extended leaf beyond the highest");
            Assert.That(table.Query(0x4000_0000, 0, 0), Is.EqualTo(max), "hypervisor range (no such leaves here)");
            Assert.That(table.Query(0x8000_0009, 1, 0), Is.EqualTo(default(CpuidResult)), "sub-leaf is kept: 7.1 is zero");
            Assert.That(table.Query(4, 0, 0), Is.EqualTo(default(CpuidResult)), "undefined leaf within range");
            Assert.That(table.Query(0xD, 0, 0), Is.EqualTo(max), "0DH is beyond a highest leaf of 7");
            Assert.That(table.Query(0x8000_0001, 9, 0), Is.EqualTo(table.Query(0x8000_0001, 0, 0)), "no sub-leaves");
        });
    }

    [Test]
    public void AddressSizesAreTheSmallerPhysicalWidthAnd48BitLinear()
    {
        Assert.Multiple(() =>
        {
            Assert.That(CpuModel.Default.Present(CpuFeatureSet.Empty, 36).Query(0x8000_0008, 0, 0).Eax, Is.EqualTo(36u | (48u << 8)));
            Assert.That(CpuModel.Default.Present(CpuFeatureSet.Empty, 48).Query(0x8000_0008, 0, 0).Eax, Is.EqualTo(40u | (48u << 8)));
        });
    }

    [Test]
    public void TheDefaultModelIsTheDocumentedOne()
    {
        CpuModel m = CpuModel.Default;
        CpuidTable all = m.Present(m.Features);
        Assert.Multiple(() =>
        {
            Assert.That(m.Vendor, Is.EqualTo("GenuineIntel"));
            Assert.That(m.Signature, Is.EqualTo(ResetState.ProcessorSignature));
            Assert.That(all.Query(0x8000_0000, 0, 0).Eax, Is.EqualTo(0x8000_0008u));
            Assert.That(all.Query(0xD, 0, 0), Is.EqualTo(new CpuidResult(3, 576, 576, 0)), "x87 and SSE XSAVE state");
            Assert.That(m.Features.Contains(CpuFeatures.Avx), Is.False);
            Assert.That(m.Features.Contains(CpuFeatures.LongMode) && m.Features.Contains(CpuFeatures.Sse2), Is.True);
            Assert.That(m.Present(CpuFeatureSet.Empty).Query(0xD, 0, 0), Is.EqualTo(default(CpuidResult)),
                "no XSAVE components, no leaf 0DH");
        });
    }

    [Test]
    public void FeatureSetOperations()
    {
        CpuFeatureSet a = CpuFeatureSet.Of(CpuFeatures.Sse, CpuFeatures.Nx);
        Assert.Multiple(() =>
        {
            Assert.That(a.With(CpuFeatures.Fpu).GetMask(1, 0, CpuidRegister.Edx), Is.EqualTo((1u << 25) | 1u));
            Assert.That(a.Without(CpuFeatures.Nx), Is.EqualTo(CpuFeatureSet.Of(CpuFeatures.Sse)));
            Assert.That(a.With(CpuFeatures.Sse, false).With(CpuFeatures.Nx, false), Is.EqualTo(CpuFeatureSet.Empty));
            Assert.That(a.Intersect(CpuFeatureSet.Of(CpuFeatures.Nx, CpuFeatures.Avx)), Is.EqualTo(CpuFeatureSet.Of(CpuFeatures.Nx)));
            Assert.That(a.GetMask(1, 7, CpuidRegister.Edx), Is.EqualTo(1u << 25), "leaf 1 has no sub-leaves");
            Assert.That(CpuFeatureSet.Of(CpuFeatures.Bmi1).GetMask(7, 1, CpuidRegister.Ebx), Is.Zero, "leaf 7 has");
        });
    }

    [TestCase("Intel", "b", 0xDu, 40, "vendor")]
    [TestCase("GenuineIntel", "a brand string that is much too long to fit in 48 bytes", 0xDu, 40, "brand")]
    [TestCase("GenuineIntel", "b", 0u, 40, "maxBasicLeaf")]
    [TestCase("GenuineIntel", "b", 0xDu, 53, "physicalAddressBits")]
    public void BadModelsAreRejected(string vendor, string brand, uint maxBasic, int physicalBits, string parameter)
    {
        Assert.That(() => Model(vendor, brand, maxBasic, physicalBits: physicalBits),
            Throws.InstanceOf<ArgumentException>().With.Property(nameof(ArgumentException.ParamName)).EqualTo(parameter));
    }
}
