using Hypervisor.Core.Io;

namespace Hypervisor.Core.Timing;

/// <summary>
/// Device timers of one machine. Devices schedule callbacks at deadlines on the machine clock; the machine runs the
/// due ones with the I/O lock held (its timer thread for host time; tests call <see cref="RunDue"/> with a manual clock).
/// </summary>
public sealed class TimerQueue
{
    private readonly IoLock _ioLock;
    private readonly List<DeviceTimer> _timers = [];
    private readonly AutoResetEvent _changed = new(false);
    private bool _runningDue; // guarded by the I/O lock
    private Action? _waker;

    /// <summary>Creates a queue over <paramref name="clock"/>; callbacks run with <paramref name="ioLock"/> held.</summary>
    public TimerQueue(IMachineClock clock, IoLock ioLock)
    {
        Clock = clock ?? throw new ArgumentNullException(nameof(clock));
        _ioLock = ioLock ?? throw new ArgumentNullException(nameof(ioLock));
    }

    /// <summary>The clock deadlines refer to.</summary>
    public IMachineClock Clock { get; }

    /// <summary>
    /// Signalled whenever a deadline is set, so the thread that waits for the next deadline re-evaluates; not for a
    /// deadline set by a callback inside <see cref="RunDue"/>, whose caller looks at <see cref="NextDeadline"/> after it
    /// anyway (a periodic device timer would otherwise end every wait of the timer thread at once, for nothing).
    /// </summary>
    public WaitHandle Changed => _changed;

    /// <summary>Creates a timer that calls <paramref name="callback"/> (with the I/O lock held) when it expires.</summary>
    public DeviceTimer CreateTimer(string name, Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        var timer = new DeviceTimer(this, name, callback);
        lock (_ioLock.Sync)
        {
            _timers.Add(timer);
        }

        return timer;
    }

    /// <summary>The earliest deadline of a scheduled timer, or null.</summary>
    public long? NextDeadline
    {
        get
        {
            lock (_ioLock.Sync)
            {
                long? next = null;
                foreach (DeviceTimer t in _timers)
                {
                    if (t.IsScheduled && (next is null || t.Deadline < next))
                    {
                        next = t.Deadline;
                    }
                }

                return next;
            }
        }
    }

    /// <summary>Runs every timer whose deadline has passed, earliest first; returns how many ran.</summary>
    /// <remarks>A callback may reschedule its own timer; one that reschedules into the past runs again, up to a bound per call.</remarks>
    public int RunDue()
    {
        lock (_ioLock.Sync)
        {
            _runningDue = true;
            try
            {
                return RunDueLocked();
            }
            finally
            {
                _runningDue = false;
            }
        }
    }

    /// <summary>
    /// A deadline was set. Wakes the waiting thread unless the call comes from a callback that <see cref="RunDue"/> runs:
    /// only that thread can set one while <see cref="_runningDue"/> is true, since it holds the I/O lock throughout.
    /// </summary>
    internal void OnScheduled()
    {
        if (!(_runningDue && _ioLock.Sync.IsHeldByCurrentThread))
        {
            _changed.Set();
            Volatile.Read(ref _waker)?.Invoke();
        }
    }

    /// <summary>
    /// Called with <see cref="Changed"/>, for a waiting thread that sleeps on something other than the handle (the
    /// machine's timer thread on Linux); null for none.
    /// </summary>
    internal Action? Waker
    {
        get => Volatile.Read(ref _waker);
        set => Volatile.Write(ref _waker, value);
    }

    private int RunDueLocked()
    {
        int ran = 0;
        for (int guard = 0; guard < 10_000; guard++)
        {
            long now = Clock.NowNanoseconds;
            DeviceTimer? due = null;
            foreach (DeviceTimer t in _timers)
            {
                if (t.IsScheduled && t.Deadline <= now && (due is null || t.Deadline < due.Deadline))
                {
                    due = t;
                }
            }

            if (due is null)
            {
                break;
            }

            due.IsScheduled = false;
            due.Callback();
            ran++;
        }

        return ran;
    }
}

/// <summary>A one-shot timer of a device. Use it with the machine's I/O lock held (device code always is).</summary>
public sealed class DeviceTimer
{
    private readonly TimerQueue _queue;

    internal DeviceTimer(TimerQueue queue, string name, Action callback)
    {
        _queue = queue;
        Name = name;
        Callback = callback;
    }

    /// <summary>The timer's name, for diagnostics.</summary>
    public string Name { get; }

    /// <summary>True while a deadline is set.</summary>
    public bool IsScheduled { get; internal set; }

    /// <summary>The deadline in clock nanoseconds (meaningful while scheduled).</summary>
    public long Deadline { get; private set; }

    internal Action Callback { get; }

    /// <summary>Sets (or moves) the deadline.</summary>
    public void Schedule(long deadlineNanoseconds)
    {
        Deadline = deadlineNanoseconds;
        IsScheduled = true;
        _queue.OnScheduled();
    }

    /// <summary>Cancels the deadline, if any.</summary>
    public void Cancel() => IsScheduled = false;
}
