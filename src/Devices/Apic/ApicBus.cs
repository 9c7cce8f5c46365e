// The APIC bus of a PC: the local APIC of every vCPU and the I/O APIC, and the interrupt messages between them
// (fixed, lowest-priority, NMI, INIT, start-up, ExtINT) with physical and logical destinations, as in Intel SDM Vol. 3A,
// 11.6 ("Issuing Interprocessor Interrupts") and 11.6.2 ("Determining IPI Destination"), plus the EOI message a local
// APIC broadcasts to the I/O APIC for level-triggered interrupts (11.8.5).
//
// The 8259 pair's INTR output is wired to every local APIC's LINT0 (virtual-wire mode, MultiProcessor Specification 1.4,
// 3.6.2.2): PcLayout hands the PIC a control whose NotifyInterruptPending lands in OnPicOutputRaised.
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Timing;

namespace Hypervisor.Devices.Apic;

/// <summary>APIC delivery modes (ICR, LVT and I/O APIC redirection entries, bits 10:8).</summary>
public enum ApicDeliveryMode
{
    /// <summary>The vector to the destination(s).</summary>
    Fixed = 0,

    /// <summary>The vector to the destination with the lowest priority.</summary>
    LowestPriority = 1,

    /// <summary>System-management interrupt (not modelled: dropped).</summary>
    Smi = 2,

    /// <summary>Non-maskable interrupt; the vector is ignored.</summary>
    Nmi = 4,

    /// <summary>INIT.</summary>
    Init = 5,

    /// <summary>Start-up IPI (ICR only).</summary>
    Startup = 6,

    /// <summary>The vector comes from the 8259 through an interrupt-acknowledge cycle.</summary>
    ExtInt = 7,
}

/// <summary>An interrupt message on the APIC bus.</summary>
/// <param name="Vector">The vector (fixed, lowest-priority) or start page (start-up).</param>
/// <param name="Mode">The delivery mode.</param>
/// <param name="Destination">The 8-bit destination (an APIC ID in physical mode, an MDA in logical mode; 0xFF = all).</param>
/// <param name="Logical">True for logical destination mode.</param>
/// <param name="Level">True for level-triggered (the receiving local APIC sets TMR and broadcasts EOI).</param>
public readonly record struct ApicMessage(byte Vector, ApicDeliveryMode Mode, byte Destination, bool Logical, bool Level);

/// <summary>
/// The local APICs of a machine's vCPUs and its I/O APIC, connected by the APIC bus. Register
/// <see cref="LocalApicMmio"/> at <see cref="LocalApic.DefaultBase"/> and <see cref="IoApic"/> at
/// <see cref="IoApic.DefaultBase"/>; give vCPU <c>i</c> <see cref="LocalApics"/>[i] as its
/// <see cref="ILocalInterruptController"/>.
/// </summary>
/// <remarks>Device-side methods run with the machine's I/O lock held; vCPU-side members take it themselves.</remarks>
public sealed class ApicBus
{
    private readonly LocalApic[] _apics;

    /// <summary>Creates <paramref name="vcpuCount"/> local APICs (IDs 0..n-1, vCPU 0 the bootstrap processor) and an I/O APIC.</summary>
    /// <param name="control">Where interrupts for a vCPU are signalled.</param>
    /// <param name="ioLock">The machine's I/O lock.</param>
    /// <param name="timers">The machine's timers (the local APIC timers run on them).</param>
    /// <param name="vcpuCount">How many vCPUs (1-255).</param>
    /// <param name="pic">The 8259 output that LINT0 and ExtINT messages take vectors from, or null for none.</param>
    public ApicBus(IMachineControl control, IoLock ioLock, TimerQueue timers, int vcpuCount, IInterruptSource? pic)
    {
        ArgumentNullException.ThrowIfNull(timers);
        ArgumentOutOfRangeException.ThrowIfLessThan(vcpuCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(vcpuCount, 255);
        Control = control ?? throw new ArgumentNullException(nameof(control));
        IoLock = ioLock ?? throw new ArgumentNullException(nameof(ioLock));
        Pic = pic;
        Clock = timers.Clock;
        _apics = new LocalApic[vcpuCount];
        for (int i = 0; i < vcpuCount; i++)
        {
            _apics[i] = new LocalApic(this, i, timers);
        }

        IoApic = new IoApic(this);
        LocalApicMmio = new LocalApicRegisters(this);
    }

    /// <summary>The local APIC of each vCPU, by vCPU index (the APIC ID at reset is the index).</summary>
    public IReadOnlyList<LocalApic> LocalApics => _apics;

    /// <summary>The I/O APIC.</summary>
    public IoApic IoApic { get; }

    /// <summary>
    /// The local APIC page as an MMIO device: each access reaches the local APIC of the vCPU that makes it
    /// (<see cref="CurrentVcpu.Index"/>).
    /// </summary>
    public IMmioDevice LocalApicMmio { get; }

    internal IMachineControl Control { get; }

    internal IoLock IoLock { get; }

    internal IInterruptSource? Pic { get; }

    internal IMachineClock Clock { get; }

    /// <summary>The 8259 raised INTR: every local APIC's LINT0 sees it. Call with the I/O lock held.</summary>
    public void OnPicOutputRaised()
    {
        foreach (LocalApic a in _apics)
        {
            a.OnLint0Raised();
        }
    }

    /// <summary>
    /// Sends a message from the I/O APIC or an ICR. <paramref name="shorthand"/>: 0 none, 1 self, 2 all including
    /// self, 3 all excluding self (ICR bits 19:18). Returns how many local APICs accepted it.
    /// </summary>
    internal int Send(in ApicMessage message, int shorthand = 0, LocalApic? source = null)
    {
        if (message.Mode == ApicDeliveryMode.LowestPriority && shorthand == 0)
        {
            // SDM 11.6.2.4: the destination with the lowest processor priority takes it (ties: the lowest ID here).
            LocalApic? best = null;
            foreach (LocalApic a in _apics)
            {
                if (a.IsHardwareEnabled && a.MatchesDestination(message.Destination, message.Logical) &&
                    (best is null || a.ProcessorPriority < best.ProcessorPriority))
                {
                    best = a;
                }
            }

            if (best is null)
            {
                return 0;
            }

            best.Accept(message with { Mode = ApicDeliveryMode.Fixed });
            return 1;
        }

        int accepted = 0;
        foreach (LocalApic a in _apics)
        {
            bool target = shorthand switch
            {
                1 => a == source,
                2 => true,
                3 => a != source,
                _ => a.MatchesDestination(message.Destination, message.Logical),
            };
            if (target && a.IsHardwareEnabled)
            {
                a.Accept(message.Mode == ApicDeliveryMode.LowestPriority ? message with { Mode = ApicDeliveryMode.Fixed } : message);
                accepted++;
            }
        }

        return accepted;
    }

    /// <summary>A local APIC completed a level-triggered interrupt: the I/O APIC clears remote IRR for the vector.</summary>
    internal void BroadcastEoi(int vector) => IoApic.OnEoi(vector);

    private sealed class LocalApicRegisters(ApicBus bus) : IMmioDevice
    {
        public ulong Read(ulong offset, int size) => Target().ReadMmio(offset, size);

        public void Write(ulong offset, int size, ulong value) => Target().WriteMmio(offset, size, value);

        private LocalApic Target()
        {
            int i = CurrentVcpu.Index;
            return bus._apics[(uint)i < (uint)bus._apics.Length ? i : 0];
        }
    }
}
