// POST code port: firmware writes progress codes to port 0x80 (a PC's "Port 80" diagnostic card displays them).
//
// Register map (I/O base 0x80, 1 port):
//   write : latch the value (the last value is kept; a wide write latches its low byte, as a byte-wide card sees it)
//   read  : 0xFF (POST cards are write-only; QEMU's PC answers reads of port 0x80 with all ones)
//
// Specification: guest-contract.md ("last value kept; writes are cheap and never exit the run loop in tcg").
using Hypervisor.Devices.Bus;

namespace Hypervisor.Devices.Post;

/// <summary>The POST diagnostic port: keeps the last code written and counts writes.</summary>
public sealed class PostCodePort : IByteRegisterDevice
{
    /// <summary>The PC's POST port.</summary>
    public const ushort DefaultPort = 0x80;

    /// <summary>The last code written (0 until the first write).</summary>
    public byte LastCode { get; private set; }

    /// <summary>How many codes have been written.</summary>
    public long WriteCount { get; private set; }

    /// <inheritdoc />
    public byte ReadRegister(int offset) => 0xFF;

    /// <inheritdoc />
    public void WriteRegister(int offset, byte value)
    {
        if (offset == 0)
        {
            LastCode = value;
            WriteCount++;
        }
    }
}
