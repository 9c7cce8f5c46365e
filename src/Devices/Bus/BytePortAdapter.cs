using Hypervisor.Core.Io;

namespace Hypervisor.Devices.Bus;

/// <summary>
/// Places an <see cref="IByteRegisterDevice"/> on the port bus. A 16- or 32-bit access is split into byte accesses
/// at consecutive ports, lowest first (how an 8-bit ISA device sees a wide IN/OUT); bytes that fall past the device's
/// range read as 0xFF and are dropped on write, as on a PC bus.
/// </summary>
public sealed class BytePortAdapter : IPortDevice
{
    private readonly IByteRegisterDevice _device;
    private readonly int _portCount;

    /// <summary>Creates an adapter for <paramref name="device"/> spanning <paramref name="portCount"/> ports.</summary>
    public BytePortAdapter(IByteRegisterDevice device, int portCount)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentOutOfRangeException.ThrowIfLessThan(portCount, 1);
        _device = device;
        _portCount = portCount;
    }

    /// <inheritdoc />
    public uint Read(ushort offset, int size)
    {
        uint value = 0;
        for (int i = 0; i < size && i < 4; i++)
        {
            int o = offset + i;
            uint b = o < _portCount ? _device.ReadRegister(o) : 0xFFu;
            value |= b << (8 * i);
        }

        return value;
    }

    /// <inheritdoc />
    public void Write(ushort offset, int size, uint value)
    {
        for (int i = 0; i < size && i < 4; i++)
        {
            int o = offset + i;
            if (o < _portCount)
            {
                _device.WriteRegister(o, (byte)(value >> (8 * i)));
            }
        }
    }
}
