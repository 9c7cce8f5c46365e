// The PC's pair of 8259A interrupt controllers: the master at ports 0x20-0x21 (IRQ 0-7) and the slave at 0xA0-0xA1
// (IRQ 8-15), with the slave's INT output wired to the master's IR2 and the master's INT to the CPU. The edge/level
// control registers (ELCR) sit at 0x4D0 (master) and 0x4D1 (slave).
//
// Register map: see Pic8259.cs for each chip; ELCR offset 0 = master, 1 = slave (a set bit makes the IRQ level-triggered).
//
// Specification: Intel 8259A data sheet (231468) for the chips and the INTA sequence, including the spurious IRQ 7
// (and IRQ 15 through the cascade) when a request goes away before it is acknowledged; Intel 82371AB (PIIX4) data sheet,
// "ELCR1/ELCR2", for the ELCR: IRQ 0, 1, 2, 8 and 13 are always edge-triggered (masks 0xF8 and 0xDE).
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Devices.Bus;

namespace Hypervisor.Devices.Pic;

/// <summary>
/// The PC's cascaded 8259A pair. Devices raise IRQs through <see cref="GetLine"/>; vCPUs take interrupts through the
/// <see cref="IInterruptSource"/> it implements; <see cref="IMachineControl.NotifyInterruptPending"/> is called whenever
/// the INTR output rises.
/// </summary>
/// <remarks>
/// Register access and <see cref="IInterruptLine.SetLevel"/> happen with the machine's I/O lock held (device code always
/// is). <see cref="HasPendingInterrupt"/> and <see cref="AcknowledgeInterrupt"/> take the lock themselves, so vCPU
/// threads may call them without it.
/// </remarks>
public sealed class DualPic : IInterruptSource
{
    /// <summary>The master's base port.</summary>
    public const ushort MasterPort = 0x20;

    /// <summary>The slave's base port.</summary>
    public const ushort SlavePort = 0xA0;

    /// <summary>The ELCR's base port (two ports).</summary>
    public const ushort ElcrPort = 0x4D0;

    /// <summary>The master input the slave is cascaded on.</summary>
    public const int CascadeIrq = 2;

    private readonly IMachineControl _control;
    private readonly IoLock _ioLock;
    private readonly PicLine[] _lines = new PicLine[16];
    private volatile bool _intr;
    private bool _intrRaisedSinceAck;

    /// <summary>Creates the pair; INTR rising is signalled through <paramref name="control"/>.</summary>
    public DualPic(IMachineControl control, IoLock ioLock)
    {
        _control = control ?? throw new ArgumentNullException(nameof(control));
        _ioLock = ioLock ?? throw new ArgumentNullException(nameof(ioLock));
        Master = new Pic8259(isMaster: true, elcrMask: 0xF8, Update);
        Slave = new Pic8259(isMaster: false, elcrMask: 0xDE, Update);
        for (int i = 0; i < 16; i++)
        {
            _lines[i] = new PicLine(this, i);
        }

        Elcr = new ElcrRegisters(this);
    }

    /// <summary>The master (IRQ 0-7); its registers go at <see cref="MasterPort"/>.</summary>
    public Pic8259 Master { get; }

    /// <summary>The slave (IRQ 8-15); its registers go at <see cref="SlavePort"/>.</summary>
    public Pic8259 Slave { get; }

    /// <summary>The two ELCR registers; they go at <see cref="ElcrPort"/>.</summary>
    public IByteRegisterDevice Elcr { get; }

    /// <summary>How many interrupts were acknowledged as spurious (IRQ 7 or 15).</summary>
    public long SpuriousCount { get; private set; }

    /// <summary>The input line of ISA IRQ <paramref name="irq"/> (0-15).</summary>
    /// <remarks>IRQ 2 is the cascade input on a PC: driving its line has no effect (AT boards route ISA IRQ 2 to IRQ 9).</remarks>
    public IInterruptLine GetLine(int irq)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(irq);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(irq, 15);
        return _lines[irq];
    }

    /// <inheritdoc />
    /// <remarks>
    /// Lock-free (a volatile read of the INTR output, which every state change recomputes under the I/O lock), so a vCPU
    /// can ask at every instruction boundary cheaply.
    /// </remarks>
    public bool HasPendingInterrupt => _intr;

    /// <inheritdoc />
    /// <remarks>
    /// Returns the vector of the highest-priority request. If INTR was raised but the request went away before this
    /// acknowledge, returns the spurious vector (IR7 of the master, or IR7 of the slave when the master chose the
    /// cascade input), as the 8259A does; if INTR was not raised since the last acknowledge, returns -1.
    /// </remarks>
    public int AcknowledgeInterrupt()
    {
        lock (_ioLock.Sync)
        {
            int vector;
            int irq = Master.PendingIrq();
            if (irq < 0)
            {
                if (!_intrRaisedSinceAck)
                {
                    return -1;
                }

                SpuriousCount++;
                vector = Master.VectorBase + 7;
            }
            else
            {
                Master.Acknowledge(irq);
                if (irq == CascadeIrq)
                {
                    int slaveIrq = Slave.PendingIrq();
                    if (slaveIrq < 0)
                    {
                        SpuriousCount++;
                        slaveIrq = 7;
                    }
                    else
                    {
                        Slave.Acknowledge(slaveIrq);
                    }

                    vector = Slave.VectorBase + slaveIrq;
                }
                else
                {
                    vector = Master.VectorBase + irq;
                }
            }

            _intrRaisedSinceAck = false;
            Update();
            return vector;
        }
    }

    private void SetIrq(int irq, bool level)
    {
        if (irq < 8)
        {
            if (irq != CascadeIrq)
            {
                Master.SetInput(irq, level);
            }
        }
        else
        {
            Slave.SetInput(irq - 8, level);
        }

        Update();
    }

    /// <summary>Propagates the slave's INT to master IR2 and the master's INT to the CPU.</summary>
    private void Update()
    {
        Master.SetInput(CascadeIrq, Slave.PendingIrq() >= 0);
        bool intr = Master.PendingIrq() >= 0;
        bool rising = intr && !_intr;
        _intr = intr;
        if (rising)
        {
            _intrRaisedSinceAck = true;
            _control.NotifyInterruptPending();
        }
    }

    private sealed class PicLine(DualPic pic, int irq) : IInterruptLine
    {
        public void SetLevel(bool high) => pic.SetIrq(irq, high);
    }

    private sealed class ElcrRegisters(DualPic pic) : IByteRegisterDevice
    {
        public byte ReadRegister(int offset) => offset == 0 ? pic.Master.Elcr : pic.Slave.Elcr;

        public void WriteRegister(int offset, byte value)
        {
            (offset == 0 ? pic.Master : pic.Slave).SetElcr(value);
            pic.Update();
        }
    }
}
