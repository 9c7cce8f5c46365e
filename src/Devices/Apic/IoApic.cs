// The I/O APIC (Intel 82093AA data sheet, 290566; version 0x20 as QEMU's, which adds the EOI register of later
// chipsets' I/O APICs), 24 input pins, at 0xFEC00000.
//
// Memory-mapped registers:  0x00 IOREGSEL (index, 8 bits)   0x10 IOWIN (the selected register, 32 bits)
//                           0x40 EOI (write a vector: clears remote IRR of the level-triggered pins with that vector)
// Indirect registers:       0x00 ID (bits 27:24)   0x01 version: 0x00170020 (max redirection entry 23, version 0x20)
//                           0x02 arbitration ID (= ID)   0x10 + 2n / 0x11 + 2n: redirection entry n, low / high dword
// Redirection entry:        7:0 vector, 10:8 delivery mode, 11 destination mode (1 logical), 12 delivery status (RO),
//                           13 polarity, 14 remote IRR (RO), 15 trigger mode (1 level), 16 mask, 63:56 destination.
//
// Edge-triggered pins deliver on a rising input while unmasked (an edge while masked is lost, per the data sheet);
// level-triggered pins deliver while asserted and unmasked unless remote IRR is set, which the local APIC's EOI for the
// vector clears (then a still-asserted pin delivers again). Inputs are "asserted" when driven high: the polarity bit is
// kept for software but not applied, as the board-level inverters it describes are not modelled (as in QEMU).
using Hypervisor.Core.Io;
using Hypervisor.Core.Memory;

namespace Hypervisor.Devices.Apic;

/// <summary>The I/O APIC: 24 interrupt inputs routed to local APICs by redirection entries.</summary>
/// <remarks>Register access and input changes happen with the machine's I/O lock held (device code always is).</remarks>
public sealed class IoApic : IMmioDevice
{
    /// <summary>The default base address.</summary>
    public const ulong DefaultBase = 0xFEC0_0000;

    /// <summary>The size of the register window.</summary>
    public const ulong WindowSize = 0x1000;

    /// <summary>The number of input pins.</summary>
    public const int PinCount = 24;

    /// <summary>The version register: max redirection entry 23, version 0x20.</summary>
    public const uint Version = 0x0017_0020;

    private const ulong Masked = 1UL << 16;
    private const ulong RemoteIrr = 1UL << 14;
    private const ulong LevelTriggered = 1UL << 15;
    private const ulong WritableLow = 0x1_AFFF;

    private readonly ApicBus _bus;
    private readonly ulong[] _entries = new ulong[PinCount];
    private readonly IInterruptLine[] _pins = new IInterruptLine[PinCount];
    private uint _levels;
    private byte _select;
    private uint _id;

    internal IoApic(ApicBus bus)
    {
        _bus = bus;
        for (int i = 0; i < PinCount; i++)
        {
            _entries[i] = Masked;
            _pins[i] = new Pin(this, i);
        }
    }

    /// <summary>The input line of pin <paramref name="pin"/> (0-23).</summary>
    public IInterruptLine GetPin(int pin)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(pin);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(pin, PinCount);
        return _pins[pin];
    }

    /// <summary>Redirection entry <paramref name="pin"/> as the guest sees it (for diagnostics and tests).</summary>
    public ulong GetRedirectionEntry(int pin) => _entries[pin];

    /// <inheritdoc />
    public ulong Read(ulong offset, int size)
    {
        uint v = offset switch
        {
            0x00 => _select,
            0x10 => ReadIndirect(_select),
            _ => 0,
        };
        return size >= 4 ? v : v & ((1u << (size * 8)) - 1);
    }

    /// <inheritdoc />
    public void Write(ulong offset, int size, ulong value)
    {
        switch (offset)
        {
            case 0x00:
                _select = (byte)value;
                break;
            case 0x10 when size >= 4:
                WriteIndirect(_select, (uint)value);
                break;
            case 0x40:
                OnEoi((byte)value);
                break;
            default:
                break;
        }
    }

    /// <summary>Reads indirect register <paramref name="index"/>.</summary>
    public uint ReadIndirect(int index)
    {
        switch (index)
        {
            case 0x00:
            case 0x02:
                return _id;
            case 0x01:
                return Version;
            case >= 0x10 and < 0x10 + 2 * PinCount:
                ulong e = _entries[(index - 0x10) >> 1];
                return (index & 1) == 0 ? (uint)e : (uint)(e >> 32);
            default:
                return 0;
        }
    }

    /// <summary>Writes indirect register <paramref name="index"/>.</summary>
    public void WriteIndirect(int index, uint value)
    {
        switch (index)
        {
            case 0x00:
                _id = value & 0x0F00_0000;
                break;
            case >= 0x10 and < 0x10 + 2 * PinCount:
                int pin = (index - 0x10) >> 1;
                ulong e = _entries[pin];
                if ((index & 1) == 0)
                {
                    e = (e & ~WritableLow) | (value & WritableLow);
                    if ((e & LevelTriggered) == 0)
                    {
                        e &= ~RemoteIrr; // remote IRR is meaningless for edge-triggered pins
                    }
                }
                else
                {
                    e = (e & 0xFFFF_FFFFUL) | ((ulong)(value & 0xFF00_0000) << 32);
                }

                _entries[pin] = e;
                ServiceLevel(pin);
                break;
            default:
                break; // version and arbitration are read-only
        }
    }

    /// <summary>A local APIC ended a level-triggered interrupt with <paramref name="vector"/>.</summary>
    internal void OnEoi(int vector)
    {
        for (int pin = 0; pin < PinCount; pin++)
        {
            ulong e = _entries[pin];
            if ((e & RemoteIrr) != 0 && (int)(e & 0xFF) == vector)
            {
                _entries[pin] = e & ~RemoteIrr;
                ServiceLevel(pin);
            }
        }
    }

    private void SetPin(int pin, bool high)
    {
        uint bit = 1u << pin;
        bool was = (_levels & bit) != 0;
        _levels = high ? _levels | bit : _levels & ~bit;
        ulong e = _entries[pin];
        if ((e & LevelTriggered) != 0)
        {
            ServiceLevel(pin);
        }
        else if (high && !was && (e & Masked) == 0)
        {
            Deliver(pin);
        }
    }

    /// <summary>Delivers a level-triggered pin that is asserted, unmasked and not waiting for EOI.</summary>
    private void ServiceLevel(int pin)
    {
        ulong e = _entries[pin];
        if ((e & LevelTriggered) != 0 && (e & (Masked | RemoteIrr)) == 0 && (_levels & (1u << pin)) != 0)
        {
            Deliver(pin);
        }
    }

    private void Deliver(int pin)
    {
        ulong e = _entries[pin];
        var mode = (ApicDeliveryMode)((e >> 8) & 7);
        if (mode is not (ApicDeliveryMode.Fixed or ApicDeliveryMode.LowestPriority or ApicDeliveryMode.Nmi
            or ApicDeliveryMode.Init or ApicDeliveryMode.ExtInt))
        {
            return; // SMI and the reserved modes
        }

        bool level = (e & LevelTriggered) != 0;
        var message = new ApicMessage((byte)e, mode, (byte)(e >> 56), (e & (1UL << 11)) != 0, level);
        _bus.Send(message);
        if (level && mode is ApicDeliveryMode.Fixed or ApicDeliveryMode.LowestPriority)
        {
            _entries[pin] = e | RemoteIrr;
        }
    }

    private sealed class Pin(IoApic ioApic, int pin) : IInterruptLine
    {
        public void SetLevel(bool high) => ioApic.SetPin(pin, high);
    }
}
