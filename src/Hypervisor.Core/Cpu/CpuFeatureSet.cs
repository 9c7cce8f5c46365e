namespace Hypervisor.Core.Cpu;

/// <summary>
/// An immutable set of <c>CPUID</c> feature flags, held as one mask per feature register. A CPU model's features, what
/// an accelerator can really do, and what a guest is shown are all feature sets; the guest sees their intersection.
/// </summary>
public sealed class CpuFeatureSet : IEquatable<CpuFeatureSet>
{
    private readonly KeyValuePair<CpuidRegisterLocation, uint>[] _masks; // sorted by location, no zero masks

    private CpuFeatureSet(KeyValuePair<CpuidRegisterLocation, uint>[] masks) => _masks = masks;

    /// <summary>The set without any feature.</summary>
    public static CpuFeatureSet Empty { get; } = new([]);

    /// <summary>A set of the given features.</summary>
    /// <param name="features">The features.</param>
    public static CpuFeatureSet Of(params ReadOnlySpan<CpuFeature> features)
    {
        var masks = new Dictionary<CpuidRegisterLocation, uint>();
        foreach (CpuFeature feature in features)
        {
            masks[feature.Location] = masks.GetValueOrDefault(feature.Location) | feature.Mask;
        }

        return Create(masks);
    }

    /// <summary>
    /// The features a CPU (or a hypervisor's list of supported leaves) reports in the feature registers of
    /// <see cref="CpuFeatures.FeatureRegisters"/>.
    /// </summary>
    /// <param name="query">Answers one leaf and sub-leaf, or <see langword="null"/> where the source has no such leaf.</param>
    public static CpuFeatureSet FromCpuid(Func<uint, uint, CpuidResult?> query)
    {
        ArgumentNullException.ThrowIfNull(query);
        var masks = new Dictionary<CpuidRegisterLocation, uint>();
        foreach (CpuidRegisterLocation location in CpuFeatures.FeatureRegisters)
        {
            if (query(location.Leaf, location.Subleaf) is CpuidResult result)
            {
                masks[location] = result[location.Register];
            }
        }

        return Create(masks);
    }

    /// <summary>The registers that have at least one feature of this set, with their masks, in leaf order.</summary>
    public IEnumerable<KeyValuePair<CpuidRegisterLocation, uint>> Masks => _masks;

    /// <summary>The mask of features this set has in one register (0 if none).</summary>
    /// <param name="location">The register.</param>
    public uint GetMask(CpuidRegisterLocation location)
    {
        foreach (KeyValuePair<CpuidRegisterLocation, uint> entry in _masks)
        {
            if (entry.Key == location)
            {
                return entry.Value;
            }
        }

        return 0;
    }

    /// <summary>The mask of features this set has in one register (0 if none).</summary>
    /// <param name="leaf">The leaf.</param>
    /// <param name="subleaf">The sub-leaf; ignored for leaves without sub-leaves.</param>
    /// <param name="register">The register.</param>
    public uint GetMask(uint leaf, uint subleaf, CpuidRegister register) =>
        GetMask(new CpuidRegisterLocation(leaf, CpuidRegisterLocation.HasSubleaves(leaf) ? subleaf : 0, register));

    /// <summary>Whether the set has <paramref name="feature"/>.</summary>
    /// <param name="feature">The feature.</param>
    public bool Contains(CpuFeature feature) => (GetMask(feature.Location) & feature.Mask) != 0;

    /// <summary>The features in both sets.</summary>
    /// <param name="other">The other set.</param>
    public CpuFeatureSet Intersect(CpuFeatureSet other)
    {
        ArgumentNullException.ThrowIfNull(other);
        var masks = new Dictionary<CpuidRegisterLocation, uint>();
        foreach (KeyValuePair<CpuidRegisterLocation, uint> entry in _masks)
        {
            masks[entry.Key] = entry.Value & other.GetMask(entry.Key);
        }

        return Create(masks);
    }

    /// <summary>This set with <paramref name="feature"/> added when <paramref name="present"/> is true and removed otherwise.</summary>
    /// <param name="feature">The feature.</param>
    /// <param name="present">Whether the result has it.</param>
    public CpuFeatureSet With(CpuFeature feature, bool present = true)
    {
        var masks = _masks.ToDictionary(e => e.Key, e => e.Value);
        uint mask = masks.GetValueOrDefault(feature.Location);
        masks[feature.Location] = present ? mask | feature.Mask : mask & ~feature.Mask;
        return Create(masks);
    }

    /// <summary>This set without <paramref name="feature"/>.</summary>
    /// <param name="feature">The feature.</param>
    public CpuFeatureSet Without(CpuFeature feature) => With(feature, false);

    /// <summary>
    /// This set limited to what the shared device model's local APIC (Devices/Apic) can back, for accelerators that use
    /// it instead of one of their own: without x2APIC and the TSC-deadline timer, which it does not implement, and
    /// without the APIC itself when the machine has none.
    /// </summary>
    /// <param name="localApic">Whether the machine gives every vCPU a local APIC.</param>
    public CpuFeatureSet LimitedToDeviceModelApic(bool localApic)
    {
        CpuFeatureSet limited = Without(CpuFeatures.X2Apic).Without(CpuFeatures.TscDeadline);
        return localApic ? limited : limited.Without(CpuFeatures.Apic);
    }

    /// <inheritdoc />
    public bool Equals(CpuFeatureSet? other) => other is not null && _masks.AsSpan().SequenceEqual(other._masks);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as CpuFeatureSet);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (KeyValuePair<CpuidRegisterLocation, uint> entry in _masks)
        {
            hash.Add(entry.Key);
            hash.Add(entry.Value);
        }

        return hash.ToHashCode();
    }

    /// <summary>The masks, one register a line (for test messages).</summary>
    public override string ToString() =>
        string.Join(", ", _masks.Select(e => $"{e.Key}=0x{e.Value:X8}"));

    private static CpuFeatureSet Create(Dictionary<CpuidRegisterLocation, uint> masks)
    {
        KeyValuePair<CpuidRegisterLocation, uint>[] sorted = masks
            .Where(e => e.Value != 0)
            .OrderBy(e => e.Key.Leaf).ThenBy(e => e.Key.Subleaf).ThenBy(e => e.Key.Register)
            .ToArray();
        return new CpuFeatureSet(sorted);
    }
}
