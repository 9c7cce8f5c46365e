using System.Buffers.Binary;

namespace Hypervisor.Core.Cpu;

/// <summary>One leaf (and sub-leaf) of a <see cref="CpuidTable"/>.</summary>
/// <param name="Leaf">The leaf.</param>
/// <param name="Subleaf">The sub-leaf; 0 for leaves without sub-leaves.</param>
/// <param name="Result">The registers.</param>
public readonly record struct CpuidTableEntry(uint Leaf, uint Subleaf, CpuidResult Result)
{
    /// <summary>Whether the leaf has sub-leaves, so that ECX selects the entry.</summary>
    public bool HasSubleaves => CpuidRegisterLocation.HasSubleaves(Leaf);
}

/// <summary>
/// The <c>CPUID</c> answers of one accelerator: a <see cref="CpuModel"/>'s identity with the features that both the
/// model and the accelerator have. Built by <see cref="CpuModel.Present"/>; immutable and thread-safe.
/// </summary>
public sealed class CpuidTable
{
    /// <summary>Legacy FXSAVE region plus the XSAVE header (Intel SDM Vol. 1, 13.4.1 and 13.4.2).</summary>
    private const uint XsaveLegacyAndHeaderBytes = 512 + 64;

    /// <summary>The AVX state component's size and standard-format offset (Intel SDM Vol. 1, 13.4.3; CPUID.(0DH,2)).</summary>
    private const uint AvxStateBytes = 256;

    private readonly CpuidTableEntry[] _entries;

    internal CpuidTable(CpuModel model, CpuFeatureSet features, int physicalAddressBits)
    {
        Model = model;
        Features = features;
        PhysicalAddressBits = physicalAddressBits;
        _entries = Build();
    }

    /// <summary>The model this table presents.</summary>
    public CpuModel Model { get; }

    /// <summary>The features the guest is shown: the model's that the accelerator has.</summary>
    public CpuFeatureSet Features { get; }

    /// <summary>The physical address width the guest is shown.</summary>
    public int PhysicalAddressBits { get; }

    /// <summary>
    /// The leaves this table defines, for a vCPU whose initial APIC ID is <paramref name="apicId"/>. Leaves up to the
    /// highest ones that are not listed read as zero.
    /// </summary>
    /// <param name="apicId">The initial APIC ID (CPUID.1:EBX[31:24]); only its low 8 bits are kept.</param>
    public CpuidTableEntry[] GetEntries(uint apicId)
    {
        var entries = (CpuidTableEntry[])_entries.Clone();
        for (int i = 0; i < entries.Length; i++)
        {
            if (entries[i].Leaf == 1)
            {
                entries[i] = entries[i] with { Result = WithApicId(entries[i].Result, apicId) };
            }
        }

        return entries;
    }

    /// <summary>What <c>CPUID</c> returns for <paramref name="leaf"/> and <paramref name="subleaf"/>.</summary>
    /// <param name="leaf">EAX on input.</param>
    /// <param name="subleaf">ECX on input (ignored by leaves without sub-leaves).</param>
    /// <param name="apicId">The vCPU's initial APIC ID.</param>
    public CpuidResult Query(uint leaf, uint subleaf, uint apicId)
    {
        bool inRange = leaf <= Model.MaxBasicLeaf || (leaf >= 0x8000_0000 && leaf <= Model.MaxExtendedLeaf);
        if (!inRange)
        {
            leaf = Model.MaxBasicLeaf; // Intel: out-of-range leaves answer as the highest basic leaf, keeping ECX
        }

        if (!CpuidRegisterLocation.HasSubleaves(leaf))
        {
            subleaf = 0;
        }

        foreach (CpuidTableEntry entry in _entries)
        {
            if (entry.Leaf == leaf && entry.Subleaf == subleaf)
            {
                return leaf == 1 ? WithApicId(entry.Result, apicId) : entry.Result;
            }
        }

        return default;
    }

    private static CpuidResult WithApicId(CpuidResult leaf1, uint apicId) =>
        leaf1 with { Ebx = (leaf1.Ebx & 0x00FF_FFFF) | ((apicId & 0xFF) << 24) };

    private uint Mask(uint leaf, uint subleaf, CpuidRegister register) => Features.GetMask(leaf, subleaf, register);

    private CpuidTableEntry[] Build()
    {
        var list = new List<CpuidTableEntry>();
        ReadOnlySpan<byte> vendor = System.Text.Encoding.ASCII.GetBytes(Model.Vendor);
        list.Add(new(0, 0, new CpuidResult(
            Model.MaxBasicLeaf,
            BinaryPrimitives.ReadUInt32LittleEndian(vendor),
            BinaryPrimitives.ReadUInt32LittleEndian(vendor[8..]),
            BinaryPrimitives.ReadUInt32LittleEndian(vendor[4..]))));

        // EBX: brand index 0, CLFLUSH line size in 8-byte units (64 bytes) where CLFLUSH exists, one logical processor
        // per package; the APIC ID is filled in per vCPU (Intel SDM Vol. 2A, CPUID, Table 3-8 leaf 01H).
        uint ebx1 = (1u << 16) | (Features.Contains(CpuFeatures.Clfsh) ? 8u << 8 : 0);
        list.Add(new(1, 0, new CpuidResult(Model.Signature, ebx1,
            Mask(1, 0, CpuidRegister.Ecx), Mask(1, 0, CpuidRegister.Edx))));

        if (Model.MaxBasicLeaf >= 7)
        {
            // EAX = 0: sub-leaf 0 is the only one.
            list.Add(new(7, 0, new CpuidResult(0, Mask(7, 0, CpuidRegister.Ebx), Mask(7, 0, CpuidRegister.Ecx),
                Mask(7, 0, CpuidRegister.Edx))));
        }

        uint components = Mask(0xD, 0, CpuidRegister.Eax);
        if (Model.MaxBasicLeaf >= 0xD && components != 0)
        {
            // Sub-leaf 0: the XCR0 bits that may be set, the XSAVE area size for XCR0 as after reset (x87 only) and for
            // every component presented; sub-leaf 1: the XSAVE instruction variants; sub-leaf 2: where AVX state goes.
            bool avx = (components & CpuFeatures.XsaveAvxState.Mask) != 0;
            uint all = XsaveLegacyAndHeaderBytes + (avx ? AvxStateBytes : 0);
            list.Add(new(0xD, 0, new CpuidResult(components, XsaveLegacyAndHeaderBytes, all, 0)));
            list.Add(new(0xD, 1, new CpuidResult(Mask(0xD, 1, CpuidRegister.Eax), 0, 0, 0)));
            if (avx)
            {
                list.Add(new(0xD, 2, new CpuidResult(AvxStateBytes, XsaveLegacyAndHeaderBytes, 0, 0)));
            }
        }

        list.Add(new(0x8000_0000, 0, new CpuidResult(Model.MaxExtendedLeaf, 0, 0, 0)));
        list.Add(new(0x8000_0001, 0, new CpuidResult(0, 0,
            Mask(0x8000_0001, 0, CpuidRegister.Ecx), Mask(0x8000_0001, 0, CpuidRegister.Edx))));
        ReadOnlySpan<byte> brand = Model.BrandBytes;
        for (uint i = 0; i < 3; i++)
        {
            ReadOnlySpan<byte> part = brand.Slice((int)i * 16, 16);
            list.Add(new(0x8000_0002 + i, 0, new CpuidResult(
                BinaryPrimitives.ReadUInt32LittleEndian(part),
                BinaryPrimitives.ReadUInt32LittleEndian(part[4..]),
                BinaryPrimitives.ReadUInt32LittleEndian(part[8..]),
                BinaryPrimitives.ReadUInt32LittleEndian(part[12..]))));
        }

        list.Add(new(0x8000_0008, 0, new CpuidResult((uint)PhysicalAddressBits | ((uint)Model.LinearAddressBits << 8), 0, 0, 0)));
        return list.ToArray();
    }
}
