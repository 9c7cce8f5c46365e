using Hypervisor.Core.Io;
using Hypervisor.Core.Timing;

namespace Hypervisor.Core.Tests;

/// <summary>When <see cref="TimerQueue.Changed"/> wakes the timer thread: for a new deadline, not for its own callbacks'.</summary>
public class TimerQueueWakeTests
{
    [Test]
    public void ADeadlineSetOutsideRunDueSignalsChanged()
    {
        var ioLock = new IoLock();
        var queue = new TimerQueue(new ManualClock(DateTimeOffset.UnixEpoch), ioLock);
        DeviceTimer timer = queue.CreateTimer("t", () => { });
        Assert.That(queue.Changed.WaitOne(0), Is.False);
        lock (ioLock.Sync)
        {
            timer.Schedule(100);
        }

        Assert.That(queue.Changed.WaitOne(0), Is.True);
    }

    [Test]
    public void ACallbackReschedulingItsTimerDoesNotSignalChanged()
    {
        var clock = new ManualClock(DateTimeOffset.UnixEpoch);
        var ioLock = new IoLock();
        var queue = new TimerQueue(clock, ioLock);
        DeviceTimer? periodic = null;
        periodic = queue.CreateTimer("periodic", () => periodic!.Schedule(periodic.Deadline + 10));
        lock (ioLock.Sync)
        {
            periodic.Schedule(10);
        }

        Assert.That(queue.Changed.WaitOne(0), Is.True); // consumes the signal of the first deadline
        clock.Advance(25);
        Assert.That(queue.RunDue(), Is.EqualTo(2)); // deadlines 10 and 20
        Assert.That(queue.NextDeadline, Is.EqualTo(30));
        Assert.That(queue.Changed.WaitOne(0), Is.False);
    }

    [Test]
    public void ADeadlineSetByAnotherThreadWhileRunDueRunsSignalsChanged()
    {
        // Another thread that sets a deadline while a callback runs (without the I/O lock, against the contract, or
        // after it) must still wake the waiting thread: only the thread inside RunDue is exempt.
        var clock = new ManualClock(DateTimeOffset.UnixEpoch);
        var ioLock = new IoLock();
        var queue = new TimerQueue(clock, ioLock);
        DeviceTimer other = queue.CreateTimer("other", () => { });
        using var inCallback = new ManualResetEventSlim();
        using var scheduled = new ManualResetEventSlim();
        DeviceTimer slow = queue.CreateTimer("slow", () =>
        {
            inCallback.Set();
            scheduled.Wait(TimeSpan.FromSeconds(10));
        });
        lock (ioLock.Sync)
        {
            slow.Schedule(1);
        }

        Assert.That(queue.Changed.WaitOne(0), Is.True);
        clock.Advance(1);
        var runner = new Thread(() => queue.RunDue());
        runner.Start();
        Assert.That(inCallback.Wait(TimeSpan.FromSeconds(10)), Is.True);
        other.Schedule(50); // from this thread, which does not hold the I/O lock
        scheduled.Set();
        runner.Join();
        Assert.That(queue.Changed.WaitOne(0), Is.True);
    }
}
