using System.Diagnostics;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine.Interop;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Timing;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Core.Machine;

/// <summary>
/// A virtual machine: memory, devices, the chosen accelerator and its vCPUs. <see cref="Run"/> runs each vCPU on its
/// own host thread, runs device timers, and stops on debug-exit, power-off, reset, shutdown, HLT with interrupts
/// off, cancellation or a budget.
/// </summary>
/// <remarks>One <see cref="Run"/> at a time. Dispose after the run has returned.</remarks>
public sealed class VirtualMachine : IDisposable
{
    private readonly MachineControl _control;
    private readonly IReadOnlyList<object> _devices;
    private readonly ILogger _logger;
    private int _running;
    private bool _disposed;

    internal VirtualMachine(VirtualMachineBuilder builder, AcceleratorSelection selection, IReadOnlyList<IVcpu> vcpus,
        MachineControl control, ILogger logger)
    {
        Memory = builder.Memory;
        Ports = builder.Ports;
        Timers = builder.Timers;
        IoLock = builder.IoLock;
        Selection = selection;
        Vcpus = vcpus;
        _devices = builder.Devices.ToArray();
        _control = control;
        _logger = logger;
        control.Attach(vcpus);
    }

    /// <summary>The guest-physical address space.</summary>
    public IMemoryMap Memory { get; }

    /// <summary>The port I/O bus.</summary>
    public PortIoBus Ports { get; }

    /// <summary>The device timers and the machine clock.</summary>
    public TimerQueue Timers { get; }

    /// <summary>The lock every device access takes (hold it to touch device state from the host).</summary>
    public IoLock IoLock { get; }

    /// <summary>The chosen accelerator, its options and why every other candidate was skipped.</summary>
    public AcceleratorSelection Selection { get; }

    /// <summary>The name of the accelerator running the guest.</summary>
    public string AcceleratorName => Selection.Accelerator.Name;

    /// <summary>The vCPUs; index 0 is the bootstrap processor.</summary>
    public IReadOnlyList<IVcpu> Vcpus { get; }

    /// <summary>Stops a running machine as if a device had asked (thread-safe).</summary>
    public IMachineControl Control => _control;

    /// <summary>The first device of type <typeparamref name="T"/>, or null.</summary>
    public T? GetDevice<T>() where T : class => _devices.OfType<T>().FirstOrDefault();

    /// <summary>
    /// Runs the guest until it stops. Guest faults, triple faults and garbage code end the run with a result, never an
    /// exception.
    /// </summary>
    /// <param name="options">Time and instruction budgets.</param>
    /// <param name="cancellationToken">Stops the run (with <see cref="MachineStopReason.Cancelled"/>) within milliseconds.</param>
    /// <exception cref="InvalidOperationException">The machine is already running.</exception>
    public MachineRunResult Run(MachineRunOptions? options = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Interlocked.Exchange(ref _running, 1) != 0)
        {
            throw new InvalidOperationException("The machine is already running.");
        }

        try
        {
            return RunCore(options ?? new MachineRunOptions(), cancellationToken);
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }

    private MachineRunResult RunCore(MachineRunOptions options, CancellationToken cancellationToken)
    {
        _control.Reset();
        _parkedVcpus = 0;
        var stopwatch = Stopwatch.StartNew();
        VcpuStatistics[] before = Vcpus.Select(v => v.Statistics).ToArray();
        var lastExits = new VcpuExit[Vcpus.Count];
        var threads = new Thread[Vcpus.Count];
        for (int i = 0; i < Vcpus.Count; i++)
        {
            int index = i;
            threads[i] = new Thread(() => lastExits[index] = VcpuLoop(Vcpus[index], options.InstructionLimit))
            {
                IsBackground = true,
                Name = $"vcpu{index}",
            };
        }

        using CancellationTokenRegistration registration = cancellationToken.Register(
            () => _control.RequestStop(MachineStopReason.Cancelled, MachineRunResult.CancelledExitStatus, "cancelled by the caller"));
        using WakeableSleep? sleep = WakeableSleep.TryCreate();
        if (sleep is not null)
        {
            Timers.Waker = sleep.Wake;
            _control.StopWaker = sleep.Wake;
        }

        try
        {
            foreach (Thread t in threads)
            {
                t.Start();
            }

            TimerLoop(options.Timeout, stopwatch, sleep);
            foreach (Thread t in threads)
            {
                t.Join();
            }
        }
        finally
        {
            if (sleep is not null)
            {
                Timers.Waker = null;
                _control.StopWaker = null;
            }
        }

        stopwatch.Stop();
        StopRequest request = _control.Request!;
        long instructions = 0, exits = 0;
        for (int i = 0; i < Vcpus.Count; i++)
        {
            VcpuStatistics s = Vcpus[i].Statistics;
            instructions = s.Instructions < 0 || instructions < 0 ? -1 : instructions + (s.Instructions - before[i].Instructions);
            exits += s.Exits - before[i].Exits;
        }

        var result = new MachineRunResult(request.Reason, request.ExitStatus, request.Detail, instructions, exits,
            stopwatch.Elapsed, lastExits[0]);
        _logger.LogInformation("Machine stopped: {Reason} (status {Status}) after {Elapsed}", result.Reason, result.ExitStatus, result.Elapsed);
        return result;
    }

    /// <summary>
    /// Runs the device timers on host time until the machine stops. Waits for the next deadline without spinning and
    /// without firing late: on Linux in one sleep with nanosecond resolution that a new deadline or a stop ends at once
    /// (<paramref name="sleep"/>); elsewhere whole milliseconds on the stop and <see cref="TimerQueue.Changed"/> handles
    /// (rounded down, so never past the deadline), then the last fraction of a millisecond with Thread.Yield. A spin
    /// there took up to a millisecond of CPU before every deadline, which on a host with one CPU is taken from the vCPU
    /// threads; rounding the wait up instead would fire every timer up to a millisecond late.
    /// </summary>
    private void TimerLoop(TimeSpan? timeout, Stopwatch stopwatch, WakeableSleep? sleep)
    {
        const long NanosecondsPerMillisecond = 1_000_000;
        const long MaxWaitNanoseconds = 100 * NanosecondsPerMillisecond;
        WaitHandle[] handles = [_control.StoppedHandle, Timers.Changed];
        while (_control.Request is null)
        {
            Timers.RunDue();
            long waitNs = MaxWaitNanoseconds;
            long? next = Timers.NextDeadline;
            if (next is not null)
            {
                waitNs = Math.Clamp(next.Value - Timers.Clock.NowNanoseconds, 0, MaxWaitNanoseconds);
            }

            if (timeout is not null)
            {
                TimeSpan left = timeout.Value - stopwatch.Elapsed;
                if (left <= TimeSpan.Zero)
                {
                    _control.RequestStop(MachineStopReason.Timeout, MachineRunResult.TimeoutExitStatus,
                        $"the time budget of {timeout.Value.TotalSeconds:0.###} s ran out");
                    break;
                }

                waitNs = Math.Min(waitNs, (long)Math.Ceiling(left.TotalMilliseconds) * NanosecondsPerMillisecond);
            }

            if (waitNs <= 0)
            {
                continue;
            }

            if (sleep is not null)
            {
                sleep.Sleep(waitNs);
            }
            else if (waitNs >= NanosecondsPerMillisecond)
            {
                WaitHandle.WaitAny(handles, (int)(waitNs / NanosecondsPerMillisecond));
            }
            else
            {
                Thread.Yield();
            }
        }
    }

    /// <summary>How often a parked vCPU (HLT with interrupts off, one of several) looks for an NMI, INIT or SIPI.</summary>
    private const int ParkedPollMilliseconds = 10;

    /// <summary>vCPUs of a multi-processor machine halted with interrupts off (see <see cref="VcpuLoop"/>).</summary>
    private int _parkedVcpus;

    private VcpuExit VcpuLoop(IVcpu vcpu, long? instructionLimit)
    {
        CurrentVcpu.Index = vcpu.Index;
        long limit = instructionLimit ?? long.MaxValue;
        long startCount = vcpu.Statistics.Instructions;
        VcpuExit exit = default;
        bool parked = false;
        try
        {
            while (_control.Request is null)
            {
                long remaining = limit;
                if (instructionLimit is not null && startCount >= 0)
                {
                    remaining = Math.Max(0, limit - (vcpu.Statistics.Instructions - startCount));
                }

                exit = vcpu.Run(remaining);
                if (parked && exit.Reason != VcpuExitReason.Halted)
                {
                    parked = false; // woken by an NMI, INIT or start-up IPI
                    Interlocked.Decrement(ref _parkedVcpus);
                }

                switch (exit.Reason)
                {
                    case VcpuExitReason.Interrupted:
                        break; // a stop request or a spurious kick; the loop condition decides
                    case VcpuExitReason.Halted when Vcpus.Count > 1:
                        // One processor of several halted with interrupts off is not a dead machine (Linux parks the
                        // others so before it powers off): it sleeps until another processor wakes it with an NMI, INIT
                        // or a start-up IPI, which its next Run takes. The run ends when every vCPU is parked so.
                        if (!parked)
                        {
                            parked = true;
                            if (Interlocked.Increment(ref _parkedVcpus) == Vcpus.Count)
                            {
                                _control.RequestStop(MachineStopReason.Halted, MachineRunResult.HaltedExitStatus,
                                    $"all {Vcpus.Count} vCPUs executed HLT with interrupts disabled (the last, vCPU {vcpu.Index}, at 0x{exit.InstructionPointer:X})");
                            }
                        }

                        _control.StoppedHandle.WaitOne(ParkedPollMilliseconds);
                        break;
                    case VcpuExitReason.Halted:
                        _control.RequestStop(MachineStopReason.Halted, MachineRunResult.HaltedExitStatus,
                            $"vCPU {vcpu.Index} executed HLT with interrupts disabled at 0x{exit.InstructionPointer:X}");
                        break;
                    case VcpuExitReason.Shutdown:
                        _control.RequestStop(MachineStopReason.Shutdown, MachineRunResult.ShutdownExitStatus,
                            exit.Detail ?? $"vCPU {vcpu.Index} triple-faulted at 0x{exit.InstructionPointer:X}");
                        break;
                    case VcpuExitReason.InstructionLimit:
                        _control.RequestStop(MachineStopReason.InstructionLimit, MachineRunResult.InstructionLimitExitStatus,
                            $"the instruction budget of {limit} ran out");
                        break;
                    case VcpuExitReason.Debug:
                        _control.RequestStop(MachineStopReason.Debug, MachineRunResult.DebugExitStatus, exit.Detail);
                        break;
                    default:
                        _control.RequestStop(MachineStopReason.GuestError, MachineRunResult.GuestErrorExitStatus,
                            exit.Detail ?? $"vCPU {vcpu.Index} stopped: {exit.Reason}");
                        break;
                }
            }
        }
#pragma warning disable CA1031 // a failing accelerator must end the run with a result, not kill the process
        catch (Exception e)
#pragma warning restore CA1031
        {
            _logger.LogError(e, "vCPU {Index} failed", vcpu.Index);
            _control.RequestStop(MachineStopReason.GuestError, MachineRunResult.GuestErrorExitStatus,
                $"vCPU {vcpu.Index} failed in the accelerator: {e.GetType().Name}: {e.Message}");
        }

        return exit;
    }

    /// <summary>Disposes the vCPUs, the accelerator's VM, disposable devices and the guest memory.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        if (Volatile.Read(ref _running) != 0)
        {
            throw new InvalidOperationException("Dispose was called while the machine is running; stop it first.");
        }

        _disposed = true;
        foreach (IVcpu v in Vcpus)
        {
            v.Dispose();
        }

        Selection.Vm.Dispose();
        foreach (IDisposable d in _devices.OfType<IDisposable>())
        {
            d.Dispose();
        }

        ((MemoryMap)Memory).Dispose();
    }
}
