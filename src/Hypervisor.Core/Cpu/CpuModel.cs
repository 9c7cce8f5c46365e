using System.Text;
using Hypervisor.Core.Registers;

namespace Hypervisor.Core.Cpu;

/// <summary>
/// The CPU our machines present to guests: vendor, processor signature, brand string, the highest basic and extended
/// <c>CPUID</c> leaves, the feature flags and the address sizes. Every accelerator shows a guest the same identity and
/// the model's features intersected with what that accelerator can really do (<see cref="Present"/>), so that a guest
/// sees one CPU whichever accelerator runs it, minus what an accelerator lacks.
/// </summary>
/// <remarks>
/// Leaves the model defines: 0 (highest basic leaf, vendor), 1 (signature, APIC ID, features), 7.0 (structured
/// extended features), 0DH.0 and 0DH.1 (XSAVE components and sizes; present only when an XSAVE state component is
/// presented), 80000000H (highest extended leaf), 80000001H (extended features), 80000002H-80000004H (brand string)
/// and 80000008H (address sizes). Other leaves up to the highest ones read as zero; leaves beyond them answer as the
/// highest basic leaf, as Intel processors do (Intel SDM Vol. 2A, CPUID, "INPUT EAX = 0").
/// </remarks>
public sealed class CpuModel
{
    private readonly byte[] _brand = new byte[48];

    /// <summary>Creates a model.</summary>
    /// <param name="vendor">The 12-character vendor identification string (CPUID.0:EBX,EDX,ECX).</param>
    /// <param name="signature">The processor signature (CPUID.1:EAX; EDX after reset).</param>
    /// <param name="brand">The brand string, at most 47 ASCII characters (CPUID.80000002H-80000004H).</param>
    /// <param name="maxBasicLeaf">The highest basic leaf, at least 1.</param>
    /// <param name="maxExtendedLeaf">The highest extended leaf, at least 80000008H.</param>
    /// <param name="physicalAddressBits">MAXPHYADDR (CPUID.80000008H:EAX[7:0]), 32 to 52.</param>
    /// <param name="linearAddressBits">Linear address width (CPUID.80000008H:EAX[15:8]), 48 or 57.</param>
    /// <param name="features">The feature flags, all in <see cref="CpuFeatures.FeatureRegisters"/>.</param>
    /// <exception cref="ArgumentException">An argument is outside the range given.</exception>
    public CpuModel(string vendor, uint signature, string brand, uint maxBasicLeaf, uint maxExtendedLeaf,
        int physicalAddressBits, int linearAddressBits, CpuFeatureSet features)
    {
        ArgumentNullException.ThrowIfNull(vendor);
        ArgumentNullException.ThrowIfNull(brand);
        ArgumentNullException.ThrowIfNull(features);
        if (vendor.Length != 12 || !Ascii.IsValid(vendor))
        {
            throw new ArgumentException("The vendor string must be 12 ASCII characters.", nameof(vendor));
        }

        if (brand.Length > 47 || !Ascii.IsValid(brand))
        {
            throw new ArgumentException("The brand string must be at most 47 ASCII characters.", nameof(brand));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(maxBasicLeaf, 1u);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxBasicLeaf, 0x3FFF_FFFFu);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxExtendedLeaf, 0x8000_0008u);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxExtendedLeaf, 0x8000_FFFFu);
        ArgumentOutOfRangeException.ThrowIfLessThan(physicalAddressBits, 32);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(physicalAddressBits, 52);
        if (linearAddressBits is not (48 or 57))
        {
            throw new ArgumentException("The linear address width must be 48 or 57 bits.", nameof(linearAddressBits));
        }

        foreach (KeyValuePair<CpuidRegisterLocation, uint> mask in features.Masks)
        {
            if (!CpuFeatures.FeatureRegisters.Contains(mask.Key))
            {
                throw new ArgumentException($"{mask.Key} is not a feature register of the model.", nameof(features));
            }
        }

        Vendor = vendor;
        Signature = signature;
        Brand = brand;
        Encoding.ASCII.GetBytes(brand, _brand);
        MaxBasicLeaf = maxBasicLeaf;
        MaxExtendedLeaf = maxExtendedLeaf;
        PhysicalAddressBits = physicalAddressBits;
        LinearAddressBits = linearAddressBits;
        Features = features;
    }

    /// <summary>
    /// The model every machine presents unless told otherwise: a "GenuineIntel" family 6 CPU with
    /// <see cref="ResetState.ProcessorSignature"/>, 40-bit physical and 48-bit linear addresses, x87/MMX/SSE to SSE4.2,
    /// FXSR and XSAVE with XSAVEOPT (x87 and SSE state only, no AVX), a local APIC, the integer extensions CX8, CX16, CMOV, POPCNT,
    /// MOVBE, LZCNT, BMI1, BMI2 and ADX, PSE/PSE-36/PAE/PGE/PAT, NX, 1 GiB pages, SYSENTER, SYSCALL, RDTSCP, long mode and
    /// the virtual-8086 mode extensions (VME, with PVI). No MTRR, MCE/MCA, x2APIC, AVX or hypervisor leaves.
    /// </summary>
    public static CpuModel Default { get; } = new(
        "GenuineIntel",
        ResetState.ProcessorSignature,
        "Hypervisor x86-64 virtual CPU",
        maxBasicLeaf: 0xD,
        maxExtendedLeaf: 0x8000_0008,
        physicalAddressBits: 40,
        linearAddressBits: 48,
        CpuFeatureSet.Of(
            CpuFeatures.Fpu, CpuFeatures.Vme, CpuFeatures.De, CpuFeatures.Pse, CpuFeatures.Tsc, CpuFeatures.Msr, CpuFeatures.Pae,
            CpuFeatures.Cx8, CpuFeatures.Apic, CpuFeatures.Sep, CpuFeatures.Pge, CpuFeatures.Cmov, CpuFeatures.Pat,
            CpuFeatures.Pse36, CpuFeatures.Clfsh, CpuFeatures.Mmx, CpuFeatures.Fxsr, CpuFeatures.Sse, CpuFeatures.Sse2,
            CpuFeatures.Sse3, CpuFeatures.Ssse3, CpuFeatures.Cx16, CpuFeatures.Sse41, CpuFeatures.Sse42,
            CpuFeatures.Movbe, CpuFeatures.Popcnt, CpuFeatures.Xsave, CpuFeatures.Osxsave,
            CpuFeatures.Bmi1, CpuFeatures.Bmi2, CpuFeatures.Adx, CpuFeatures.Smep, CpuFeatures.Smap, CpuFeatures.Umip,
            CpuFeatures.XsaveX87State, CpuFeatures.XsaveSseState, CpuFeatures.XsaveOpt,
            CpuFeatures.LahfLm, CpuFeatures.Lzcnt,
            CpuFeatures.Syscall, CpuFeatures.Nx, CpuFeatures.Page1Gb, CpuFeatures.Rdtscp, CpuFeatures.LongMode));

    /// <summary>The vendor identification string.</summary>
    public string Vendor { get; }

    /// <summary>The processor signature (family, model, stepping) in CPUID.1:EAX format.</summary>
    public uint Signature { get; }

    /// <summary>The brand string.</summary>
    public string Brand { get; }

    /// <summary>The highest basic leaf (CPUID.0:EAX).</summary>
    public uint MaxBasicLeaf { get; }

    /// <summary>The highest extended leaf (CPUID.80000000H:EAX).</summary>
    public uint MaxExtendedLeaf { get; }

    /// <summary>The physical address width, MAXPHYADDR.</summary>
    public int PhysicalAddressBits { get; }

    /// <summary>The linear address width.</summary>
    public int LinearAddressBits { get; }

    /// <summary>The feature flags of the model.</summary>
    public CpuFeatureSet Features { get; }

    internal ReadOnlySpan<byte> BrandBytes => _brand;

    /// <summary>
    /// The <c>CPUID</c> answers an accelerator gives: this model's identity with the features in both the model and
    /// <paramref name="available"/>, and the smaller of the two physical address widths.
    /// </summary>
    /// <param name="available">What the accelerator can really do.</param>
    /// <param name="maxPhysicalAddressBits">The widest physical address the accelerator supports.</param>
    public CpuidTable Present(CpuFeatureSet available, int maxPhysicalAddressBits = 52)
    {
        ArgumentNullException.ThrowIfNull(available);
        return new CpuidTable(this, Features.Intersect(available), Math.Min(PhysicalAddressBits, maxPhysicalAddressBits));
    }
}
