namespace Hypervisor.Core.Io;

/// <summary>A device that answers port I/O in the range it was registered at.</summary>
/// <remarks>
/// Called with the machine's I/O lock held. <c>offset</c> is relative to the first port of the registration;
/// <c>size</c> is 1, 2 or 4 bytes. Read values are zero-extended; only the low <c>size</c> bytes count.
/// </remarks>
public interface IPortDevice
{
    /// <summary>Reads <paramref name="size"/> bytes from the port at <paramref name="offset"/>.</summary>
    uint Read(ushort offset, int size);

    /// <summary>Writes the low <paramref name="size"/> bytes of <paramref name="value"/> to the port at <paramref name="offset"/>.</summary>
    void Write(ushort offset, int size, uint value);
}
