// isa-debug-exit: QEMU's test device that ends the emulator when the guest writes to it.
//
// Register map (I/O base 0x501 on the PC, 2 ports; any offset, any access size 1/2/4):
//   write v : stop the machine with exit status (v << 1) | 1      (QEMU: exit((val << 1) | 1))
//   read    : 0xFF.. (QEMU's device has no readable register; the bus reads all ones)
//
// Specification: QEMU's `-device isa-debug-exit,iobase=0x501,iosize=2` as described in guest-contract.md.
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;

namespace Hypervisor.Devices.DebugExit;

/// <summary>
/// QEMU's isa-debug-exit: a write of value v stops the machine with <see cref="MachineStopReason.DebugExit"/> and exit
/// status <c>(v &lt;&lt; 1) | 1</c>.
/// </summary>
/// <remarks>Port access happens with the machine's I/O lock held.</remarks>
public sealed class DebugExitDevice : IPortDevice
{
    /// <summary>The port QEMU's PC places it at by convention (and guest-contract.md requires).</summary>
    public const ushort DefaultPort = 0x501;

    /// <summary>The number of ports it spans (QEMU's default iosize).</summary>
    public const int PortCount = 2;

    private readonly IMachineControl _control;

    /// <summary>Creates the device; writes stop the machine through <paramref name="control"/>.</summary>
    public DebugExitDevice(IMachineControl control) => _control = control ?? throw new ArgumentNullException(nameof(control));

    /// <summary>The last value written, or null if the guest never wrote.</summary>
    public uint? LastValue { get; private set; }

    /// <summary>The exit status of the last write, <c>(v &lt;&lt; 1) | 1</c>, or null.</summary>
    public int? LastExitStatus => LastValue is { } v ? unchecked((int)((v << 1) | 1)) : null;

    /// <inheritdoc />
    public uint Read(ushort offset, int size) => size >= 4 ? uint.MaxValue : (1u << (8 * size)) - 1;

    /// <inheritdoc />
    public void Write(ushort offset, int size, uint value)
    {
        if (size < 4)
        {
            value &= (1u << (8 * size)) - 1;
        }

        LastValue = value;
        _control.RequestStop(MachineStopReason.DebugExit, unchecked((int)((value << 1) | 1)),
            $"isa-debug-exit: the guest wrote 0x{value:X}");
    }
}
