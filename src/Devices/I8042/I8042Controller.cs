// Intel 8042 keyboard controller (PS/2) with a keyboard attached, as on the PC/AT. No mouse is attached (the
// auxiliary port answers its tests; bytes sent to it are dropped).
//
// Register map (register 0 = port 0x60, register 4 = port 0x64):
//   0x60 read : the output buffer (clears OBF)          0x60 write: data for the pending command, else to the keyboard
//   0x64 read : status: b0 OBF, b1 IBF, b2 SYS, b3 A2 (last write was a command), b4 not inhibited, b5 AUX OBF,
//               b6 timeout, b7 parity error
//   0x64 write: command: 0x20-0x3F read RAM (0x20 = config byte), 0x60-0x7F write RAM, 0xA7/0xA8 disable/enable aux,
//               0xA9 aux test, 0xAA self-test (0x55), 0xAB keyboard test, 0xAD/0xAE disable/enable keyboard,
//               0xC0 input port, 0xD0/0xD1 read/write output port (b0 reset line, b1 A20), 0xD2/0xD3 write keyboard/aux
//               output buffer, 0xD4 write to aux, 0xDD/0xDF A20 off/on, 0xE0 test inputs, 0xF0-0xFF pulse output
//               lines (bit 0 clear pulses reset: 0xFE resets the machine)
//   config byte: b0 keyboard IRQ 1, b1 aux IRQ 12, b2 SYS, b4 keyboard disabled, b5 aux disabled, b6 translation
// Keyboard commands: 0xFF reset (0xFA 0xAA), 0xF2 identify (0xFA 0xAB 0x83, or 0x41 when translating),
//   0xF4/0xF5 enable/disable scanning, 0xF6 defaults, 0xED LEDs, 0xF3 typematic, 0xF0 scan code set, 0xEE echo.
//
// Specification: IBM PC/AT Technical Reference ("Keyboard controller"), the IBM PS/2 Keyboard and Auxiliary Device
// Controller reference, and QEMU's i8042 for the power-on state (config 0x03, status 0x18, output port 0xCF). A reset
// ends the run with MachineStopReason.Reset (like QEMU's -no-reboot).
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Devices.Bus;

namespace Hypervisor.Devices.I8042;

/// <summary>The i8042 keyboard controller with a PS/2 keyboard, on IRQ 1 (and IRQ 12 for the absent aux device).</summary>
/// <remarks>Register access with the machine's I/O lock held; <see cref="EnqueueScanCodes"/> takes it itself.</remarks>
public sealed class I8042Controller : IByteRegisterDevice
{
    /// <summary>The data port.</summary>
    public const ushort DataPort = 0x60;

    /// <summary>The status/command port.</summary>
    public const ushort CommandPort = 0x64;

    /// <summary>The register offset of the status/command port (its distance from the data port).</summary>
    public const int CommandRegister = 4;

    private const byte StatOutputFull = 0x01, StatSystem = 0x04, StatCommand = 0x08, StatUnlocked = 0x10, StatAuxData = 0x20;
    private const byte CfgKbdInt = 0x01, CfgAuxInt = 0x02, CfgSystem = 0x04, CfgKbdDisabled = 0x10, CfgAuxDisabled = 0x20, CfgTranslate = 0x40;
    private const int QueueCapacity = 64;

    private readonly IMachineControl _control;
    private readonly A20Gate _a20;
    private readonly IInterruptLine? _irq1;
    private readonly IInterruptLine? _irq12;
    private readonly IoLock? _ioLock;
    private readonly byte[] _ram = new byte[32];
    private readonly Queue<(byte Value, bool Aux)> _pending = new();
    private byte _status = StatCommand | StatUnlocked;
    private byte _outputBuffer;
    private bool _outputIsAux;
    private byte _outport = 0xCF;
    private int _pendingCommand = -1;
    private int _keyboardPendingCommand = -1;
    private bool _irq1Level, _irq12Level;
    private long _droppedBytes;

    /// <summary>Creates the controller.</summary>
    /// <param name="control">Where a reset request goes.</param>
    /// <param name="a20">The A20 line its output port drives.</param>
    /// <param name="irq1">The keyboard interrupt line.</param>
    /// <param name="irq12">The auxiliary (mouse) interrupt line.</param>
    /// <param name="ioLock">The machine's I/O lock, taken by <see cref="EnqueueScanCodes"/>; null if the caller serialises.</param>
    public I8042Controller(IMachineControl control, A20Gate a20, IInterruptLine? irq1 = null, IInterruptLine? irq12 = null, IoLock? ioLock = null)
    {
        _control = control ?? throw new ArgumentNullException(nameof(control));
        _a20 = a20 ?? throw new ArgumentNullException(nameof(a20));
        _irq1 = irq1;
        _irq12 = irq12;
        _ioLock = ioLock;
        _ram[0] = CfgKbdInt | CfgAuxInt;
    }

    /// <summary>The configuration ("command") byte.</summary>
    public byte ConfigByte => _ram[0];

    /// <summary>The A20 line this controller drives.</summary>
    public A20Gate A20 => _a20;

    /// <summary>True while the keyboard is scanning (enabled by 0xF4 or reset, disabled by 0xF5).</summary>
    public bool KeyboardScanning { get; private set; } = true;

    /// <summary>Bytes dropped because the controller's bounded queue was full.</summary>
    public long DroppedBytes => _droppedBytes;

    /// <summary>Queues scan codes from the host keyboard (thread-safe: takes the I/O lock).</summary>
    public void EnqueueScanCodes(ReadOnlySpan<byte> codes)
    {
        if (_ioLock is null)
        {
            Enqueue(codes);
            return;
        }

        lock (_ioLock.Sync)
        {
            Enqueue(codes);
        }

        void Enqueue(ReadOnlySpan<byte> bytes)
        {
            if (!KeyboardScanning)
            {
                return;
            }

            foreach (byte b in bytes)
            {
                Queue(b, aux: false);
            }
        }
    }

    /// <inheritdoc />
    public byte ReadRegister(int offset)
    {
        if (offset == CommandRegister)
        {
            return _status;
        }

        if (offset != 0)
        {
            return 0xFF;
        }

        byte value = _outputBuffer;
        _status &= unchecked((byte)~(StatOutputFull | StatAuxData));
        UpdateIrq(); // drop the line so that the next byte makes a new edge
        LoadOutputBuffer();
        return value;
    }

    /// <inheritdoc />
    public void WriteRegister(int offset, byte value)
    {
        if (offset == CommandRegister)
        {
            _status |= StatCommand;
            Command(value);
        }
        else if (offset == 0)
        {
            _status &= unchecked((byte)~StatCommand);
            Data(value);
        }
    }

    private void Command(byte command)
    {
        _pendingCommand = -1;
        switch (command)
        {
            case >= 0x20 and <= 0x3F:
                Reply(_ram[command & 0x1F]);
                break;
            case >= 0x60 and <= 0x7F:
            case 0xD1:
            case 0xD2:
            case 0xD3:
            case 0xD4:
                _pendingCommand = command;
                break;
            case 0xA7:
                _ram[0] |= CfgAuxDisabled;
                break;
            case 0xA8:
                _ram[0] &= unchecked((byte)~CfgAuxDisabled);
                break;
            case 0xA9:
            case 0xAB:
                Reply(0x00); // interface test passed
                break;
            case 0xAA:
                _status |= StatSystem;
                Reply(0x55);
                break;
            case 0xAD:
                _ram[0] |= CfgKbdDisabled;
                break;
            case 0xAE:
                _ram[0] &= unchecked((byte)~CfgKbdDisabled);
                LoadOutputBuffer();
                break;
            case 0xC0:
                Reply(0x80); // input port: keyboard not inhibited
                break;
            case 0xD0:
                {
                    byte v = _outport;
                    v = (byte)((v & ~0x30) | ((_status & StatOutputFull) != 0 ? (_outputIsAux ? 0x20 : 0x10) : 0));
                    v = (byte)((v & ~0x02) | (_a20.Enabled ? 0x02 : 0));
                    Reply(v);
                    break;
                }

            case 0xDD:
                _a20.Set(false);
                break;
            case 0xDF:
                _a20.Set(true);
                break;
            case 0xE0:
                Reply(0x00);
                break;
            case >= 0xF0:
                if ((command & 0x01) == 0)
                {
                    RequestReset("i8042 command 0x" + command.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
                }

                break;
        }

        UpdateIrq();
    }

    private void Data(byte value)
    {
        int command = _pendingCommand;
        _pendingCommand = -1;
        switch (command)
        {
            case >= 0x60 and <= 0x7F:
                _ram[command & 0x1F] = value;
                if (command == 0x60)
                {
                    _status = (byte)((_status & ~StatSystem) | (value & CfgSystem));
                    LoadOutputBuffer();
                }

                break;
            case 0xD1:
                WriteOutputPort(value);
                break;
            case 0xD2:
                Queue(value, aux: false);
                break;
            case 0xD3:
                Queue(value, aux: true);
                break;
            case 0xD4:
                break; // no auxiliary device attached
            default:
                Keyboard(value);
                break;
        }

        UpdateIrq();
    }

    private void WriteOutputPort(byte value)
    {
        _outport = value;
        _a20.Set((value & 0x02) != 0);
        if ((value & 0x01) == 0)
        {
            RequestReset("i8042 output port reset line");
        }
    }

    private void RequestReset(string detail) =>
        _control.RequestStop(MachineStopReason.Reset, MachineRunResult.StatusFor(MachineStopReason.Reset), detail);

    private void Keyboard(byte value)
    {
        int pending = _keyboardPendingCommand;
        _keyboardPendingCommand = -1;
        if (pending >= 0)
        {
            // The parameter byte of 0xED, 0xF3 or 0xF0.
            Queue(0xFA, aux: false);
            if (pending == 0xF0 && value == 0)
            {
                Queue(0x02, aux: false); // scan code set 2
            }

            return;
        }

        switch (value)
        {
            case 0xFF:
                _pending.Clear();
                KeyboardScanning = true;
                Queue(0xFA, aux: false);
                Queue(0xAA, aux: false);
                break;
            case 0xF2:
                Queue(0xFA, aux: false);
                Queue(0xAB, aux: false);
                Queue((_ram[0] & CfgTranslate) != 0 ? (byte)0x41 : (byte)0x83, aux: false);
                break;
            case 0xF4:
                KeyboardScanning = true;
                Queue(0xFA, aux: false);
                break;
            case 0xF5:
                KeyboardScanning = false;
                Queue(0xFA, aux: false);
                break;
            case 0xF6:
                Queue(0xFA, aux: false);
                break;
            case 0xED:
            case 0xF3:
            case 0xF0:
                _keyboardPendingCommand = value;
                Queue(0xFA, aux: false);
                break;
            case 0xEE:
                Queue(0xEE, aux: false);
                break;
            default:
                Queue(0xFE, aux: false); // resend: not understood
                break;
        }
    }

    /// <summary>A controller reply goes straight to the output buffer, ahead of device data.</summary>
    private void Reply(byte value)
    {
        _outputBuffer = value;
        _outputIsAux = false;
        _status = (byte)((_status | StatOutputFull) & ~StatAuxData);
        UpdateIrq();
    }

    private void Queue(byte value, bool aux)
    {
        if (_pending.Count >= QueueCapacity)
        {
            _droppedBytes++;
            return;
        }

        _pending.Enqueue((value, aux));
        LoadOutputBuffer();
    }

    private void LoadOutputBuffer()
    {
        if ((_status & StatOutputFull) == 0 && _pending.Count > 0)
        {
            (byte value, bool aux) = _pending.Peek();
            if (!aux && (_ram[0] & CfgKbdDisabled) != 0)
            {
                UpdateIrq();
                return;
            }

            _pending.Dequeue();
            _outputBuffer = value;
            _outputIsAux = aux;
            _status |= StatOutputFull;
            if (aux)
            {
                _status |= StatAuxData;
            }
        }

        UpdateIrq();
    }

    private void UpdateIrq()
    {
        bool full = (_status & StatOutputFull) != 0;
        bool irq1 = full && !_outputIsAux && (_ram[0] & CfgKbdInt) != 0;
        bool irq12 = full && _outputIsAux && (_ram[0] & CfgAuxInt) != 0;
        if (irq1 != _irq1Level)
        {
            _irq1Level = irq1;
            _irq1?.SetLevel(irq1);
        }

        if (irq12 != _irq12Level)
        {
            _irq12Level = irq12;
            _irq12?.SetLevel(irq12);
        }
    }
}
