using System.Runtime.InteropServices;

namespace Hypervisor.Accel.Tcg.Tests.Fpu.Interop;

/// <summary>The two libc calls the native float harness needs: anonymous read-write-execute pages for its stubs.</summary>
internal static partial class LibC
{
    public const int PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
    public const int MAP_PRIVATE = 0x02, MAP_ANONYMOUS = 0x20;

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int munmap(nint addr, nuint length);
}
