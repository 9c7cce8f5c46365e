using System.Runtime.InteropServices;

namespace Hypervisor.Core.Machine.Interop;

/// <summary>
/// A sleep shorter than the millisecond that managed waits resolve (WaitHandle, Thread.Sleep and Monitor all take
/// whole milliseconds): Linux's clock_nanosleep on CLOCK_MONOTONIC. The machine's timer thread uses it for the last
/// fraction of a millisecond before a deadline, where it would otherwise have to spin or fire late.
/// </summary>
internal static partial class PreciseSleep
{
    private const int ClockMonotonic = 1; // <linux/time.h>: CLOCK_MONOTONIC
    private const int Eintr = 4;
    private const long NanosecondsPerSecond = 1_000_000_000;

    private static volatile bool s_unavailable = !OperatingSystem.IsLinux();

    /// <summary>True where <see cref="Sleep"/> can sleep; false where the caller has to wait another way.</summary>
    internal static bool IsAvailable => !s_unavailable;

    /// <summary>
    /// Sleeps for <paramref name="nanoseconds"/> (the kernel adds its timer slack, 50 µs by default); false without
    /// sleeping where the call is not available. A signal may end the sleep early.
    /// </summary>
    internal static bool Sleep(long nanoseconds)
    {
        if (s_unavailable)
        {
            return false;
        }

        var request = new Timespec
        {
            Seconds = (nint)(nanoseconds / NanosecondsPerSecond),
            Nanoseconds = (nint)(nanoseconds % NanosecondsPerSecond),
        };
        try
        {
            int error = clock_nanosleep(ClockMonotonic, 0, in request, 0);
            return error is 0 or Eintr;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            s_unavailable = true;
            return false;
        }
    }

    /// <summary>struct timespec of LP64 Linux: two longs.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public nint Seconds;
        public nint Nanoseconds;
    }

    // int clock_nanosleep(clockid_t clockid, int flags, const struct timespec *request, struct timespec *remain);
    // It returns the error number rather than setting errno.
    [LibraryImport("libc")]
    private static partial int clock_nanosleep(int clockId, int flags, in Timespec request, nint remain);
}
