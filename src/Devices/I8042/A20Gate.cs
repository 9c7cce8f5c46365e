namespace Hypervisor.Devices.I8042;

/// <summary>
/// The A20 gate line, driven by the i8042's output port (bit 1) and by port 0x92 (bit 1); the last write wins, as in
/// QEMU's PC.
/// </summary>
/// <remarks>
/// The state is kept and readable, but no CPU masks address bit 20 yet: guests always see all address lines (which is
/// what firmware and kernels that enable A20 expect anyway).
/// </remarks>
public sealed class A20Gate
{
    /// <summary>True when A20 is enabled (true at power-on, as QEMU starts).</summary>
    public bool Enabled { get; internal set; } = true;

    /// <summary>How many times the guest changed the line.</summary>
    public long ChangeCount { get; internal set; }

    internal void Set(bool enabled)
    {
        if (enabled != Enabled)
        {
            Enabled = enabled;
            ChangeCount++;
        }
    }
}
