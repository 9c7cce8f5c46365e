using System.Runtime.Versioning;
using Hypervisor.Accel.Kvm.Interop;
using Hypervisor.Accel.Tcg;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Cpu;
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Kvm.Tests;

/// <summary>
/// The same firmware executes CPUID for every leaf of the CPU model on tcg and on kvm (the real CPU, configured with
/// <c>KVM_SET_CPUID2</c>) and reports the registers through a port. Both must present the model's identity, nothing
/// outside the model, and the same answer for every feature both can back; kvm's feature bits must be exactly the
/// model's that the kernel's <c>KVM_GET_SUPPORTED_CPUID</c> lists (read here directly), minus the local APIC that the
/// adapter cannot back.
/// </summary>
[TestFixture]
[Category("Kvm")]
[NonParallelizable]
[SupportedOSPlatform("linux")]
public sealed class KvmCpuidTests
{
    private const ushort ReportPort = 0x510;

    private static readonly (uint Leaf, uint Subleaf)[] s_leaves =
    [
        (0, 0), (1, 0), (7, 0), (0xD, 0), (0xD, 1), (0x8000_0000, 0), (0x8000_0001, 0), (0x8000_0002, 0),
        (0x8000_0003, 0), (0x8000_0004, 0), (0x8000_0008, 0),
    ];

    [SetUp]
    public void RequireKvm() => KvmHost.RequireKvm();

    private sealed class DwordPort : IPortDevice
    {
        public List<uint> Values { get; } = [];

        public uint Read(ushort offset, int size) => 0;

        public void Write(ushort offset, int size, uint value) => Values.Add(value);
    }

    private static Dictionary<(uint, uint), CpuidResult> RunCpuidGuest(IAccelerator accelerator)
    {
        var image = new byte[0x10000];
        Guest.Assemble16(0, a =>
        {
            foreach ((uint leaf, uint subleaf) in s_leaves)
            {
                a.mov(eax, leaf);
                a.mov(ecx, subleaf);
                a.cpuid();
                a.mov(esi, edx);
                a.mov(dx, ReportPort);
                a.@out(dx, eax);
                a.mov(eax, ebx);
                a.@out(dx, eax);
                a.mov(eax, ecx);
                a.@out(dx, eax);
                a.mov(eax, esi);
                a.@out(dx, eax);
            }

            a.cli();
            a.hlt();
        }).CopyTo(image, 0);
        image[0xFFF0] = 0xE9; // JMP rel16 to offset 0 of the segment
        image[0xFFF1] = 0x0D;
        image[0xFFF2] = 0x00;

        var port = new DwordPort();
        var selector = new AcceleratorSelector([accelerator]);
        using var builder = new VirtualMachineBuilder();
        GuestMemoryLayout.AddRam(builder.Memory, 2 << 20);
        GuestMemoryLayout.AddFirmware(builder.Memory, image);
        builder.Ports.Register(ReportPort, 1, port, "cpuid-report");
        using VirtualMachine machine = builder.Build(selector, selector.Parse(accelerator.Name));
        MachineRunResult result = machine.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(60)));
        Assert.That(result.Reason, Is.EqualTo(MachineStopReason.Halted), $"{accelerator.Name}: {result.Detail}");
        Assert.That(port.Values, Has.Count.EqualTo(s_leaves.Length * 4), accelerator.Name);
        var answers = new Dictionary<(uint, uint), CpuidResult>();
        for (int i = 0; i < s_leaves.Length; i++)
        {
            answers[s_leaves[i]] = new CpuidResult(port.Values[4 * i], port.Values[(4 * i) + 1], port.Values[(4 * i) + 2],
                port.Values[(4 * i) + 3]);
        }

        return answers;
    }

    [Test]
    public void TcgAndKvmPresentTheSameCpuIdentityAndAgreeOnEveryFeatureBoth()
    {
        Dictionary<(uint, uint), CpuidResult> kvm = RunCpuidGuest(new KvmAccelerator());
        Dictionary<(uint, uint), CpuidResult> tcg = RunCpuidGuest(new TcgAccelerator());
        kvm_cpuid_entry2[] supported;
        using (KvmSystem system = KvmSystem.Open())
        {
            supported = system.GetSupportedCpuid();
        }

        CpuModel model = CpuModel.Default;
        CpuidTable modelTable = model.Present(model.Features);
        CpuFeatureSet kvmSees = CpuFeatureSet.FromCpuid((l, s) => kvm[(l, s)]);
        CpuFeatureSet tcgSees = CpuFeatureSet.FromCpuid((l, s) => tcg[(l, s)]);
        CpuFeatureSet kernel = CpuFeatureSet.FromCpuid((l, s) => KvmCpuid.Find(supported, l, s));
        CpuFeatureSet expectedOnKvm = model.Features.Intersect(kernel)
            .Without(CpuFeatures.Apic).Without(CpuFeatures.X2Apic) // no in-kernel or user-space local APIC behind it
            .Without(CpuFeatures.Osxsave);                         // mirrors CR4.OSXSAVE, clear after reset
        uint kernelPhysicalBits = (KvmCpuid.Find(supported, 0x8000_0008, 0)?.Eax ?? 0) & 0xFF;
        TestContext.Out.WriteLine($"kvm sees: {kvmSees}\ntcg sees: {tcgSees}\nkernel:   {kernel}");

        Assert.Multiple(() =>
        {
            foreach ((uint, uint) identity in new[] { (0u, 0u), (0x8000_0000u, 0u), (0x8000_0002u, 0u), (0x8000_0003u, 0u), (0x8000_0004u, 0u) })
            {
                Assert.That(kvm[identity], Is.EqualTo(modelTable.Query(identity.Item1, 0, 0)), $"kvm leaf {identity.Item1:X}");
                Assert.That(tcg[identity], Is.EqualTo(kvm[identity]), $"tcg leaf {identity.Item1:X}");
            }

            Assert.That(kvm[(1, 0)].Eax, Is.EqualTo(model.Signature), "kvm signature");
            Assert.That(tcg[(1, 0)].Eax, Is.EqualTo(model.Signature), "tcg signature");
            Assert.That(tcg[(1, 0)].Ebx & 0xFFFF_00FF, Is.EqualTo(kvm[(1, 0)].Ebx & 0xFFFF_00FF), "leaf 1 EBX (APIC ID 0)");
            Assert.That(kvm[(0x8000_0008, 0)].Eax, Is.EqualTo(Math.Min(40u, kernelPhysicalBits) | (48u << 8)), "kvm address sizes");
            Assert.That(tcg[(0x8000_0008, 0)].Eax, Is.EqualTo(40u | (48u << 8)), "tcg address sizes");

            Assert.That(kvmSees, Is.EqualTo(expectedOnKvm), "kvm: the model's features the kernel supports");
            Assert.That(kvmSees.Intersect(kernel), Is.EqualTo(kvmSees), "kvm shows nothing the kernel lacks");
            Assert.That(tcgSees.Intersect(model.Features), Is.EqualTo(tcgSees), "tcg shows nothing outside the model");
            Assert.That(tcgSees.Intersect(expectedOnKvm), Is.EqualTo(kvmSees.Intersect(tcgSees)),
                "every feature tcg shows and kvm can back is shown by kvm too");
            Assert.That(tcgSees.Contains(CpuFeatures.LongMode) && kvmSees.Contains(CpuFeatures.LongMode), Is.True, "LM on both");

            // KVM keeps CPUID.0DH.0:EBX at the XSAVE size for the current XCR0 (x87 only after reset).
            Assert.That(kvm[(0xD, 0)], Is.EqualTo(new CpuidResult(3, 576, 576, 0)), "kvm XSAVE leaf");
        });
    }
}
