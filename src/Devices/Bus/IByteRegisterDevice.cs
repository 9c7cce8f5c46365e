namespace Hypervisor.Devices.Bus;

/// <summary>
/// A device modelled as a pure state machine of byte-wide registers addressed by offset, as ISA devices are.
/// It knows nothing about buses; <see cref="BytePortAdapter"/> places it at a port range.
/// </summary>
/// <remarks>Call with the machine's I/O lock held (the bus takes it).</remarks>
public interface IByteRegisterDevice
{
    /// <summary>Reads the register at <paramref name="offset"/>.</summary>
    byte ReadRegister(int offset);

    /// <summary>Writes <paramref name="value"/> to the register at <paramref name="offset"/>.</summary>
    void WriteRegister(int offset, byte value);
}
