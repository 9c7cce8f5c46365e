// Thin helpers over Tmds.LibC for the few libc and Linux calls the kvm backend makes.
#pragma warning disable IDE1006 // kernel names on purpose
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Hypervisor.Accel.Kvm.Interop;

[SupportedOSPlatform("linux")]
internal static unsafe partial class Libc
{
    // x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl); Tmds.LibC has no gettid/tgkill.
    private const int SYS_gettid = 186;
    private const int SYS_tgkill = 234;

    /// <summary>Opens <paramref name="path"/> read-write with close-on-exec; returns the fd or -1 with <paramref name="error"/> set.</summary>
    internal static int Open(string path, out int error)
    {
        int length = Encoding.UTF8.GetByteCount(path);
        byte* buffer = stackalloc byte[length + 1];
        Encoding.UTF8.GetBytes(path, new Span<byte>(buffer, length));
        buffer[length] = 0;
        int fd;
        do
        {
            fd = open(buffer, O_RDWR | O_CLOEXEC, 0);
            error = fd < 0 ? errno : 0;
        }
        while (fd < 0 && error == EINTR);

        return fd;
    }

    /// <summary>ioctl with an integer argument; returns the result or -1 with <paramref name="error"/> set.</summary>
    internal static int Ioctl(int fd, uint request, nint argument, out int error)
    {
        int result = ioctl(fd, unchecked((int)request), (void*)argument);
        error = result < 0 ? errno : 0;
        return result;
    }

    /// <summary>ioctl with a pointer argument; returns the result or -1 with <paramref name="error"/> set.</summary>
    internal static int Ioctl(int fd, uint request, void* argument, out int error)
    {
        int result = ioctl(fd, unchecked((int)request), argument);
        error = result < 0 ? errno : 0;
        return result;
    }

    /// <summary>
    /// <c>KVM_RUN</c>, the one system call per exit: returns the result or -1 with <paramref name="error"/> set.
    /// </summary>
    /// <remarks>
    /// Tmds.LibC declares ioctl with SetLastError, so its stub clears errno before and copies it into the runtime's
    /// thread state after every call (the exit benchmark saw 0.91x without it in one boot under emulated AMD-V and no
    /// difference in another, see benchmarks/README.md). The successful call, which is nearly every call, goes through
    /// a plain import instead. errno is never read after that import (returning to managed code may
    /// wait for a GC and clobber it): a failed call is made again through the errno-preserving path, which gives the
    /// same outcome: a kick's <c>immediate_exit</c> is still set, so it fails again at once with EINTR; another
    /// signal's EINTR or EAGAIN just re-enters the guest, as the caller would; a real error fails again with its errno.
    /// </remarks>
    internal static int RunVcpu(int fd, out int error)
    {
        int result = ioctl_plain(fd, KvmRunRequest, 0);
        if (result >= 0)
        {
            error = 0;
            return result;
        }

        return Ioctl(fd, Interop.Ioctl.KVM_RUN, 0, out error);
    }

    private static readonly nuint KvmRunRequest = Interop.Ioctl.KVM_RUN;

    [LibraryImport("libc.so.6", EntryPoint = "ioctl")]
    private static partial int ioctl_plain(int fd, nuint request, nint argument);

    internal static int Close(int fd) => close(fd);

    internal static void* MapShared(int fd, nuint length, out int error)
    {
        void* address = mmap(null, (size_t)(ulong)length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        error = address == MAP_FAILED ? errno : 0;
        return address == MAP_FAILED ? null : address;
    }

    internal static void Unmap(void* address, nuint length) => munmap(address, (size_t)(ulong)length);

    internal static int PageSize => getpagesize();

    internal static int GetThreadId() => (int)syscall(SYS_gettid);

    /// <summary>Sends <paramref name="signal"/> to one thread of this process; returns false if it no longer exists.</summary>
    internal static bool SendToThread(int threadId, int signal)
    {
        int pid = getpid();
        return (int)syscall(SYS_tgkill, pid, threadId, signal) == 0;
    }

    internal static string ErrorName(int error) => error switch
    {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        6 => "ENXIO",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        22 => "EINVAL",
        24 => "EMFILE",
        25 => "ENOTTY",
        95 => "EOPNOTSUPP",
        _ => "errno " + error.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    internal static string Describe(int error) => $"{ErrorName(error)}: {Marshal.GetPInvokeErrorMessage(error)}";
}
