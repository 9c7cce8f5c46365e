// QEMU's firmware configuration device (fw_cfg), x86 I/O port flavour.
//
// Register map:
//   0x510 (16-bit write)  selector: item key (bit 14 = write channel, ignored; bit 15 = architecture-specific items);
//                         selecting resets the data offset. A byte write here is a data write (ignored), as in QEMU.
//   0x511 (8-bit read)    data: the next byte of the selected item, 0 past its end; writes are ignored
//   0x514-0x51B           DMA address, 64-bit big-endian; writing its low half (0x518) or all of it starts a transfer;
//                         reads return the signature "QEMU CFG"
//   DMA descriptor (big-endian): u32 control (b0 error, b1 read, b2 skip, b3 select with the key in b31-16, b4 write),
//                         u32 length, u64 address; on completion control is written back as 0, or with b0 set on error.
// Items: 0x00 signature "QEMU", 0x01 ID (b0 traditional interface, b1 DMA), 0x03 RAM size (u64 LE), 0x05 CPUs (u16 LE),
//   0x0F max CPUs (u16 LE), 0x19 file directory (u32 BE count, then 64-byte entries: u32 BE size, u16 BE key,
//   u16 reserved, char name[56]); files at keys 0x20 and up, numbered in name order.
//
// Specification: QEMU docs/specs/fw_cfg.rst (the guest-side interface) and include/standard-headers/linux/qemu_fw_cfg.h
// for the keys. Write access through DMA is refused (every item is read-only), which the specification allows.
using System.Buffers.Binary;
using System.Text;
using Hypervisor.Core.Io;
using Hypervisor.Core.Memory;

namespace Hypervisor.Devices.FwCfg;

/// <summary>QEMU's fw_cfg device: firmware reads machine facts (RAM size, CPUs, e820 map, files) from it.</summary>
/// <remarks>
/// Items are added before the machine runs (not thread-safe against guest access). Port access happens with the
/// machine's I/O lock held; DMA reads and writes guest memory through <see cref="IMemoryMap"/> with its bounds checks.
/// </remarks>
public sealed class FwCfgDevice
{
    /// <summary>The selector port; the data port follows it.</summary>
    public const ushort ControlPort = 0x510;

    /// <summary>The first port of the DMA address register (8 ports).</summary>
    public const ushort DmaPort = 0x514;

    /// <summary>Key of the signature item.</summary>
    public const ushort SignatureKey = 0x00;

    /// <summary>Key of the ID (feature bitmap) item.</summary>
    public const ushort IdKey = 0x01;

    /// <summary>Key of the RAM size item.</summary>
    public const ushort RamSizeKey = 0x03;

    /// <summary>Key of the CPU count item.</summary>
    public const ushort CpuCountKey = 0x05;

    /// <summary>Key of the maximum CPU count item.</summary>
    public const ushort MaxCpuCountKey = 0x0F;

    /// <summary>Key of the file directory.</summary>
    public const ushort FileDirectoryKey = 0x19;

    /// <summary>The first key given to files.</summary>
    public const ushort FirstFileKey = 0x20;

    /// <summary>The longest file name, including its terminating NUL.</summary>
    public const int MaxFileNameLength = 56;

    private const ushort ArchLocal = 0x8000;
    private const ushort WriteChannel = 0x4000;
    private static readonly byte[] DmaSignature = "QEMU CFG"u8.ToArray();

    private readonly IMemoryMap? _memory;
    private readonly Dictionary<ushort, byte[]> _items = [];
    private readonly SortedDictionary<string, byte[]> _files = new(StringComparer.Ordinal);
    private readonly byte[] _dmaAddress = new byte[8];
    private ushort _selector;
    private byte[] _current = [];
    private long _offset;

    /// <summary>Creates the device with the signature and ID items.</summary>
    /// <param name="memory">Guest memory for DMA; null to offer no DMA interface (the ID item then says so).</param>
    public FwCfgDevice(IMemoryMap? memory)
    {
        _memory = memory;
        SetItem(SignatureKey, "QEMU"u8);
        Span<byte> id = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(id, memory is null ? 1u : 3u);
        SetItem(IdKey, id);
        RebuildDirectory();
        ControlPorts = new ControlRegisters(this);
        DmaPorts = new DmaRegisters(this);
    }

    /// <summary>The selector and data ports; register at <see cref="ControlPort"/> with 2 ports.</summary>
    public IPortDevice ControlPorts { get; }

    /// <summary>The DMA address register; register at <see cref="DmaPort"/> with 8 ports.</summary>
    public IPortDevice DmaPorts { get; }

    /// <summary>True when the DMA interface is offered.</summary>
    public bool DmaEnabled => _memory is not null;

    /// <summary>DMA transfers that ended with the error bit (bad guest address, write to a read-only item).</summary>
    public long DmaErrorCount { get; private set; }

    /// <summary>The names of the files, in directory order.</summary>
    public IReadOnlyCollection<string> FileNames => _files.Keys;

    /// <summary>Sets the contents of a numbered item (not a file).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The key is the file directory's or a file key.</exception>
    public void SetItem(ushort key, ReadOnlySpan<byte> data)
    {
        ushort k = (ushort)(key & ~WriteChannel);
        if ((k & ~ArchLocal) is FileDirectoryKey or >= FirstFileKey && (k & ArchLocal) == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(key), $"Key 0x{key:X} belongs to the file directory or to files; use AddFile.");
        }

        _items[k] = data.ToArray();
    }

    /// <summary>Adds (or replaces) a named file; keys are given in name order, as QEMU does.</summary>
    /// <exception cref="ArgumentException">The name is empty or longer than 55 bytes of ASCII.</exception>
    public void AddFile(string name, ReadOnlySpan<byte> data)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (Encoding.ASCII.GetByteCount(name) >= MaxFileNameLength || name.Any(c => c > 0x7E || c < 0x20))
        {
            throw new ArgumentException($"fw_cfg file name '{name}' must be printable ASCII shorter than {MaxFileNameLength} bytes.", nameof(name));
        }

        _files[name] = data.ToArray();
        RebuildDirectory();
    }

    /// <summary>The key a file got, or -1.</summary>
    public int GetFileKey(string name)
    {
        int key = FirstFileKey;
        foreach (string n in _files.Keys)
        {
            if (n == name)
            {
                return key;
            }

            key++;
        }

        return -1;
    }

    /// <summary>The contents of the item at <paramref name="key"/> (empty when there is none).</summary>
    public ReadOnlySpan<byte> GetItem(ushort key) => Lookup(key);

    /// <summary>
    /// Builds QEMU's <c>etc/e820</c> file contents: packed little-endian entries {u64 address, u64 length, u32 type}.
    /// </summary>
    public static byte[] BuildE820(IEnumerable<(ulong Address, ulong Length, uint Type)> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var list = entries.ToList();
        byte[] data = new byte[list.Count * 20];
        for (int i = 0; i < list.Count; i++)
        {
            Span<byte> e = data.AsSpan(i * 20, 20);
            BinaryPrimitives.WriteUInt64LittleEndian(e, list[i].Address);
            BinaryPrimitives.WriteUInt64LittleEndian(e[8..], list[i].Length);
            BinaryPrimitives.WriteUInt32LittleEndian(e[16..], list[i].Type);
        }

        return data;
    }

    private void RebuildDirectory()
    {
        byte[] dir = new byte[4 + 64 * _files.Count];
        BinaryPrimitives.WriteUInt32BigEndian(dir, (uint)_files.Count);
        int i = 0;
        foreach ((string name, byte[] data) in _files)
        {
            Span<byte> entry = dir.AsSpan(4 + 64 * i, 64);
            BinaryPrimitives.WriteUInt32BigEndian(entry, (uint)data.Length);
            BinaryPrimitives.WriteUInt16BigEndian(entry[4..], (ushort)(FirstFileKey + i));
            Encoding.ASCII.GetBytes(name, entry[8..]);
            i++;
        }

        _items[FileDirectoryKey] = dir;
        Select(_selector);
    }

    private byte[] Lookup(ushort key)
    {
        ushort k = (ushort)(key & ~WriteChannel);
        if ((k & ArchLocal) == 0 && k >= FirstFileKey)
        {
            int index = k - FirstFileKey;
            if (index < _files.Count)
            {
                return _files.Values.ElementAt(index);
            }

            return [];
        }

        return _items.TryGetValue(k, out byte[]? data) ? data : [];
    }

    private void Select(ushort key)
    {
        _selector = key;
        _current = Lookup(key);
        _offset = 0;
    }

    private byte ReadDataByte()
    {
        if (_offset < _current.Length)
        {
            return _current[_offset++];
        }

        return 0;
    }

    private void RunDma()
    {
        ulong address = BinaryPrimitives.ReadUInt64BigEndian(_dmaAddress);
        Array.Clear(_dmaAddress);
        if (_memory is null)
        {
            return;
        }

        Span<byte> descriptor = stackalloc byte[16];
        if (address > ulong.MaxValue - 16)
        {
            DmaErrorCount++;
            return;
        }

        try
        {
            _memory.Read(new GuestAddress(address), descriptor);
        }
        catch (MemoryMapException)
        {
            DmaErrorCount++;
            return; // nowhere to report the error
        }

        uint control = BinaryPrimitives.ReadUInt32BigEndian(descriptor);
        uint length = BinaryPrimitives.ReadUInt32BigEndian(descriptor[4..]);
        ulong target = BinaryPrimitives.ReadUInt64BigEndian(descriptor[8..]);
        bool ok = true;
        if ((control & 0x08) != 0)
        {
            Select((ushort)(control >> 16));
        }

        if ((control & 0x02) != 0)
        {
            ok = DmaRead(target, length);
        }
        else if ((control & 0x10) != 0)
        {
            ok = false; // every item is read-only
        }
        else if ((control & 0x04) != 0)
        {
            _offset = Math.Min(_offset + length, Math.Max(_offset, _current.Length));
        }

        if (!ok)
        {
            DmaErrorCount++;
        }

        Span<byte> status = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(status, ok ? 0u : 1u);
        try
        {
            _memory.Write(new GuestAddress(address), status);
        }
        catch (MemoryMapException)
        {
            DmaErrorCount++;
        }
    }

    private bool DmaRead(ulong target, uint length)
    {
        Span<byte> chunk = stackalloc byte[4096];
        ulong done = 0;
        while (done < length)
        {
            int n = (int)Math.Min((ulong)chunk.Length, length - done);
            Span<byte> part = chunk[..n];
            for (int i = 0; i < n; i++)
            {
                part[i] = ReadDataByte();
            }

            if (target + done < target)
            {
                return false; // wraps around the address space
            }

            try
            {
                _memory!.Write(new GuestAddress(target + done), part);
            }
            catch (MemoryMapException)
            {
                return false;
            }

            done += (ulong)n;
        }

        return true;
    }

    private sealed class ControlRegisters(FwCfgDevice owner) : IPortDevice
    {
        public uint Read(ushort offset, int size)
        {
            uint value = 0;
            for (int i = 0; i < size && i < 4; i++)
            {
                value |= (uint)owner.ReadDataByte() << (8 * i);
            }

            return value;
        }

        public void Write(ushort offset, int size, uint value)
        {
            if (offset == 0 && size >= 2)
            {
                owner.Select((ushort)value);
            }

            // Data writes (a byte at 0x510 or anything at 0x511) are ignored since QEMU 2.4.
        }
    }

    private sealed class DmaRegisters(FwCfgDevice owner) : IPortDevice
    {
        public uint Read(ushort offset, int size)
        {
            if (!owner.DmaEnabled)
            {
                return size >= 4 ? uint.MaxValue : (1u << (8 * size)) - 1;
            }

            uint value = 0;
            for (int i = 0; i < size && i < 4 && offset + i < 8; i++)
            {
                value |= (uint)DmaSignature[offset + i] << (8 * i);
            }

            return value;
        }

        public void Write(ushort offset, int size, uint value)
        {
            if (!owner.DmaEnabled)
            {
                return;
            }

            bool touchesLast = false;
            for (int i = 0; i < size && i < 4 && offset + i < 8; i++)
            {
                owner._dmaAddress[offset + i] = (byte)(value >> (8 * i));
                touchesLast |= offset + i == 7;
            }

            if (touchesLast)
            {
                owner.RunDma();
            }
        }
    }
}
