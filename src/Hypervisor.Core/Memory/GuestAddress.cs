using System.Globalization;

namespace Hypervisor.Core.Memory;

/// <summary>A guest-physical address.</summary>
/// <param name="Value">The address as a number.</param>
public readonly record struct GuestAddress(ulong Value) : IComparable<GuestAddress>
{
    /// <summary>Address zero.</summary>
    public static GuestAddress Zero => default;

    /// <summary>Adds a byte offset.</summary>
    public static GuestAddress operator +(GuestAddress address, ulong offset) => new(address.Value + offset);

    /// <summary>The distance in bytes between two addresses.</summary>
    public static ulong operator -(GuestAddress end, GuestAddress start) => end.Value - start.Value;

    /// <summary>Compares two addresses.</summary>
    public static bool operator <(GuestAddress left, GuestAddress right) => left.Value < right.Value;

    /// <summary>Compares two addresses.</summary>
    public static bool operator >(GuestAddress left, GuestAddress right) => left.Value > right.Value;

    /// <summary>Compares two addresses.</summary>
    public static bool operator <=(GuestAddress left, GuestAddress right) => left.Value <= right.Value;

    /// <summary>Compares two addresses.</summary>
    public static bool operator >=(GuestAddress left, GuestAddress right) => left.Value >= right.Value;

    /// <inheritdoc />
    public int CompareTo(GuestAddress other) => Value.CompareTo(other.Value);

    /// <summary>True when the address is a multiple of <paramref name="alignment"/> (a power of two).</summary>
    public bool IsAligned(ulong alignment) => (Value & (alignment - 1)) == 0;

    /// <inheritdoc />
    public override string ToString() => "0x" + Value.ToString("X", CultureInfo.InvariantCulture);
}
