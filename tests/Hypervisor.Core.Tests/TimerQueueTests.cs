using Hypervisor.Core.Io;
using Hypervisor.Core.Timing;

namespace Hypervisor.Core.Tests;

public class TimerQueueTests
{
    [Test]
    public void DueTimersRunEarliestFirstAndOnlyWhenDue()
    {
        var clock = new ManualClock(DateTimeOffset.UnixEpoch);
        var queue = new TimerQueue(clock, new IoLock());
        var order = new List<string>();
        DeviceTimer a = queue.CreateTimer("a", () => order.Add("a"));
        DeviceTimer b = queue.CreateTimer("b", () => order.Add("b"));
        a.Schedule(300);
        b.Schedule(100);
        Assert.That(queue.NextDeadline, Is.EqualTo(100));
        Assert.That(queue.RunDue(), Is.Zero);
        clock.Advance(300);
        Assert.That(queue.RunDue(), Is.EqualTo(2));
        Assert.That(order, Is.EqualTo(new[] { "b", "a" }));
        Assert.That(queue.NextDeadline, Is.Null);
    }

    [Test]
    public void CancelledTimersDoNotRunAndPeriodicReschedulingWorks()
    {
        var clock = new ManualClock(DateTimeOffset.UnixEpoch);
        var queue = new TimerQueue(clock, new IoLock());
        int ticks = 0;
        DeviceTimer? periodic = null;
        periodic = queue.CreateTimer("tick", () =>
        {
            ticks++;
            periodic!.Schedule(periodic.Deadline + 10);
        });
        DeviceTimer cancelled = queue.CreateTimer("never", () => Assert.Fail("a cancelled timer ran"));
        periodic.Schedule(10);
        cancelled.Schedule(5);
        cancelled.Cancel();
        clock.Advance(55);
        queue.RunDue();
        Assert.That(ticks, Is.EqualTo(5)); // deadlines 10, 20, 30, 40, 50
        Assert.That(periodic.Deadline, Is.EqualTo(60));
    }
}
