// Port 0x92, "system control port A" (PS/2 and later): fast A20 gate and fast reset.
//
// Register map (1 port):
//   b0 (r/w) fast reset: writing 1 (from 0) resets the processor     b1 (r/w) A20 gate     b2-7 kept
//
// Specification: IBM PS/2 Hardware Interface Technical Reference, port 92h; as in QEMU's PC, a reset ends the run
// (MachineStopReason.Reset, like -no-reboot).
using Hypervisor.Core.Machine;
using Hypervisor.Devices.Bus;

namespace Hypervisor.Devices.I8042;

/// <summary>Port 0x92: fast A20 and fast reset.</summary>
public sealed class FastA20Port : IByteRegisterDevice
{
    /// <summary>The port.</summary>
    public const ushort Port = 0x92;

    private readonly IMachineControl _control;
    private readonly A20Gate _a20;
    private byte _value;

    /// <summary>Creates the port driving <paramref name="a20"/>; a reset request goes to <paramref name="control"/>.</summary>
    public FastA20Port(IMachineControl control, A20Gate a20)
    {
        _control = control ?? throw new ArgumentNullException(nameof(control));
        _a20 = a20 ?? throw new ArgumentNullException(nameof(a20));
    }

    /// <inheritdoc />
    /// <remarks>Reads return the last value written here (0 at power-on), as QEMU's port 0x92 does, even when the i8042
    /// changed the A20 line since.</remarks>
    public byte ReadRegister(int offset) => _value;

    /// <inheritdoc />
    public void WriteRegister(int offset, byte value)
    {
        byte old = _value;
        _value = value;
        _a20.Set((value & 0x02) != 0);
        if ((value & 0x01) != 0 && (old & 0x01) == 0)
        {
            _control.RequestStop(MachineStopReason.Reset, MachineRunResult.StatusFor(MachineStopReason.Reset), "port 0x92 fast reset");
        }
    }
}
