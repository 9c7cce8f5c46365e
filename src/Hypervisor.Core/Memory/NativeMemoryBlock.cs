using System.Runtime.InteropServices;

namespace Hypervisor.Core.Memory;

/// <summary>
/// Page-aligned, zero-initialised host memory that backs guest RAM or ROM. Every accelerator uses it directly:
/// kvm and whpx map <see cref="Pointer"/> into the guest, tcg reads and writes through it.
/// </summary>
/// <remarks>
/// Reserved with <c>mmap</c> (Unix) or <c>VirtualAlloc</c> (Windows) so that pages are committed lazily: a 4 GiB guest
/// costs only what it touches. The block must outlive every virtual machine that maps it; the memory map owns it.
/// </remarks>
public sealed unsafe partial class NativeMemoryBlock : IDisposable
{
    /// <summary>The host page size all guest memory is aligned to.</summary>
    public const int PageSize = 4096;

    private byte* _pointer;

    /// <summary>Allocates <paramref name="sizeInBytes"/> bytes (a positive multiple of <see cref="PageSize"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The size is zero or not page aligned.</exception>
    /// <exception cref="OutOfMemoryException">The host refused the reservation.</exception>
    public NativeMemoryBlock(ulong sizeInBytes)
    {
        if (sizeInBytes == 0 || sizeInBytes % PageSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(sizeInBytes), sizeInBytes,
                $"Guest memory must be a positive multiple of {PageSize} bytes.");
        }

        SizeInBytes = sizeInBytes;
        _pointer = Allocate(sizeInBytes);
    }

    /// <summary>The size in bytes.</summary>
    public ulong SizeInBytes { get; }

    /// <summary>The host address of the first byte; valid until <see cref="Dispose"/>.</summary>
    public nint Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return (nint)_pointer;
        }
    }

    /// <summary>A span over part of the block, bounds-checked.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the block.</exception>
    public Span<byte> GetSpan(ulong offset, int length)
    {
        ObjectDisposedException.ThrowIf(_pointer == null, this);
        if (length < 0 || offset > SizeInBytes || (ulong)length > SizeInBytes - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(offset),
                $"Range {offset}+{length} is outside a block of {SizeInBytes} bytes.");
        }

        return new Span<byte>(_pointer + offset, length);
    }

    /// <summary>Releases the memory. Guests must no longer run on it.</summary>
    public void Dispose()
    {
        byte* p = _pointer;
        if (p == null)
        {
            return;
        }

        _pointer = null;
        Free(p, SizeInBytes);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the memory if the owner forgot to.</summary>
    ~NativeMemoryBlock()
    {
        if (_pointer != null)
        {
            Free(_pointer, SizeInBytes);
        }
    }

    private static byte* Allocate(ulong size)
    {
        if (OperatingSystem.IsWindows())
        {
            // MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE: committed pages are zero-filled on first touch.
            void* p = VirtualAlloc(null, (nuint)size, 0x1000 | 0x2000, 0x04);
            return p == null ? throw new OutOfMemoryException($"VirtualAlloc of {size} bytes failed.") : (byte*)p;
        }

        // PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS (Linux and macOS values differ for MAP_ANONYMOUS).
        int flags = OperatingSystem.IsLinux() ? 0x02 | 0x20 : 0x02 | 0x1000;
        void* m = mmap(null, (nuint)size, 0x1 | 0x2, flags, -1, 0);
        return m == (void*)-1 ? throw new OutOfMemoryException($"mmap of {size} bytes failed.") : (byte*)m;
    }

    private static void Free(byte* p, ulong size)
    {
        if (OperatingSystem.IsWindows())
        {
            VirtualFree(p, 0, 0x8000); // MEM_RELEASE
        }
        else
        {
            munmap(p, (nuint)size);
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial void* mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int munmap(void* addr, nuint length);

    [LibraryImport("kernel32", SetLastError = true)]
    private static partial void* VirtualAlloc(void* address, nuint size, uint allocationType, uint protect);

    [LibraryImport("kernel32", SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool VirtualFree(void* address, nuint size, uint freeType);
}
