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
    private readonly int _firstRegister;

    /// <summary>Creates an adapter for <paramref name="device"/> spanning <paramref name="portCount"/> ports.</summary>
    /// <param name="device">The device.</param>
    /// <param name="portCount">The number of ports of this registration.</param>
    /// <param name="firstRegister">The register offset of the first port (for devices whose ports are not contiguous,
    /// such as the i8042 at 0x60 and 0x64).</param>
    public BytePortAdapter(IByteRegisterDevice device, int portCount, int firstRegister = 0)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentOutOfRangeException.ThrowIfLessThan(portCount, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(firstRegister);
        _device = device;
        _portCount = portCount;
        _firstRegister = firstRegister;
    }

    /// <inheritdoc />
    public uint Read(ushort offset, int size)
    {
        uint value = 0;
        for (int i = 0; i < size && i < 4; i++)
        {
            int o = offset + i;
            uint b = o < _portCount ? _device.ReadRegister(_firstRegister + o) : 0xFFu;
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
                _device.WriteRegister(_firstRegister + o, (byte)(value >> (8 * i)));
            }
        }
    }
}
