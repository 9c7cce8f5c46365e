// 16550A UART (National Semiconductor PC16550D), the PC's serial port.
//
// Register map (offset from the base port; DLAB = LCR bit 7):
//   0  read: RBR receive buffer (DLAB=0)      write: THR transmit holding (DLAB=0)     DLL divisor low (DLAB=1)
//   1  IER interrupt enable (DLAB=0): b0 received data, b1 THR empty, b2 line status, b3 modem status;  DLM (DLAB=1)
//   2  read: IIR interrupt identification     write: FCR FIFO control (b0 enable, b1/b2 clear RX/TX, b7-6 RX trigger)
//   3  LCR line control (word length, stop, parity, break, b7 DLAB)
//   4  MCR modem control: b0 DTR, b1 RTS, b2 OUT1, b3 OUT2, b4 loopback
//   5  LSR line status: b0 DR, b1 OE, b2 PE, b3 FE, b4 BI, b5 THRE, b6 TEMT, b7 error in RX FIFO
//   6  MSR modem status: b0 dCTS, b1 dDSR, b2 TERI, b3 dDCD, b4 CTS, b5 DSR, b6 RI, b7 DCD
//   7  SCR scratch
//
// Interrupts, highest priority first (IIR bits 3-1): line status 011 (cleared by reading LSR); received data 010 at
// the trigger level, or character timeout 110 (cleared by reading RBR); THR empty 001 (cleared by reading IIR when it
// is the reason, or by writing THR); modem status 000 (cleared by reading MSR). IIR b0 is 0 while one is pending;
// b7-6 are 11 with FIFOs on.
//
// Specification: PC16550D data sheet (National Semiconductor / TI SNLS378). Deviations, chosen to match QEMU's serial
// device: transmission is instantaneous (THR and the transmitter are empty again as soon as a byte is written, so THRE
// and TEMT stay set); the character timeout is signalled as soon as the receive FIFO holds data below its trigger level
// and the host has nothing more queued; the IRQ output is not gated by MCR OUT2; without loopback the modem inputs
// read as CTS, DSR and DCD asserted; MCR resets to 0x08 (OUT2), as QEMU's does.
using Hypervisor.Core.Io;
using Hypervisor.Devices.Bus;

namespace Hypervisor.Devices.Uart;

/// <summary>
/// A 16550A UART. The guest side is eight byte registers (<see cref="IByteRegisterDevice"/>); the host side is an
/// output stream that receives every transmitted byte immediately and a bounded input queue the host fills with
/// <see cref="EnqueueInput"/>.
/// </summary>
/// <remarks>
/// Register access happens with the machine's I/O lock held (the bus takes it). <see cref="EnqueueInput"/> and the
/// counters may be used from any host thread: they take the I/O lock themselves.
/// </remarks>
public sealed class Uart16550 : IByteRegisterDevice
{
    /// <summary>COM1's base port.</summary>
    public const ushort Com1Port = 0x3F8;

    /// <summary>COM2's base port.</summary>
    public const ushort Com2Port = 0x2F8;

    /// <summary>COM3's base port.</summary>
    public const ushort Com3Port = 0x3E8;

    /// <summary>COM4's base port.</summary>
    public const ushort Com4Port = 0x2E8;

    /// <summary>The number of ports a UART spans.</summary>
    public const int PortCount = 8;

    /// <summary>The default capacity of the host input queue.</summary>
    public const int DefaultInputCapacity = 4096;

    private const int FifoSize = 16;

    private const byte IerRda = 0x01, IerThre = 0x02, IerRls = 0x04, IerMsi = 0x08;
    private const byte LsrDr = 0x01, LsrOe = 0x02, LsrPe = 0x04, LsrFe = 0x08, LsrBi = 0x10, LsrThre = 0x20, LsrTemt = 0x40, LsrFifoErr = 0x80;
    private const byte LsrErrors = LsrOe | LsrPe | LsrFe | LsrBi;
    private const byte McrDtr = 0x01, McrRts = 0x02, McrOut1 = 0x04, McrOut2 = 0x08, McrLoop = 0x10;
    private const byte MsrDcts = 0x01, MsrDdsr = 0x02, MsrTeri = 0x04, MsrDdcd = 0x08, MsrCts = 0x10, MsrDsr = 0x20, MsrRi = 0x40, MsrDcd = 0x80;
    private const byte MsrDeltas = MsrDcts | MsrDdsr | MsrTeri | MsrDdcd;

    /// <summary>Modem inputs without loopback: CTS, DSR and DCD asserted, as QEMU's serial reports them.</summary>
    private const byte HostModemLines = MsrCts | MsrDsr | MsrDcd;

    private readonly IInterruptLine _irq;
    private readonly IoLock? _ioLock;
    private readonly HostOutput _output;
    private readonly ByteRing _input;
    private readonly ByteRing _rxFifo = new(FifoSize);

    private byte _ier, _lcr, _mcr, _lsr, _msr, _scr, _fcr, _dll, _dlm, _rbr;
    private bool _thrInterruptPending;
    private bool _irqLevel;
    private long _inputDropped;

    /// <summary>Creates a UART raising <paramref name="irq"/>, writing transmitted bytes to <paramref name="output"/>.</summary>
    /// <param name="irq">The interrupt line (IRQ 4 for COM1).</param>
    /// <param name="output">Where transmitted bytes go; null to discard them.</param>
    /// <param name="ioLock">The machine's I/O lock, taken by the host-side methods; null if the caller serialises access itself.</param>
    /// <param name="inputCapacity">The capacity of the host input queue in bytes.</param>
    public Uart16550(IInterruptLine irq, Stream? output = null, IoLock? ioLock = null, int inputCapacity = DefaultInputCapacity)
    {
        _irq = irq ?? throw new ArgumentNullException(nameof(irq));
        _ioLock = ioLock;
        _output = new HostOutput(output);
        _input = new ByteRing(inputCapacity);
        Reset();
    }

    /// <summary>The host stream transmitted bytes are written to, or null.</summary>
    public Stream? Output => _output.Stream;

    /// <summary>Bytes the guest transmitted (loopback excluded).</summary>
    public long BytesTransmitted { get; private set; }

    /// <summary>Host input bytes dropped because the input queue was full.</summary>
    public long InputBytesDropped => Locked(() => _inputDropped);

    /// <summary>Host input bytes waiting (in the input queue and the receive FIFO).</summary>
    public int PendingInputCount => Locked(() => _input.Count + _rxFifo.Count);

    /// <summary>The capacity of the host input queue.</summary>
    public int InputCapacity => _input.Capacity;

    /// <summary>The divisor latch (DLM:DLL); the baud rate is 115200 / divisor.</summary>
    public int Divisor => (_dlm << 8) | _dll;

    /// <summary>True while the UART drives its interrupt line high.</summary>
    public bool InterruptAsserted => _irqLevel;

    /// <summary>
    /// Queues bytes from the host for the guest to receive. Bytes that do not fit in the bounded queue are dropped
    /// and counted (<see cref="InputBytesDropped"/>).
    /// </summary>
    /// <returns>The number of bytes accepted.</returns>
    /// <remarks>Thread-safe: takes the machine's I/O lock.</remarks>
    public int EnqueueInput(ReadOnlySpan<byte> data)
    {
        if (_ioLock is null)
        {
            return EnqueueInputLocked(data);
        }

        lock (_ioLock.Sync)
        {
            return EnqueueInputLocked(data);
        }
    }

    /// <summary>
    /// Copies <paramref name="input"/> to the guest until it ends or <paramref name="cancellationToken"/> is cancelled,
    /// waiting (rather than dropping bytes) while the input queue is full.
    /// </summary>
    public async Task PumpInputAsync(Stream input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        byte[] buffer = new byte[256];
        while (true)
        {
            int n = await input.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return;
            }

            int offset = 0;
            while (offset < n)
            {
                int room = Locked(() => _input.Capacity - _input.Count);
                if (room == 0)
                {
                    await Task.Delay(1, cancellationToken).ConfigureAwait(false);
                    continue;
                }

                offset += EnqueueInput(buffer.AsSpan(offset, Math.Min(room, n - offset)));
            }
        }
    }

    /// <summary>Returns every register to its power-on value and empties the FIFOs (the host queue is kept).</summary>
    public void Reset()
    {
        _ier = 0;
        _lcr = 0;
        _mcr = McrOut2; // QEMU's serial resets with OUT2 set (read back as MCR = 0x08)
        _scr = 0;
        _fcr = 0;
        _dll = 0;
        _dlm = 0;
        _rbr = 0;
        _lsr = LsrThre | LsrTemt;
        _msr = HostModemLines;
        _thrInterruptPending = false;
        _rxFifo.Clear();
        Refill();
        UpdateInterrupt();
    }

    /// <inheritdoc />
    public byte ReadRegister(int offset)
    {
        bool dlab = (_lcr & 0x80) != 0;
        switch (offset)
        {
            case 0:
                return dlab ? _dll : ReadRbr();
            case 1:
                return dlab ? _dlm : _ier;
            case 2:
                {
                    byte iir = ComputeIir();
                    if ((iir & 0x0F) == 0x02)
                    {
                        _thrInterruptPending = false;
                        UpdateInterrupt();
                    }

                    return iir;
                }

            case 3:
                return _lcr;
            case 4:
                return _mcr;
            case 5:
                {
                    byte lsr = ComputeLsr();
                    _lsr &= unchecked((byte)~LsrErrors);
                    UpdateInterrupt();
                    return lsr;
                }

            case 6:
                {
                    byte msr = _msr;
                    _msr &= unchecked((byte)~MsrDeltas);
                    UpdateInterrupt();
                    return msr;
                }

            case 7:
                return _scr;
            default:
                return 0xFF;
        }
    }

    /// <inheritdoc />
    public void WriteRegister(int offset, byte value)
    {
        bool dlab = (_lcr & 0x80) != 0;
        switch (offset)
        {
            case 0:
                if (dlab)
                {
                    _dll = value;
                }
                else
                {
                    Transmit(value);
                }

                break;
            case 1:
                if (dlab)
                {
                    _dlm = value;
                }
                else
                {
                    byte old = _ier;
                    _ier = (byte)(value & 0x0F);
                    // Enabling the THRE interrupt while the holding register is empty raises it at once (PC16550D, IER).
                    if ((_ier & IerThre) != 0 && (old & IerThre) == 0)
                    {
                        _thrInterruptPending = true;
                    }

                    UpdateInterrupt();
                }

                break;
            case 2:
                WriteFcr(value);
                break;
            case 3:
                _lcr = value;
                break;
            case 4:
                WriteMcr(value);
                break;
            case 5:
            case 6:
                // LSR and MSR are read-only in practice (the data sheet reserves writes for factory test).
                break;
            case 7:
                _scr = value;
                break;
        }
    }

    private byte ReadRbr()
    {
        if (!_rxFifo.IsEmpty)
        {
            _rbr = _rxFifo.Dequeue();
        }

        Refill();
        UpdateInterrupt();
        return _rbr;
    }

    private void Transmit(byte value)
    {
        if ((_mcr & McrLoop) != 0)
        {
            Receive(value);
        }
        else
        {
            BytesTransmitted++;
            _output.Write(value, flush: true);
        }

        // The byte leaves at once, so the holding register is empty again and THRE is signalled anew.
        _thrInterruptPending = true;
        UpdateInterrupt();
    }

    /// <summary>A byte arrives at the receiver (loopback); with the receiver full, it is lost and OE is set.</summary>
    private void Receive(byte value)
    {
        if (_rxFifo.Count >= RxCapacity)
        {
            _lsr |= LsrOe;
        }
        else
        {
            _rxFifo.TryEnqueue(value);
        }

        UpdateInterrupt();
    }

    private int RxCapacity => FifoEnabled ? FifoSize : 1;

    private bool FifoEnabled => (_fcr & 0x01) != 0;

    private int TriggerLevel => (_fcr >> 6) switch
    {
        0 => 1,
        1 => 4,
        2 => 8,
        _ => 14,
    };

    private void WriteFcr(byte value)
    {
        bool wasEnabled = FifoEnabled;
        bool enable = (value & 0x01) != 0;
        if (enable != wasEnabled || (value & 0x02) != 0)
        {
            // Changing the FIFO enable resets both FIFOs (PC16550D, FCR bit 0).
            _rxFifo.Clear();
            _lsr &= unchecked((byte)~(LsrDr | LsrFifoErr));
        }

        _fcr = (byte)(value & 0xC9);
        if (!enable)
        {
            _fcr = 0;
        }

        Refill();
        UpdateInterrupt();
    }

    private void WriteMcr(byte value)
    {
        byte before = ModemInputs();
        _mcr = (byte)(value & 0x1F);
        byte after = ModemInputs();
        byte changed = (byte)(before ^ after);
        if ((changed & MsrCts) != 0) _msr |= MsrDcts;
        if ((changed & MsrDsr) != 0) _msr |= MsrDdsr;
        if ((changed & MsrDcd) != 0) _msr |= MsrDdcd;
        if ((before & MsrRi) != 0 && (after & MsrRi) == 0) _msr |= MsrTeri; // trailing edge of RI
        _msr = (byte)((_msr & MsrDeltas) | after);
        Refill();
        UpdateInterrupt();
    }

    /// <summary>The modem input lines: in loopback RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD; otherwise the host's.</summary>
    private byte ModemInputs()
    {
        if ((_mcr & McrLoop) == 0)
        {
            return HostModemLines;
        }

        byte v = 0;
        if ((_mcr & McrRts) != 0) v |= MsrCts;
        if ((_mcr & McrDtr) != 0) v |= MsrDsr;
        if ((_mcr & McrOut1) != 0) v |= MsrRi;
        if ((_mcr & McrOut2) != 0) v |= MsrDcd;
        return v;
    }

    private int EnqueueInputLocked(ReadOnlySpan<byte> data)
    {
        int accepted = 0;
        foreach (byte b in data)
        {
            if (_input.TryEnqueue(b))
            {
                accepted++;
            }
            else
            {
                _inputDropped++;
            }
        }

        Refill();
        UpdateInterrupt();
        return accepted;
    }

    /// <summary>Moves host input into the receiver while it has room (not in loopback: the line is disconnected).</summary>
    private void Refill()
    {
        if ((_mcr & McrLoop) != 0)
        {
            return;
        }

        while (!_input.IsEmpty && _rxFifo.Count < RxCapacity)
        {
            _rxFifo.TryEnqueue(_input.Dequeue());
        }
    }

    private byte ComputeLsr()
    {
        byte lsr = (byte)(_lsr | LsrThre | LsrTemt);
        if (!_rxFifo.IsEmpty)
        {
            lsr |= LsrDr;
        }
        else
        {
            lsr &= unchecked((byte)~LsrDr);
        }

        if (FifoEnabled && (lsr & LsrErrors) != 0)
        {
            lsr |= LsrFifoErr;
        }

        return lsr;
    }

    private byte ComputeIir()
    {
        byte fifoBits = FifoEnabled ? (byte)0xC0 : (byte)0;
        return (byte)(fifoBits | PendingSource());
    }

    /// <summary>The IIR low nibble of the highest-priority pending interrupt, or 1 for none.</summary>
    private byte PendingSource()
    {
        if ((_ier & IerRls) != 0 && (_lsr & LsrErrors) != 0)
        {
            return 0x06;
        }

        if ((_ier & IerRda) != 0 && !_rxFifo.IsEmpty)
        {
            if (!FifoEnabled || _rxFifo.Count >= TriggerLevel)
            {
                return 0x04;
            }

            if (_input.IsEmpty || (_mcr & McrLoop) != 0)
            {
                return 0x0C;
            }
        }

        if ((_ier & IerThre) != 0 && _thrInterruptPending)
        {
            return 0x02;
        }

        if ((_ier & IerMsi) != 0 && (_msr & MsrDeltas) != 0)
        {
            return 0x00;
        }

        return 0x01;
    }

    private void UpdateInterrupt()
    {
        bool level = PendingSource() != 0x01;
        if (level != _irqLevel)
        {
            _irqLevel = level;
            _irq.SetLevel(level);
        }
    }

    private T Locked<T>(Func<T> read)
    {
        if (_ioLock is null)
        {
            return read();
        }

        lock (_ioLock.Sync)
        {
            return read();
        }
    }
}
