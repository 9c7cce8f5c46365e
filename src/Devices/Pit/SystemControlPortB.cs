// Port 0x61, "system control port B" of the PC/AT: the PIT counter 2 gate and speaker enable, plus status bits.
//
// Register map (1 port):
//   b0 (r/w) timer 2 gate        b1 (r/w) speaker data enable     b2, b3 (r/w) parity/channel check enables (kept)
//   b4 (r)   refresh request toggle, flipping every 15.085 us     b5 (r) timer 2 output       b6, b7 (r) 0 (no NMI sources)
//
// Specification: IBM PC/AT Technical Reference, "System control port B" (port 61h); the refresh toggle period is the
// AT's DRAM refresh interval (PIT counter 1 programmed to 18 → 15.085 us). The speaker itself makes no sound here.
using Hypervisor.Core.Timing;
using Hypervisor.Devices.Bus;

namespace Hypervisor.Devices.Pit;

/// <summary>Port 0x61: PIT counter 2 gate, speaker enable, counter 2 output and the refresh toggle.</summary>
public sealed class SystemControlPortB : IByteRegisterDevice
{
    /// <summary>The port.</summary>
    public const ushort Port = 0x61;

    /// <summary>The refresh toggle's half period in nanoseconds.</summary>
    public const long RefreshToggleNanoseconds = 15_085;

    private readonly Pit8254 _pit;
    private readonly IMachineClock _clock;
    private byte _latch;

    internal SystemControlPortB(Pit8254 pit, IMachineClock clock)
    {
        _pit = pit;
        _clock = clock;
    }

    /// <summary>True when the guest enabled the speaker data (bit 1).</summary>
    public bool SpeakerEnabled => (_latch & 0x02) != 0;

    /// <inheritdoc />
    public byte ReadRegister(int offset)
    {
        int value = _latch & 0x0F;
        if (_clock.NowNanoseconds / RefreshToggleNanoseconds % 2 == 1)
        {
            value |= 0x10;
        }

        if (_pit.GetOutput(2))
        {
            value |= 0x20;
        }

        return (byte)value;
    }

    /// <inheritdoc />
    public void WriteRegister(int offset, byte value)
    {
        _latch = (byte)(value & 0x0F);
        _pit.SetGate(2, (value & 0x01) != 0);
    }
}
