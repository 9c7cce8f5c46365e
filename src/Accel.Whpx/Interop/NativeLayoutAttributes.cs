namespace Hypervisor.Accel.Whpx.Interop;

/// <summary>
/// Spells the exact C type of a P/Invoke parameter or return value (or of a callback parameter) where the default
/// mapping from the C# type would lose information, typically <c>const</c>. Read by the header-check test.
/// </summary>
[AttributeUsage(AttributeTargets.Parameter | AttributeTargets.ReturnValue, AllowMultiple = false)]
internal sealed class NativeTypeAttribute(string cType) : Attribute
{
    public string CType { get; } = cType;
}

/// <summary>Names the C typedef an <c>[UnmanagedCallersOnly]</c> method must be assignable to.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
internal sealed class NativeCallbackAttribute(string typedefName) : Attribute
{
    public string TypedefName { get; } = typedefName;
}

/// <summary>
/// Marks a field whose C counterpart is a group of bit-fields (which <c>offsetof</c> cannot name); its bits are
/// checked through the <see cref="NativeBitFieldAttribute"/> table instead.
/// </summary>
[AttributeUsage(AttributeTargets.Field, AllowMultiple = false)]
internal sealed class BitFieldStorageAttribute : Attribute;

/// <summary>
/// Ties a <see cref="BitField"/> constant to the C bit-field it encodes: setting <paramref name="member"/> to all ones
/// in a zeroed <paramref name="cType"/> must set exactly <see cref="BitField.Mask"/> in the
/// <paramref name="storageSizeInBytes"/> bytes at <paramref name="storageOffset"/>.
/// </summary>
[AttributeUsage(AttributeTargets.Field, AllowMultiple = false)]
internal sealed class NativeBitFieldAttribute(string cType, string member, int storageOffset, int storageSizeInBytes) : Attribute
{
    public string CType { get; } = cType;
    public string Member { get; } = member;
    public int StorageOffset { get; } = storageOffset;
    public int StorageSizeInBytes { get; } = storageSizeInBytes;
}

/// <summary>A bit-field inside an integer: <see cref="Width"/> bits starting at bit <see cref="Shift"/>.</summary>
internal readonly record struct BitField(int Shift, int Width)
{
    public ulong Mask => (Width == 64 ? ulong.MaxValue : ((1UL << Width) - 1)) << Shift;

    public ulong Get(ulong storage) => (storage & Mask) >> Shift;

    public ulong Set(ulong storage, ulong value) => (storage & ~Mask) | ((value << Shift) & Mask);

    public bool IsSet(ulong storage) => (storage & Mask) != 0;
}
