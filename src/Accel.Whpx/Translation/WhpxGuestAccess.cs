using System.Buffers.Binary;
using Hypervisor.Core.Io;
using Hypervisor.Core.Memory;

namespace Hypervisor.Accel.Whpx.Translation;

/// <summary>
/// The guest side of an emulated access: what the instruction emulator's memory and I/O callbacks do. RAM is read
/// and written directly, ROM ignores writes (counted by the map), MMIO and unmapped addresses go through the memory
/// map's device path, ports through the port bus.
/// </summary>
internal static class WhpxGuestAccess
{
    /// <summary>Reads <paramref name="data"/>.Length bytes (1-8) at guest-physical <paramref name="gpa"/>.</summary>
    public static void ReadMemory(IMemoryMap memory, ulong gpa, Span<byte> data)
    {
        var address = new GuestAddress(gpa);
        MemoryRegion? region = memory.FindRegion(address);
        if (region is not null && region.Kind != MemoryRegionKind.Mmio && (address - region.Start) + (ulong)data.Length <= region.SizeInBytes)
        {
            region.GetSpan(address - region.Start, data.Length).CopyTo(data);
            return;
        }

        if (region?.Kind == MemoryRegionKind.Mmio && (address - region.Start) + (ulong)data.Length <= region.SizeInBytes)
        {
            Span<byte> value = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(value, memory.ReadMmio(address, data.Length));
            value[..data.Length].CopyTo(data);
            return;
        }

        // Crossing a region boundary or hitting nothing: byte by byte, each byte to whatever owns it.
        for (int i = 0; i < data.Length; i++)
        {
            var a = address + (ulong)i;
            MemoryRegion? r = memory.FindRegion(a);
            data[i] = r is not null && r.Kind != MemoryRegionKind.Mmio
                ? r.GetSpan(a - r.Start, 1)[0]
                : (byte)memory.ReadMmio(a, 1);
        }
    }

    /// <summary>Writes <paramref name="data"/> (1-8 bytes) at guest-physical <paramref name="gpa"/>.</summary>
    public static void WriteMemory(IMemoryMap memory, ulong gpa, ReadOnlySpan<byte> data)
    {
        var address = new GuestAddress(gpa);
        MemoryRegion? region = memory.FindRegion(address);
        if (region is not null && (address - region.Start) + (ulong)data.Length <= region.SizeInBytes)
        {
            switch (region.Kind)
            {
                case MemoryRegionKind.Ram:
                    data.CopyTo(region.GetSpan(address - region.Start, data.Length));
                    return;
                case MemoryRegionKind.Rom:
                    memory.WriteMmio(address, data.Length, 0); // no device behind ROM: counted and dropped
                    return;
                case MemoryRegionKind.Mmio:
                    Span<byte> value = stackalloc byte[8];
                    value.Clear();
                    data.CopyTo(value);
                    memory.WriteMmio(address, data.Length, BinaryPrimitives.ReadUInt64LittleEndian(value));
                    return;
            }
        }

        for (int i = 0; i < data.Length; i++)
        {
            var a = address + (ulong)i;
            MemoryRegion? r = memory.FindRegion(a);
            if (r?.Kind == MemoryRegionKind.Ram)
            {
                r.GetSpan(a - r.Start, 1)[0] = data[i];
            }
            else
            {
                // MMIO gets the byte; ROM and holes have no device, so the map counts the access and drops it.
                memory.WriteMmio(a, 1, data[i]);
            }
        }
    }

    /// <summary>Performs IN (returns the value) or OUT (returns 0) of <paramref name="size"/> bytes.</summary>
    public static uint AccessPort(PortIoBus ports, ushort port, int size, bool isWrite, uint value)
    {
        if (isWrite)
        {
            ports.Write(port, size, value);
            return 0;
        }

        return ports.Read(port, size);
    }
}
