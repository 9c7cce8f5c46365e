using Hypervisor.Core.Machine;
using Hypervisor.Core.Timing;

namespace Hypervisor.Core.Tests;

/// <summary>
/// The machine's timer thread sleeps up to 100 ms when nothing is due; a deadline set by another thread (a vCPU
/// programming a device) and a stop request must end that sleep at once, not at its end.
/// </summary>
public class TimerLoopWakeTests
{
    [Test]
    public void ADeadlineSetByAnotherThreadEndsTheTimerThreadsSleep()
    {
        using var builder = new VirtualMachineBuilder();
        var lateness = new List<long>();
        using var fired = new SemaphoreSlim(0);
        DeviceTimer? timer = null;
        timer = builder.Timers.CreateTimer("from-outside", () =>
        {
            lateness.Add(builder.Clock.NowNanoseconds - timer!.Deadline);
            fired.Release();
        });
        using VirtualMachine vm = TimerLoopTests.Build(builder);
        var run = Task.Run(() => vm.Run(new MachineRunOptions(TimeSpan.FromSeconds(30))));
        for (int i = 0; i < 5; i++)
        {
            Thread.Sleep(30); // the timer thread is in its 100 ms sleep now: nothing is scheduled
            lock (builder.IoLock.Sync)
            {
                timer.Schedule(builder.Clock.NowNanoseconds + 2_000_000);
            }

            Assert.That(fired.Wait(TimeSpan.FromSeconds(10)), Is.True);
        }

        builder.Control.RequestStop(MachineStopReason.DebugExit, 0, "done");
        Assert.That(run.Wait(TimeSpan.FromSeconds(10)), Is.True);
        // Woken by the new deadline, the thread fires it within the wake-up latency; slept through, it would fire up
        // to 98 ms late (five in a row under 20 ms by chance: about 1 in 3000).
        Assert.That(lateness, Has.All.LessThan(20_000_000));
    }

    [Test]
    public void AStopRequestEndsTheTimerThreadsSleep()
    {
        var took = new List<TimeSpan>();
        for (int i = 0; i < 5; i++)
        {
            using var builder = new VirtualMachineBuilder();
            using VirtualMachine vm = TimerLoopTests.Build(builder);
            var run = Task.Run(() => vm.Run(new MachineRunOptions(TimeSpan.FromSeconds(30))));
            Thread.Sleep(30);
            var stopwatch = System.Diagnostics.Stopwatch.StartNew();
            builder.Control.RequestStop(MachineStopReason.DebugExit, 0, "done");
            Assert.That(run.Wait(TimeSpan.FromSeconds(10)), Is.True);
            took.Add(stopwatch.Elapsed);
            Assert.That(run.Result.Reason, Is.EqualTo(MachineStopReason.DebugExit));
        }

        // The run returns after the timer thread wakes and the vCPU thread is joined; a slept-through stop would take
        // up to 100 ms (five in a row under 40 ms by chance: about 1 in 100).
        Assert.That(took, Has.All.LessThan(TimeSpan.FromMilliseconds(40)));
    }

    /// <summary>
    /// A deadline that is not a whole number of milliseconds away takes the timer thread one sleep, not a
    /// millisecond wait that ends early and a second sleep for the rest: every wake-up is the scheduler switching to
    /// the timer thread, which on a one-CPU host (the kvm guest) preempts the vCPU thread.
    /// </summary>
    [Test]
    public void ADeadlineCostsTheTimerThreadOneSleep()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Ignore("reads the timer thread's context switches from Linux's /proc/thread-self/status");
        }

        const int Callbacks = 41;
        const long PeriodNs = 5_500_000;
        using var builder = new VirtualMachineBuilder();
        int count = 0;
        long firstSwitches = 0, lastSwitches = 0;
        DeviceTimer? timer = null;
        timer = builder.Timers.CreateTimer("5.5 ms", () =>
        {
            count++;
            if (count == 1)
            {
                firstSwitches = TimerLoopTests.VoluntarySwitchesOfThisThread();
            }

            if (count == Callbacks)
            {
                lastSwitches = TimerLoopTests.VoluntarySwitchesOfThisThread();
                builder.Control.RequestStop(MachineStopReason.DebugExit, 0, "done");
                return;
            }

            timer!.Schedule(builder.Clock.NowNanoseconds + PeriodNs); // from now: one wait per callback even on a loaded host
        });
        lock (builder.IoLock.Sync)
        {
            timer.Schedule(builder.Clock.NowNanoseconds + PeriodNs);
        }

        using VirtualMachine vm = TimerLoopTests.Build(builder);
        Assert.That(vm.Run(new MachineRunOptions(TimeSpan.FromSeconds(30))).Reason, Is.EqualTo(MachineStopReason.DebugExit));
        long switches = lastSwitches - firstSwitches;
        TestContext.Out.WriteLine($"{switches} voluntary switches over {Callbacks - 1} periods");
        // 40 periods: one sleep each. A 5 ms wait and a sleep for the rest made 48-71 here (on a loaded host the wait
        // sometimes ended past the deadline), about 80 on a quiet one.
        Assert.That(switches, Is.InRange(Callbacks - 1, (Callbacks - 1) * 11 / 10));
    }
}
