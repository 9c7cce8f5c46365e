namespace Hypervisor.Core.Io;

/// <summary>
/// The x86 port I/O space (65536 ports). Devices are registered at ranges; ports nobody claims read as all ones and
/// ignore writes, like a PC's ISA bus, and are counted so that tests and users can see them.
/// </summary>
/// <remarks>Thread-safe: every access takes the machine's <see cref="IoLock"/>. Registration is not allowed while guests run.</remarks>
public sealed class PortIoBus
{
    private readonly IoLock _ioLock;
    private readonly ushort[] _slot = new ushort[65536]; // 0 = unclaimed, else index+1 into _entries
    private readonly List<Entry> _entries = [];
    private long _unclaimedReads;
    private long _unclaimedWrites;
    private int _lastUnclaimedPort = -1;

    /// <summary>Creates an empty bus whose accesses take <paramref name="ioLock"/>.</summary>
    public PortIoBus(IoLock ioLock) => _ioLock = ioLock ?? throw new ArgumentNullException(nameof(ioLock));

    /// <summary>The lock every access takes.</summary>
    public IoLock IoLock => _ioLock;

    /// <summary>Reads from ports that no device claims.</summary>
    public long UnclaimedReadCount => Interlocked.Read(ref _unclaimedReads);

    /// <summary>Writes to ports that no device claims.</summary>
    public long UnclaimedWriteCount => Interlocked.Read(ref _unclaimedWrites);

    /// <summary>The last unclaimed port accessed, or -1.</summary>
    public int LastUnclaimedPort => Volatile.Read(ref _lastUnclaimedPort);

    /// <summary>The registered ranges.</summary>
    public IReadOnlyList<PortRange> Ranges => _entries.Select(e => e.Range).ToArray();

    /// <summary>Registers <paramref name="device"/> for <paramref name="count"/> ports starting at <paramref name="firstPort"/>.</summary>
    /// <exception cref="HypervisorConfigurationException">The range is empty, runs past port 0xFFFF or overlaps another device.</exception>
    public void Register(ushort firstPort, int count, IPortDevice device, string name)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(name);
        if (count <= 0 || firstPort + count > 65536)
        {
            throw new HypervisorConfigurationException(
                $"Port range for '{name}' at 0x{firstPort:X} with {count} ports is empty or runs past port 0xFFFF.");
        }

        lock (_ioLock.Sync)
        {
            for (int p = firstPort; p < firstPort + count; p++)
            {
                if (_slot[p] != 0)
                {
                    PortRange other = _entries[_slot[p] - 1].Range;
                    throw new HypervisorConfigurationException(
                        $"Port range for '{name}' 0x{firstPort:X}-0x{firstPort + count - 1:X} overlaps '{other.Name}' 0x{other.First:X}-0x{other.First + other.Count - 1:X}.");
                }
            }

            if (_entries.Count >= ushort.MaxValue)
            {
                throw new HypervisorConfigurationException("Too many port ranges registered.");
            }

            _entries.Add(new Entry(new PortRange(firstPort, count, name), device));
            ushort index = (ushort)_entries.Count;
            for (int p = firstPort; p < firstPort + count; p++)
            {
                _slot[p] = index;
            }
        }
    }

    /// <summary>Performs a guest IN of <paramref name="size"/> bytes (1, 2 or 4).</summary>
    public uint Read(ushort port, int size)
    {
        int index = _slot[port];
        if (index == 0)
        {
            Interlocked.Increment(ref _unclaimedReads);
            Volatile.Write(ref _lastUnclaimedPort, port);
            return size >= 4 ? uint.MaxValue : (1u << (size * 8)) - 1;
        }

        Entry e = _entries[index - 1];
        uint value;
        lock (_ioLock.Sync)
        {
            value = e.Device.Read((ushort)(port - e.Range.First), size);
        }

        return size >= 4 ? value : value & ((1u << (size * 8)) - 1);
    }

    /// <summary>Performs a guest OUT of the low <paramref name="size"/> bytes of <paramref name="value"/>.</summary>
    public void Write(ushort port, int size, uint value)
    {
        int index = _slot[port];
        if (index == 0)
        {
            Interlocked.Increment(ref _unclaimedWrites);
            Volatile.Write(ref _lastUnclaimedPort, port);
            return;
        }

        Entry e = _entries[index - 1];
        if (size < 4)
        {
            value &= (1u << (size * 8)) - 1;
        }

        lock (_ioLock.Sync)
        {
            e.Device.Write((ushort)(port - e.Range.First), size, value);
        }
    }

    private sealed record Entry(PortRange Range, IPortDevice Device);
}

/// <summary>A registered port range.</summary>
/// <param name="First">The first port.</param>
/// <param name="Count">The number of ports.</param>
/// <param name="Name">The device's name.</param>
public readonly record struct PortRange(ushort First, int Count, string Name);
