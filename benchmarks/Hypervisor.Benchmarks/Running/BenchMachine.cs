using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;

namespace Hypervisor.Benchmarks.Running;

/// <summary>
/// Builds the machine a benchmark guest runs on: 128 MiB of RAM and the firmware image laid out as
/// guest-contract.md says, and the three ports the guests use (COM1 transmit and line status, isa-debug-exit and the
/// POST port).
/// </summary>
/// <remarks>
/// Interim: the PC device model (src/Devices, <c>AddPcDevices</c>) is not on main yet, so the entry-point factory
/// (<c>IVirtualMachineFactory</c>) does not build. These three minimal ports are what the workloads touch; every other
/// port is unclaimed on our side (as the unclaimed-port workload needs). When the PC devices land this class should
/// build through <c>IVirtualMachineFactory</c> instead, so that the timer workload and real device costs are measured.
/// </remarks>
public static class BenchMachine
{
    /// <summary>Guest RAM: 128 MiB, as QEMU is run with <c>-m 128</c>.</summary>
    public const ulong MemorySizeInBytes = 128UL * 1024 * 1024;

    /// <summary>Builds the machine on the accelerator <paramref name="spec"/> names (no fallback).</summary>
    /// <exception cref="AcceleratorUnavailableException">The accelerator cannot run here; the message has the probe's reason.</exception>
    public static VirtualMachine Create(AcceleratorSelector selector, string spec, byte[] image, Stream serial)
    {
        ArgumentNullException.ThrowIfNull(selector);
        var builder = new VirtualMachineBuilder();
        try
        {
            GuestMemoryLayout.AddRam(builder.Memory, MemorySizeInBytes);
            GuestMemoryLayout.AddFirmware(builder.Memory, image);
            builder.Ports.Register(0x3F8, 8, new SerialTransmitter(serial), "com1");
            builder.Ports.Register(0x501, 2, new DebugExit(builder.Control), "isa-debug-exit");
            builder.Ports.Register(0x80, 1, new PostCode(), "post");
            return builder.Build(selector, selector.Parse(spec));
        }
        catch
        {
            builder.Dispose();
            throw;
        }
    }

    // THR at offset 0 goes to the stream; LSR at offset 5 always says "transmitter empty" (THRE | TEMT).
    private sealed class SerialTransmitter(Stream output) : IPortDevice
    {
        public uint Read(ushort offset, int size) => offset == 5 ? 0x60u : 0u;

        public void Write(ushort offset, int size, uint value)
        {
            if (offset == 0)
            {
                output.WriteByte((byte)value);
            }
        }
    }

    // QEMU's isa-debug-exit: writing v stops the machine with status (v << 1) | 1.
    private sealed class DebugExit(IMachineControl control) : IPortDevice
    {
        public uint Read(ushort offset, int size) => uint.MaxValue;

        public void Write(ushort offset, int size, uint value) =>
            control.RequestStop(MachineStopReason.DebugExit, (int)(((value & 0xFF) << 1) | 1));
    }

    // The POST port keeps the last value written.
    private sealed class PostCode : IPortDevice
    {
        private byte _last;

        public uint Read(ushort offset, int size) => _last;

        public void Write(ushort offset, int size, uint value) => _last = (byte)value;
    }
}
