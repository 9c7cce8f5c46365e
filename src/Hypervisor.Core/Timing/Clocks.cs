using System.Diagnostics;

namespace Hypervisor.Core.Timing;

/// <summary>The time base of a machine: monotonic nanoseconds since the machine was created.</summary>
/// <remarks>Thread-safe.</remarks>
public interface IMachineClock
{
    /// <summary>Nanoseconds since the clock started.</summary>
    long NowNanoseconds { get; }

    /// <summary>The wall-clock date and time the machine's clock started at (what the RTC shows at time zero).</summary>
    DateTimeOffset StartTime { get; }
}

/// <summary>Host time: the clock advances with the host's monotonic clock.</summary>
public sealed class HostClock : IMachineClock
{
    private readonly long _start = Stopwatch.GetTimestamp();

    /// <summary>Starts the clock now, with the RTC showing <paramref name="startTime"/> (default: the host's UTC time).</summary>
    public HostClock(DateTimeOffset? startTime = null) => StartTime = startTime ?? DateTimeOffset.UtcNow;

    /// <inheritdoc />
    public DateTimeOffset StartTime { get; }

    /// <inheritdoc />
    public long NowNanoseconds => (long)((Stopwatch.GetTimestamp() - _start) * (1_000_000_000.0 / Stopwatch.Frequency));
}

/// <summary>A clock that moves only when told to: for tests and reproducible runs.</summary>
public sealed class ManualClock : IMachineClock
{
    private long _now;

    /// <summary>Creates a clock at zero showing <paramref name="startTime"/>.</summary>
    public ManualClock(DateTimeOffset startTime) => StartTime = startTime;

    /// <inheritdoc />
    public DateTimeOffset StartTime { get; }

    /// <inheritdoc />
    public long NowNanoseconds => Interlocked.Read(ref _now);

    /// <summary>Moves the clock forward.</summary>
    public void Advance(long nanoseconds)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(nanoseconds);
        Interlocked.Add(ref _now, nanoseconds);
    }
}
