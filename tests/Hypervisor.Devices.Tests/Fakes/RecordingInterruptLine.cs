using Hypervisor.Core.Io;

namespace Hypervisor.Devices.Tests.Fakes;

/// <summary>Records the level of an interrupt line and counts rising edges (a fake of our own interface).</summary>
internal sealed class RecordingInterruptLine : IInterruptLine
{
    public bool Level { get; private set; }

    public int RisingEdges { get; private set; }

    public List<bool> History { get; } = [];

    public void SetLevel(bool high)
    {
        if (high && !Level)
        {
            RisingEdges++;
        }

        Level = high;
        History.Add(high);
    }
}
