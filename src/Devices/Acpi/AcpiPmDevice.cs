// ACPI fixed-hardware power management: the PM1a event and control blocks (ACPI 6.5, 4.8.3 "PM1 Event Grouping" and
// 4.8.3.2 "PM1 Control Registers"). Port layout (QEMU's PIIX4 PM base is 0x600 too):
//
//   base+0  PM1a_STS (16, write 1 to clear)   bit 0 TMR_STS, 5 GBL_STS, 8 PWRBTN_STS, 10 RTC_STS, 15 WAK_STS
//   base+2  PM1a_EN  (16)                     enable bits, same positions
//   base+4  PM1a_CNT (16)                     bit 0 SCI_EN (reads 1: the machine is always in ACPI mode, since the
//                                             FADT has no SMI_CMD), bits 10-12 SLP_TYP, bit 13 SLP_EN (write-only)
//   base+8  PM_TMR   (32, read-only)          the power management timer, 3.579545 MHz, 32 bits wide (FADT flag
//                                             TMR_VAL_EXT; ACPI 6.5, 4.8.3.3), from the machine clock
//
// Writing PM1a_CNT with SLP_EN set and SLP_TYP equal to the \_S5 value of our DSDT (AcpiTables.S5SleepType) powers the
// machine off: the run ends with MachineStopReason.PowerOff, as a shutdown ends QEMU. No SCI is ever raised: nothing
// here generates events (no power button, no PM timer overflow).
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Timing;

namespace Hypervisor.Devices.Acpi;

/// <summary>The PM1a event and control registers; entering S5 powers the machine off.</summary>
/// <remarks>Port access happens with the machine's I/O lock held.</remarks>
public sealed class AcpiPmDevice : IPortDevice
{
    /// <summary>The default base port of the PM1a blocks.</summary>
    public const ushort DefaultPort = 0x600;

    /// <summary>Ports spanned: 4 event bytes, 2 control bytes, 2 unused, 4 timer bytes.</summary>
    public const int PortCount = 12;

    /// <summary>Offset of PM1a_STS.</summary>
    public const int StatusOffset = 0;

    /// <summary>Offset of PM1a_EN.</summary>
    public const int EnableOffset = 2;

    /// <summary>Offset of PM1a_CNT.</summary>
    public const int ControlOffset = 4;

    /// <summary>Offset of PM_TMR.</summary>
    public const int TimerOffset = 8;

    /// <summary>The PM timer's frequency in Hz (ACPI 6.5, 4.8.3.3).</summary>
    public const long TimerFrequency = 3_579_545;

    /// <summary>PM1_CNT.SCI_EN.</summary>
    public const ushort SciEnable = 1 << 0;

    /// <summary>PM1_CNT.SLP_EN.</summary>
    public const ushort SleepEnable = 1 << 13;

    private const int SleepTypeShift = 10;
    private const ushort SleepTypeMask = 7 << SleepTypeShift;

    private readonly IMachineControl _control;
    private readonly IMachineClock _clock;
    private readonly byte _s5SleepType;
    private ushort _status;
    private ushort _enable;
    private ushort _controlBits = SciEnable;

    /// <summary>
    /// Creates the device; S5 (<paramref name="s5SleepType"/> in SLP_TYP) stops the machine through
    /// <paramref name="control"/>; the PM timer counts <paramref name="clock"/>'s time.
    /// </summary>
    public AcpiPmDevice(IMachineControl control, IMachineClock clock, byte s5SleepType = AcpiTables.S5SleepType)
    {
        _control = control ?? throw new ArgumentNullException(nameof(control));
        _clock = clock ?? throw new ArgumentNullException(nameof(clock));
        if (s5SleepType > 7)
        {
            throw new ArgumentOutOfRangeException(nameof(s5SleepType), s5SleepType, "SLP_TYP is a 3-bit field.");
        }

        _s5SleepType = s5SleepType;
    }

    /// <summary>Sleep requests (SLP_EN writes) of a type other than S5, which are ignored; counted for tests and logs.</summary>
    public int IgnoredSleepRequests { get; private set; }

    /// <summary>True once the guest entered S5.</summary>
    public bool PoweredOff { get; private set; }

    /// <inheritdoc />
    public uint Read(ushort offset, int size)
    {
        if (offset >= TimerOffset)
        {
            uint timer = TimerValue;
            int shift = 8 * (offset - TimerOffset);
            return size >= 4 && shift == 0 ? timer : (uint)((timer >> shift) & ((1UL << (8 * size)) - 1));
        }

        uint value = 0;
        for (int i = 0; i < size; i++)
        {
            value |= (uint)ReadByte(offset + i) << (8 * i);
        }

        return value;
    }

    /// <inheritdoc />
    public void Write(ushort offset, int size, uint value)
    {
        // Assemble whole 16-bit registers so that a 16-bit PM1_CNT write acts once, with SLP_TYP and SLP_EN together.
        int end = offset + size;
        for (int register = offset & ~1; register < end; register += 2)
        {
            ushort mask = 0, bits = 0;
            for (int b = 0; b < 2; b++)
            {
                int port = register + b;
                if (port >= offset && port < end)
                {
                    mask |= (ushort)(0xFF << (8 * b));
                    bits |= (ushort)(((value >> (8 * (port - offset))) & 0xFF) << (8 * b));
                }
            }

            WriteRegister(register, mask, bits);
        }
    }

    /// <summary>The PM timer's current count: machine time in ticks of 3.579545 MHz, modulo 2^32.</summary>
    public uint TimerValue => (uint)((Int128)_clock.NowNanoseconds * TimerFrequency / 1_000_000_000);

    private byte ReadByte(int port)
    {
        ushort register = (port & ~1) switch
        {
            StatusOffset => _status,
            EnableOffset => _enable,
            ControlOffset => (ushort)(_controlBits & ~SleepEnable),
            _ => 0xFFFF,
        };
        return (byte)(register >> (8 * (port & 1)));
    }

    private void WriteRegister(int register, ushort mask, ushort bits)
    {
        switch (register)
        {
            case StatusOffset:
                _status &= (ushort)~(bits & mask);
                break;
            case EnableOffset:
                _enable = (ushort)((_enable & ~mask) | (bits & mask));
                break;
            case ControlOffset:
                _controlBits = (ushort)((_controlBits & ~mask) | (bits & mask) | SciEnable);
                if ((_controlBits & SleepEnable) != 0)
                {
                    _controlBits &= unchecked((ushort)~SleepEnable);
                    int type = (_controlBits & SleepTypeMask) >> SleepTypeShift;
                    if (type == _s5SleepType)
                    {
                        PoweredOff = true;
                        _control.RequestStop(MachineStopReason.PowerOff, MachineRunResult.StatusFor(MachineStopReason.PowerOff),
                            "ACPI: the guest entered S5 (soft off) through PM1a_CNT");
                    }
                    else
                    {
                        IgnoredSleepRequests++;
                    }
                }

                break;
        }
    }
}
