// debugcon: QEMU's isa-debugcon, a one-port console for firmware debug output (SeaBIOS prints to 0x402,
// Bochs-style code to 0xE9).
//
// Register map (each instance of the port, 1 port):
//   write : the low byte goes to the host (a stream, or a bounded in-memory buffer readable through the API)
//   read  : 0xE9 (QEMU's readback value, which lets a guest detect the port)
//
// Specification: QEMU's isa-debugcon (docs: `-debugcon`, property readback=0xe9); guest-contract.md.
using System.Text;
using Hypervisor.Core.Io;
using Hypervisor.Devices.Bus;

namespace Hypervisor.Devices.DebugCon;

/// <summary>
/// The debug console: bytes the guest writes to its ports go to a host stream, or, when there is none, into a bounded
/// in-memory buffer that keeps the most recent <see cref="BufferCapacity"/> bytes.
/// </summary>
/// <remarks>Guest access happens with the I/O lock held; read the buffer through the methods here with the lock held
/// or after the machine stopped (they take the I/O lock if the console was given it).</remarks>
public sealed class DebugConsole : IByteRegisterDevice
{
    /// <summary>The port SeaBIOS uses on QEMU.</summary>
    public const ushort SeaBiosPort = 0x402;

    /// <summary>The Bochs/QEMU classic debug port.</summary>
    public const ushort BochsPort = 0xE9;

    /// <summary>The value reads return (QEMU's default readback).</summary>
    public const byte ReadbackValue = 0xE9;

    /// <summary>The default in-memory capacity: 1 MiB.</summary>
    public const int DefaultBufferCapacity = 1024 * 1024;

    private readonly HostOutput _output;
    private readonly ByteRing? _buffer;
    private readonly IoLock? _ioLock;

    /// <summary>Creates a debug console writing to <paramref name="output"/>, or keeping output in memory when it is null.</summary>
    /// <param name="output">The host stream, or null to keep output in memory.</param>
    /// <param name="bufferCapacity">The in-memory capacity in bytes (used when <paramref name="output"/> is null).</param>
    /// <param name="ioLock">The machine's I/O lock, taken by the host-side readers here; null when the caller serialises.</param>
    public DebugConsole(Stream? output = null, int bufferCapacity = DefaultBufferCapacity, IoLock? ioLock = null)
    {
        _output = new HostOutput(output);
        _buffer = output is null ? new ByteRing(bufferCapacity) : null;
        _ioLock = ioLock;
    }

    /// <summary>The capacity of the in-memory buffer (0 when output goes to a stream).</summary>
    public int BufferCapacity => _buffer?.Capacity ?? 0;

    /// <summary>Bytes the guest has written in total.</summary>
    public long BytesWritten { get; private set; }

    /// <summary>Bytes lost: the oldest ones pushed out of a full buffer, or those a failed stream could not take.</summary>
    public long BytesDropped { get; private set; }

    /// <inheritdoc />
    public byte ReadRegister(int offset) => ReadbackValue;

    /// <inheritdoc />
    public void WriteRegister(int offset, byte value)
    {
        if (offset != 0)
        {
            return;
        }

        BytesWritten++;
        if (_buffer is not null)
        {
            if (!_buffer.EnqueueOverwrite(value))
            {
                BytesDropped++;
            }
        }
        else
        {
            long before = _output.DroppedBytes;
            _output.Write(value, flush: value == (byte)'\n');
            BytesDropped += _output.DroppedBytes - before;
        }
    }

    /// <summary>The bytes kept in memory (oldest first), without removing them.</summary>
    public byte[] GetBufferedBytes()
    {
        if (_ioLock is null)
        {
            return _buffer?.ToArray() ?? [];
        }

        lock (_ioLock.Sync)
        {
            return _buffer?.ToArray() ?? [];
        }
    }

    /// <summary>The bytes kept in memory decoded as Latin-1 (one character per byte, as a terminal would show ASCII).</summary>
    public string GetBufferedText() => Encoding.Latin1.GetString(GetBufferedBytes());

    /// <summary>Removes and returns the bytes kept in memory.</summary>
    public byte[] DrainBuffer()
    {
        if (_ioLock is null)
        {
            return Drain();
        }

        lock (_ioLock.Sync)
        {
            return Drain();
        }
    }

    private byte[] Drain()
    {
        if (_buffer is null)
        {
            return [];
        }

        byte[] bytes = _buffer.ToArray();
        _buffer.Clear();
        return bytes;
    }
}
