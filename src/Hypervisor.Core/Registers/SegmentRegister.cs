namespace Hypervisor.Core.Registers;

/// <summary>
/// A segment register with its hidden descriptor cache (the same fields as KVM's <c>kvm_segment</c>).
/// </summary>
/// <param name="Selector">The visible selector.</param>
/// <param name="Base">The cached base address.</param>
/// <param name="Limit">The cached limit in bytes (already scaled by the granularity bit).</param>
/// <param name="Type">The descriptor type field (4 bits): for code/data, bit 3 = code, bit 1 = writable/readable, bit 0 = accessed.</param>
/// <param name="Present">The P bit.</param>
/// <param name="Dpl">The descriptor privilege level (0-3).</param>
/// <param name="DefaultSize">The D/B bit: 32-bit default operand size (code) or big stack (data).</param>
/// <param name="IsCodeOrData">The S bit: a code or data segment rather than a system descriptor.</param>
/// <param name="Long">The L bit: 64-bit code segment.</param>
/// <param name="Granularity">The G bit, as loaded (the limit is already scaled).</param>
/// <param name="Available">The AVL bit.</param>
/// <param name="Unusable">True for a null selector loaded in protected mode (the segment cannot be used).</param>
public readonly record struct SegmentRegister(
    ushort Selector,
    ulong Base,
    uint Limit,
    byte Type,
    bool Present,
    byte Dpl,
    bool DefaultSize,
    bool IsCodeOrData,
    bool Long,
    bool Granularity,
    bool Available,
    bool Unusable)
{
    /// <summary>A real-mode data segment for <paramref name="selector"/> (base = selector × 16, 64 KiB limit, read/write).</summary>
    public static SegmentRegister RealMode(ushort selector, byte type = 3) =>
        new(selector, (ulong)selector << 4, 0xFFFF, type, true, 0, false, true, false, false, false, false);

    /// <summary>
    /// The attribute bits packed as in a descriptor's bytes 5-6 (type, S, DPL, P, AVL, L, D/B, G), the form VMX and
    /// WHPX use.
    /// </summary>
    public ushort Attributes =>
        (ushort)((Type & 0xF) | (IsCodeOrData ? 1 << 4 : 0) | ((Dpl & 3) << 5) | (Present ? 1 << 7 : 0) |
                 (Available ? 1 << 12 : 0) | (Long ? 1 << 13 : 0) | (DefaultSize ? 1 << 14 : 0) |
                 (Granularity ? 1 << 15 : 0));

    /// <summary>Builds a segment from packed <see cref="Attributes"/>.</summary>
    public static SegmentRegister FromAttributes(ushort selector, ulong @base, uint limit, ushort attributes, bool unusable = false) =>
        new(selector, @base, limit, (byte)(attributes & 0xF), (attributes & (1 << 7)) != 0, (byte)((attributes >> 5) & 3),
            (attributes & (1 << 14)) != 0, (attributes & (1 << 4)) != 0, (attributes & (1 << 13)) != 0,
            (attributes & (1 << 15)) != 0, (attributes & (1 << 12)) != 0, unusable);
}

/// <summary>A descriptor-table register (GDTR or IDTR).</summary>
/// <param name="Base">The linear base address.</param>
/// <param name="Limit">The limit in bytes (size - 1).</param>
public readonly record struct DescriptorTableRegister(ulong Base, ushort Limit);
