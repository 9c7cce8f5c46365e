// One Intel 8259A programmable interrupt controller.
//
// Register map (2 ports):
//   0 write: ICW1 when bit 4 is set (b0 IC4, b1 SNGL, b3 LTIM); else OCW3 when bit 3 is set (b0 RIS, b1 RR, b2 P,
//            b5 SMM, b6 ESMM); else OCW2 (b7-5 R SL EOI, b2-0 level)
//   0 read : IRR or ISR (chosen by OCW3), or the poll word after an OCW3 with P set
//   1 write: ICW2 (vector base), ICW3 (cascade), ICW4 (b0 uPM, b1 AEOI, b4 SFNM) while initialising; else OCW1 (IMR)
//   1 read : IMR
//
// Specification: Intel 8259A data sheet (order number 231468). Priorities are relative to a rotating base: the
// highest-priority level is `_priorityBase` and the lowest is `_priorityBase - 1`. Edge-triggered inputs latch IRR on a
// low-to-high change; level-triggered inputs (ELCR bit or ICW1 LTIM) make IRR follow the line.
using Hypervisor.Devices.Bus;

namespace Hypervisor.Devices.Pic;

/// <summary>One 8259A. Created in pairs by <see cref="DualPic"/>, which wires the cascade and the CPU side.</summary>
/// <remarks>Call with the machine's I/O lock held.</remarks>
public sealed class Pic8259 : IByteRegisterDevice
{
    private readonly Action _changed;
    private byte _lines;
    private int _initStep; // 0 ready; 1 expects ICW2; 2 ICW3; 3 ICW4
    private bool _icw4Needed, _single, _ltim, _autoEoi, _rotateOnAutoEoi, _sfnm, _specialMask, _poll, _readIsr;
    private int _priorityBase;

    internal Pic8259(bool isMaster, byte elcrMask, Action changed)
    {
        IsMaster = isMaster;
        ElcrMask = elcrMask;
        _changed = changed;
    }

    /// <summary>True for the master (IRQ 0-7), false for the slave (IRQ 8-15).</summary>
    public bool IsMaster { get; }

    /// <summary>The interrupt request register.</summary>
    public byte Irr { get; private set; }

    /// <summary>The in-service register.</summary>
    public byte Isr { get; private set; }

    /// <summary>The interrupt mask register (OCW1).</summary>
    public byte Imr { get; private set; }

    /// <summary>The vector of IR0 (ICW2 with the low three bits clear).</summary>
    public byte VectorBase { get; private set; }

    /// <summary>ICW3: the slave bitmap on the master, the cascade identity on the slave.</summary>
    public byte Cascade { get; private set; }

    /// <summary>The edge/level control register: a set bit makes that input level-triggered.</summary>
    public byte Elcr { get; private set; }

    /// <summary>The bits of <see cref="Elcr"/> that can be set (the others are always edge-triggered).</summary>
    public byte ElcrMask { get; }

    /// <summary>True while an initialisation sequence (ICW2-ICW4) is in progress.</summary>
    public bool IsInitializing => _initStep != 0;

    /// <summary>True when automatic end of interrupt is on (ICW4 AEOI).</summary>
    public bool AutoEoi => _autoEoi;

    /// <summary>True when the special mask mode is on (OCW3).</summary>
    public bool SpecialMask => _specialMask;

    /// <summary>The level with the lowest priority (7 after initialisation).</summary>
    public int LowestPriorityLevel => (_priorityBase + 7) & 7;

    /// <inheritdoc />
    public byte ReadRegister(int offset)
    {
        if (offset != 0)
        {
            return Imr;
        }

        if (_poll)
        {
            _poll = false;
            int irq = PendingIrq();
            if (irq < 0)
            {
                return 0;
            }

            Acknowledge(irq);
            _changed();
            return (byte)(0x80 | irq);
        }

        return _readIsr ? Isr : Irr;
    }

    /// <inheritdoc />
    public void WriteRegister(int offset, byte value)
    {
        if (offset == 0)
        {
            WriteCommand(value);
        }
        else
        {
            WriteData(value);
        }

        _changed();
    }

    /// <summary>The ELCR value as written by the guest, masked.</summary>
    internal void SetElcr(byte value)
    {
        Elcr = (byte)(value & ElcrMask);
        SyncLevelInputs();
    }

    /// <summary>Drives input <paramref name="irq"/> (0-7); the caller updates the outputs.</summary>
    internal void SetInput(int irq, bool level)
    {
        byte mask = (byte)(1 << irq);
        bool levelTriggered = _ltim || (Elcr & mask) != 0;
        if (levelTriggered)
        {
            Irr = level ? (byte)(Irr | mask) : (byte)(Irr & ~mask);
        }
        else if (level && (_lines & mask) == 0)
        {
            Irr |= mask;
        }

        _lines = level ? (byte)(_lines | mask) : (byte)(_lines & ~mask);
    }

    /// <summary>The level this chip would deliver now (its INT output is high), or -1.</summary>
    internal int PendingIrq()
    {
        int pending = Priority((byte)(Irr & ~Imr));
        if (pending == 8)
        {
            return -1;
        }

        byte inService = Isr;
        if (_specialMask)
        {
            inService &= (byte)~Imr;
        }

        if (IsMaster && _sfnm)
        {
            // Special fully nested mode: a slave in service does not block further requests from that slave.
            inService &= (byte)~Cascade;
        }

        return pending < Priority(inService) ? (pending + _priorityBase) & 7 : -1;
    }

    /// <summary>The INTA cycle for level <paramref name="irq"/> (from <see cref="PendingIrq"/>).</summary>
    internal void Acknowledge(int irq)
    {
        byte mask = (byte)(1 << irq);
        if (!(_ltim || (Elcr & mask) != 0))
        {
            Irr &= (byte)~mask;
        }

        if (_autoEoi)
        {
            if (_rotateOnAutoEoi)
            {
                _priorityBase = (irq + 1) & 7;
            }
        }
        else
        {
            Isr |= mask;
        }
    }

    private int Priority(byte mask)
    {
        if (mask == 0)
        {
            return 8;
        }

        for (int p = 0; p < 8; p++)
        {
            if ((mask & (1 << ((p + _priorityBase) & 7))) != 0)
            {
                return p;
            }
        }

        return 8;
    }

    private void WriteCommand(byte value)
    {
        if ((value & 0x10) != 0)
        {
            // ICW1 (8259A data sheet, "Initialization Command Words"): clears IMR and the edge-sense latches, gives IR7
            // the lowest priority, clears special mask mode, selects IRR for status reads, and zeroes ICW4 functions.
            _initStep = 1;
            _icw4Needed = (value & 0x01) != 0;
            _single = (value & 0x02) != 0;
            _ltim = (value & 0x08) != 0;
            Imr = 0;
            Isr = 0;
            Irr = 0;
            _priorityBase = 0;
            _specialMask = false;
            _readIsr = false;
            _poll = false;
            _autoEoi = false;
            _rotateOnAutoEoi = false;
            _sfnm = false;
            SyncLevelInputs();
            return;
        }

        if ((value & 0x08) != 0)
        {
            // OCW3.
            if ((value & 0x04) != 0)
            {
                _poll = true;
            }

            if ((value & 0x02) != 0)
            {
                _readIsr = (value & 0x01) != 0;
            }

            if ((value & 0x40) != 0)
            {
                _specialMask = (value & 0x20) != 0;
            }

            return;
        }

        // OCW2.
        int level = value & 7;
        switch (value >> 5)
        {
            case 0: // clear rotate in automatic EOI mode
                _rotateOnAutoEoi = false;
                break;
            case 4: // set rotate in automatic EOI mode
                _rotateOnAutoEoi = true;
                break;
            case 1: // non-specific EOI
            case 5: // rotate on non-specific EOI
                {
                    int p = Priority(Isr);
                    if (p < 8)
                    {
                        int irq = (p + _priorityBase) & 7;
                        Isr &= (byte)~(1 << irq);
                        if (value >> 5 == 5)
                        {
                            _priorityBase = (irq + 1) & 7;
                        }
                    }

                    break;
                }

            case 3: // specific EOI
                Isr &= (byte)~(1 << level);
                break;
            case 7: // rotate on specific EOI
                Isr &= (byte)~(1 << level);
                _priorityBase = (level + 1) & 7;
                break;
            case 6: // set priority: `level` becomes the lowest
                _priorityBase = (level + 1) & 7;
                break;
            default: // 2: no operation
                break;
        }
    }

    private void WriteData(byte value)
    {
        switch (_initStep)
        {
            case 1:
                VectorBase = (byte)(value & 0xF8);
                _initStep = _single ? (_icw4Needed ? 3 : 0) : 2;
                break;
            case 2:
                Cascade = value;
                _initStep = _icw4Needed ? 3 : 0;
                break;
            case 3:
                // uPM (bit 0) selects 8086 mode; MCS-80/85 call sequences do not exist on a PC and are not modelled.
                _autoEoi = (value & 0x02) != 0;
                _sfnm = (value & 0x10) != 0;
                _initStep = 0;
                break;
            default:
                Imr = value;
                break;
        }
    }

    /// <summary>Makes IRR follow the line for every level-triggered input.</summary>
    private void SyncLevelInputs()
    {
        byte levelMask = _ltim ? (byte)0xFF : Elcr;
        Irr = (byte)((Irr & ~levelMask) | (_lines & levelMask));
    }
}
