using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Timing;
using Hypervisor.Devices.Apic;
using Hypervisor.Devices.Pic;

namespace Hypervisor.Devices.Tests.Apic;

/// <summary>Counts per-vCPU notifications (a fake of our own interface, for unit tests).</summary>
internal sealed class PerVcpuRecordingControl : IMachineControl
{
    public int[] Notifications { get; } = new int[8];

    public int BroadcastNotifications { get; private set; }

    public void RequestStop(MachineStopReason reason, int exitStatus, string? detail = null)
    {
    }

    public void NotifyInterruptPending() => BroadcastNotifications++;

    public void NotifyVcpuInterruptPending(int vcpuIndex) => Notifications[vcpuIndex]++;
}

/// <summary>An APIC bus with a manual clock, an optional 8259 pair in virtual-wire mode, and register helpers.</summary>
internal sealed class ApicTestMachine
{
    public ApicTestMachine(int vcpus = 1, bool withPic = false)
    {
        Clock = new ManualClock(DateTimeOffset.UnixEpoch);
        IoLock = new IoLock();
        Timers = new TimerQueue(Clock, IoLock);
        Control = new PerVcpuRecordingControl();
        if (withPic)
        {
            Pic = new DualPic(new PicToApic(this), IoLock);
        }

        Bus = new ApicBus(Control, IoLock, Timers, vcpus, Pic);
    }

    public ManualClock Clock { get; }

    public IoLock IoLock { get; }

    public TimerQueue Timers { get; }

    public PerVcpuRecordingControl Control { get; }

    public DualPic? Pic { get; }

    public ApicBus Bus { get; }

    public LocalApic Bsp => Bus.LocalApics[0];

    public uint Read(int offset, int vcpu = 0)
    {
        lock (IoLock.Sync)
        {
            return Bus.LocalApics[vcpu].ReadRegister(offset);
        }
    }

    public void Write(int offset, uint value, int vcpu = 0)
    {
        lock (IoLock.Sync)
        {
            Bus.LocalApics[vcpu].WriteRegister(offset, value);
        }
    }

    /// <summary>Software-enables the APIC with spurious vector 0xFF.</summary>
    public void Enable(int vcpu = 0) => Write(0xF0, 0x1FF, vcpu);

    /// <summary>Sends a fixed IPI from vCPU 0 to itself (ICR shorthand "self").</summary>
    public void SelfIpi(byte vector, int vcpu = 0) => Write(0x300, (1u << 18) | vector, vcpu);

    public void Advance(long ns)
    {
        Clock.Advance(ns);
        Timers.RunDue();
    }

    /// <summary>Acknowledges and returns every vector the APIC delivers now, without EOI.</summary>
    public int Ack(int vcpu = 0) => Bus.LocalApics[vcpu].HasPendingInterrupt ? Bus.LocalApics[vcpu].AcknowledgeInterrupt() : -1;

    public void Eoi(int vcpu = 0) => Write(0xB0, 0, vcpu);

    public bool IrrBit(int vector, int vcpu = 0) => (Read(0x200 + (vector >> 5) * 0x10, vcpu) & (1u << (vector & 31))) != 0;

    public bool IsrBit(int vector, int vcpu = 0) => (Read(0x100 + (vector >> 5) * 0x10, vcpu) & (1u << (vector & 31))) != 0;

    public bool TmrBit(int vector, int vcpu = 0) => (Read(0x180 + (vector >> 5) * 0x10, vcpu) & (1u << (vector & 31))) != 0;

    public void Ioapic(int index, uint value)
    {
        lock (IoLock.Sync)
        {
            Bus.IoApic.Write(0x00, 1, (ulong)index);
            Bus.IoApic.Write(0x10, 4, value);
        }
    }

    public uint Ioapic(int index)
    {
        lock (IoLock.Sync)
        {
            Bus.IoApic.Write(0x00, 1, (ulong)index);
            return (uint)Bus.IoApic.Read(0x10, 4);
        }
    }

    public void Pin(int pin, bool high)
    {
        lock (IoLock.Sync)
        {
            Bus.IoApic.GetPin(pin).SetLevel(high);
        }
    }

    /// <summary>The PC wiring: the 8259's INTR reaches every LINT0 (PcLayout does the same).</summary>
    private sealed class PicToApic(ApicTestMachine m) : IMachineControl
    {
        public void RequestStop(MachineStopReason reason, int exitStatus, string? detail = null)
        {
        }

        public void NotifyInterruptPending() => m.Bus.OnPicOutputRaised();
    }
}
