using System.Runtime.InteropServices;

namespace Hypervisor.Accel.Tcg.Tests.Native.Interop;

/// <summary>The few libc calls the native executor needs (Linux x86-64 values from &lt;sys/mman.h&gt;).</summary>
internal static unsafe partial class LibC
{
    public const int PROT_READ = 0x1;
    public const int PROT_WRITE = 0x2;
    public const int PROT_EXEC = 0x4;
    public const int MAP_PRIVATE = 0x02;
    public const int MAP_ANONYMOUS = 0x20;

    /// <summary>Map below 2 GiB, so that compatibility-mode (32-bit) code, its stack and its data are addressable.</summary>
    public const int MAP_32BIT = 0x40;

    public static readonly void* MAP_FAILED = (void*)-1;

    [LibraryImport("libc", SetLastError = true)]
    public static partial void* mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int mprotect(void* addr, nuint len, int prot);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int munmap(void* addr, nuint length);
}
