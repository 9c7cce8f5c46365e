using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;

namespace Hypervisor.Core.Tests;

public class MemoryMapTests
{
    private static MemoryMap NewMap() => new(new IoLock());

    [Test]
    public void RamIsZeroedAndReadableThroughTheHostPointerAndTheApi()
    {
        using MemoryMap map = NewMap();
        MemoryRegion ram = map.AddRam(new GuestAddress(0x10000), 0x4000, "ram");
        map.Write(new GuestAddress(0x10FFE), [1, 2, 3, 4]);
        var back = new byte[6];
        map.Read(new GuestAddress(0x10FFD), back);
        Assert.That(back, Is.EqualTo(new byte[] { 0, 1, 2, 3, 4, 0 }));
        Assert.That(ram.GetSpan(0xFFE, 2).ToArray(), Is.EqualTo(new byte[] { 1, 2 }));
        Assert.That(map.FindRegion(new GuestAddress(0x13FFF)), Is.SameAs(ram));
        Assert.That(map.FindRegion(new GuestAddress(0x14000)), Is.Null);
        Assert.That(map.FindRegion(new GuestAddress(0xFFFF)), Is.Null);
    }

    [TestCase(0x0000UL, 0x1000UL)] // touches the start
    [TestCase(0x2000UL, 0x1000UL)] // inside
    [TestCase(0x3000UL, 0x2000UL)] // straddles the end
    public void OverlappingRegionsAreRejectedWithBothNames(ulong start, ulong size)
    {
        using MemoryMap map = NewMap();
        map.AddRam(new GuestAddress(0x1000), 0x3000, "first");
        var e = Assert.Throws<MemoryMapException>(() => map.AddRam(new GuestAddress(start), size + 0x1000, "second"));
        Assert.That(e!.Message, Does.Contain("first").And.Contain("second"));
        Assert.That(map.Regions, Has.Count.EqualTo(1));
    }

    [Test]
    public void AdjacentRegionsAreAccepted()
    {
        using MemoryMap map = NewMap();
        map.AddRam(new GuestAddress(0x1000), 0x1000, "a");
        map.AddRam(new GuestAddress(0x2000), 0x1000, "b");
        map.AddRam(GuestAddress.Zero, 0x1000, "c");
        Assert.That(map.Regions.Select(r => r.Name), Is.EqualTo(new[] { "c", "a", "b" }));
    }

    [TestCase(0x1001UL, 0x1000UL)]
    [TestCase(0x1000UL, 0x1001UL)]
    [TestCase(0x1000UL, 0UL)]
    public void MisalignedOrEmptyRegionsAreRejected(ulong start, ulong size)
    {
        using MemoryMap map = NewMap();
        Assert.Throws<MemoryMapException>(() => map.AddRam(new GuestAddress(start), size, "bad"));
    }

    [Test]
    public void RegionsBeyondThePhysicalAddressWidthAreRejected()
    {
        using MemoryMap map = NewMap();
        var e = Assert.Throws<MemoryMapException>(() => map.AddRam(new GuestAddress((1UL << 52) - 0x1000), 0x2000, "high"));
        Assert.That(e!.Message, Does.Contain("52-bit"));
    }

    [Test]
    public void HostAccessToUnmappedOrRomOrMmioIsAnErrorNamingTheAddress()
    {
        using MemoryMap map = NewMap();
        map.AddRom(new GuestAddress(0x1000), [0xAA], "rom");
        map.AddMmio(new GuestAddress(0x2000), 0x1000, new RecordingMmio(), "dev");
        var unmapped = Assert.Throws<MemoryMapException>(() => map.Read(new GuestAddress(0x5000), new byte[1]));
        Assert.That(unmapped!.Message, Does.Contain("0x5000"));
        Assert.Throws<MemoryMapException>(() => map.Write(new GuestAddress(0x1000), [1]));
        Assert.Throws<MemoryMapException>(() => map.Read(new GuestAddress(0x2000), new byte[1]));
        var rom = new byte[2];
        map.Read(new GuestAddress(0x1000), rom);
        Assert.That(rom, Is.EqualTo(new byte[] { 0xAA, 0 }));
    }

    [Test]
    public void FrozenMapRejectsNewRegions()
    {
        using MemoryMap map = NewMap();
        map.Freeze();
        Assert.Throws<MemoryMapException>(() => map.AddRam(GuestAddress.Zero, 0x1000, "late"));
    }

    [Test]
    public void MmioAccessReachesTheDeviceWithOffsetsAndUnclaimedAddressesReadAllOnes()
    {
        using MemoryMap map = NewMap();
        var device = new RecordingMmio();
        map.AddMmio(new GuestAddress(0xFEE00000), 0x1000, device, "apic");
        map.WriteMmio(new GuestAddress(0xFEE000B0), 4, 0x1234);
        Assert.That(device.Writes, Is.EqualTo(new[] { (0xB0UL, 4, 0x1234UL) }));
        Assert.That(map.ReadMmio(new GuestAddress(0xFEE00020), 4), Is.EqualTo(0x20UL + 4));
        Assert.That(map.ReadMmio(new GuestAddress(0xFED00000), 2), Is.EqualTo(0xFFFFUL));
        Assert.That(map.ReadMmio(new GuestAddress(0xFED00000), 8), Is.EqualTo(ulong.MaxValue));
        Assert.That(map.UnclaimedAccessCount, Is.EqualTo(2));
    }

    [Test]
    public void HostWritesAreReported()
    {
        using MemoryMap map = NewMap();
        map.AddRam(GuestAddress.Zero, 0x2000, "ram");
        var seen = new List<(GuestAddress, ulong)>();
        map.HostWrite += (a, n) => seen.Add((a, n));
        map.Write(new GuestAddress(0x0FFF), [1, 2]);
        Assert.That(seen, Is.EqualTo(new[] { (new GuestAddress(0x0FFF), 2UL) }));
    }

    [Test]
    public void FirmwareIsMappedBelow4GiBWithItsLast128KiBBelow1MiB()
    {
        using MemoryMap map = NewMap();
        var image = new byte[256 * 1024];
        image[0] = 0x11;
        image[^1] = 0x22;
        image[image.Length - (128 * 1024)] = 0x33;
        GuestMemoryLayout.AddFirmware(map, image);
        var b = new byte[1];
        map.Read(new GuestAddress(0x1_0000_0000 - 256 * 1024), b);
        Assert.That(b[0], Is.EqualTo(0x11));
        map.Read(new GuestAddress(0xFFFF_FFFF), b);
        Assert.That(b[0], Is.EqualTo(0x22));
        map.Read(new GuestAddress(0xFFFFF), b);
        Assert.That(b[0], Is.EqualTo(0x22));
        map.Read(new GuestAddress(0xE0000), b);
        Assert.That(b[0], Is.EqualTo(0x33));
        Assert.That(map.FindRegion(new GuestAddress(0xDFFFF)), Is.Null);
    }

    [TestCase(0)]
    [TestCase(4096)]
    [TestCase(65 * 1024)]
    [TestCase(32 * 1024 * 1024)]
    public void MalformedFirmwareSizesAreRejected(int size)
    {
        using MemoryMap map = NewMap();
        var e = Assert.Throws<GuestImageException>(() => GuestMemoryLayout.AddFirmware(map, new byte[size]));
        Assert.That(e!.Message, Does.Contain(size.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.That(map.Regions, Is.Empty);
    }

    [Test]
    public void PcRamLeavesTheLegacyHoleAndMovesMemoryAbove3Point5GiBPast4GiB()
    {
        using MemoryMap map = NewMap();
        GuestMemoryLayout.AddRam(map, 4UL << 30);
        ulong total = map.Regions.Aggregate(0UL, (s, r) => s + r.SizeInBytes);
        Assert.That(total, Is.EqualTo((4UL << 30) - 0x40000)); // 0xA0000-0xBFFFF and 0xE0000-0xFFFFF (128 KiB each) are not RAM
        Assert.That(map.FindRegion(new GuestAddress(0xB8000)), Is.Null);
        Assert.That(map.FindRegion(new GuestAddress(0xE000_0000)), Is.Null);
        Assert.That(map.FindRegion(new GuestAddress(0x1_0000_0000))!.Name, Is.EqualTo("ram-above-4g"));
        Assert.That(map.FindRegion(new GuestAddress(0x1_1FFF_FFFF)), Is.Not.Null);
        Assert.That(map.FindRegion(new GuestAddress(0x1_2000_0000)), Is.Null);
    }

    private sealed class RecordingMmio : IMmioDevice
    {
        public List<(ulong Offset, int Size, ulong Value)> Writes { get; } = [];

        public ulong Read(ulong offset, int size) => offset + (ulong)size;

        public void Write(ulong offset, int size, ulong value) => Writes.Add((offset, size, value));
    }
}
