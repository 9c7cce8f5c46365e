using System.Runtime.InteropServices;

namespace Hypervisor.Core.Machine.Interop;

/// <summary>
/// A sleep with nanosecond resolution that another thread can end at once (Linux: ppoll on an eventfd). Managed waits
/// take whole milliseconds, so a wait for a deadline either ends before it (then a second, short sleep follows: two
/// wake-ups per deadline) or up to a millisecond late; this one wakes the sleeping thread once, at the deadline.
/// </summary>
/// <remarks><see cref="Sleep"/> from one thread; <see cref="Wake"/> from any thread, also after disposal (then it does nothing).</remarks>
internal sealed partial class WakeableSleep : IDisposable
{
    private const int EfdCloexec = 0x80000; // <sys/eventfd.h>: EFD_CLOEXEC = O_CLOEXEC
    private const int EfdNonblock = 0x800; // EFD_NONBLOCK = O_NONBLOCK
    private const short Pollin = 0x1;
    private const long NanosecondsPerSecond = 1_000_000_000;

    private readonly Lock _sync = new();
    private int _fd;

    private WakeableSleep(int fd) => _fd = fd;

    /// <summary>An eventfd-backed sleep, or null where there is none (not Linux, or the calls failed).</summary>
    internal static WakeableSleep? TryCreate()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            int fd = eventfd(0, EfdCloexec | EfdNonblock);
            return fd < 0 ? null : new WakeableSleep(fd);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// Sleeps until <paramref name="nanoseconds"/> have passed or <see cref="Wake"/> is called; a wake that came
    /// before the call ends it at once (nothing is lost between deciding to sleep and sleeping).
    /// </summary>
    internal void Sleep(long nanoseconds)
    {
        var poll = new PollFd { Fd = _fd, Events = Pollin };
        var timeout = new Timespec
        {
            Seconds = (nint)(nanoseconds / NanosecondsPerSecond),
            Nanoseconds = (nint)(nanoseconds % NanosecondsPerSecond),
        };
        if (ppoll(ref poll, 1, in timeout, 0) > 0 && (poll.Revents & Pollin) != 0)
        {
            ulong count = 0;
            _ = read(_fd, ref count, sizeof(ulong)); // resets the counter (non-blocking; another Wake may follow)
        }
    }

    /// <summary>Ends the current or the next <see cref="Sleep"/>. Thread-safe.</summary>
    internal void Wake()
    {
        lock (_sync)
        {
            if (_fd >= 0)
            {
                ulong one = 1;
                _ = write(_fd, in one, sizeof(ulong));
            }
        }
    }

    public void Dispose()
    {
        lock (_sync)
        {
            if (_fd >= 0)
            {
                _ = close(_fd);
                _fd = -1;
            }
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public nint Seconds;
        public nint Nanoseconds;
    }

    [LibraryImport("libc")]
    private static partial int eventfd(uint initval, int flags);

    // int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *tmo_p, const sigset_t *sigmask);
    [LibraryImport("libc")]
    private static partial int ppoll(ref PollFd fds, nuint nfds, in Timespec timeout, nint sigmask);

    [LibraryImport("libc")]
    private static partial nint read(int fd, ref ulong buffer, nuint count);

    [LibraryImport("libc")]
    private static partial nint write(int fd, in ulong buffer, nuint count);

    [LibraryImport("libc")]
    private static partial int close(int fd);
}
