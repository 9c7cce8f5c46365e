using Hypervisor.Core.Machine;

namespace Hypervisor.Devices.Tests.Fakes;

/// <summary>Records what devices asked of the machine (a fake of our own interface, for unit tests).</summary>
internal sealed class RecordingMachineControl : IMachineControl
{
    public List<(MachineStopReason Reason, int Status, string? Detail)> Stops { get; } = [];

    public int InterruptNotifications { get; private set; }

    public void RequestStop(MachineStopReason reason, int exitStatus, string? detail = null) => Stops.Add((reason, exitStatus, detail));

    public void NotifyInterruptPending() => InterruptNotifications++;
}
