namespace Hypervisor.Core.Machine;

/// <summary>The machine's stop and interrupt signalling, shared by devices and the run loop.</summary>
internal sealed class MachineControl : IMachineControl
{
    private readonly ManualResetEventSlim _stopped = new(false);
    private StopRequest? _request;
    private IReadOnlyList<IVcpu> _vcpus = [];
    private Action? _stopWaker;

    public WaitHandle StoppedHandle => _stopped.WaitHandle;

    public StopRequest? Request => Volatile.Read(ref _request);

    public void Attach(IReadOnlyList<IVcpu> vcpus) => _vcpus = vcpus;

    /// <summary>Called after <see cref="StoppedHandle"/> is set, for a thread that sleeps on something else; null for none.</summary>
    public Action? StopWaker
    {
        get => Volatile.Read(ref _stopWaker);
        set => Volatile.Write(ref _stopWaker, value);
    }

    public void Reset()
    {
        Volatile.Write(ref _request, null);
        _stopped.Reset();
    }

    public void RequestStop(MachineStopReason reason, int exitStatus, string? detail = null)
    {
        if (Interlocked.CompareExchange(ref _request, new StopRequest(reason, exitStatus, detail), null) is not null)
        {
            return;
        }

        foreach (IVcpu v in _vcpus)
        {
            v.Kick();
        }

        _stopped.Set();
        StopWaker?.Invoke();
    }

    public void NotifyInterruptPending()
    {
        // The bootstrap processor takes PIC interrupts (the PIC is wired to the BSP's LINT0 through virtual wire mode).
        IReadOnlyList<IVcpu> vcpus = _vcpus;
        if (vcpus.Count > 0)
        {
            vcpus[0].NotifyInterruptPending();
        }
    }

    public void NotifyVcpuInterruptPending(int vcpuIndex)
    {
        IReadOnlyList<IVcpu> vcpus = _vcpus;
        if ((uint)vcpuIndex < (uint)vcpus.Count)
        {
            vcpus[vcpuIndex].NotifyInterruptPending();
        }
    }
}

internal sealed record StopRequest(MachineStopReason Reason, int ExitStatus, string? Detail);
