// The PC's coprocessor-error logic: FERR# from the CPU to IRQ 13, cleared by a write to port 0xF0.
//
// Behaviour (IBM PC/AT compatible boards; SDM Vol. 1, Appendix D "Guidelines for writing x87 FPU exception handlers"):
//   FERR# rising  : the CPU signals an unmasked x87 exception at a waiting instruction while CR0.NE is clear; unless
//                   IGNNE# is already asserted, the board latches it and raises IRQ 13 (slave 8259 input 5).
//   port 0xF0 write: the handler acknowledges; the board drops IRQ 13 and asserts IGNNE# (the value is ignored).
//   FERR# falling : the exception was cleared (FNCLEX/FNINIT...); the board releases IGNNE#, so the next exception
//                   raises IRQ 13 again.
//   port 0xF0 read : 0xFF (nothing drives the bus; QEMU's PC answers the same).
using Hypervisor.Core.Io;
using Hypervisor.Devices.Bus;

namespace Hypervisor.Devices.Ferr;

/// <summary>
/// The PC board's FERR# latch: turns the CPU's x87 error output into IRQ 13 and clears it on a write to port 0xF0.
/// Hand it to the machine as <see cref="Core.Machine.VirtualMachineBuilder.FpuErrorLine"/>.
/// </summary>
public sealed class FerrLatch : IInterruptLine, IByteRegisterDevice
{
    /// <summary>The port whose write acknowledges the error (and asserts IGNNE#).</summary>
    public const ushort Port = 0xF0;

    /// <summary>The ISA IRQ the latch drives.</summary>
    public const int Irq = 13;

    private readonly IInterruptLine _irq;
    private readonly IoLock _ioLock;
    private bool _ferr;
    private bool _ignne;
    private bool _latched;

    /// <summary>Creates the latch driving <paramref name="irq13"/>.</summary>
    /// <param name="irq13">The interrupt controller input (IRQ 13).</param>
    /// <param name="ioLock">The machine's I/O lock, taken when the CPU drives FERR#.</param>
    public FerrLatch(IInterruptLine irq13, IoLock ioLock)
    {
        ArgumentNullException.ThrowIfNull(irq13);
        ArgumentNullException.ThrowIfNull(ioLock);
        _irq = irq13;
        _ioLock = ioLock;
    }

    /// <summary>True while IRQ 13 is raised and not yet acknowledged through port 0xF0.</summary>
    public bool IrqRaised
    {
        get
        {
            lock (_ioLock.Sync)
            {
                return _latched;
            }
        }
    }

    /// <summary>How many times the latch raised IRQ 13.</summary>
    public long RaiseCount { get; private set; }

    /// <summary>FERR# from the CPU.</summary>
    /// <param name="high">True: an unmasked x87 exception is pending.</param>
    public void SetLevel(bool high)
    {
        lock (_ioLock.Sync)
        {
            if (high && !_ferr && !_ignne && !_latched)
            {
                _latched = true;
                RaiseCount++;
                _irq.SetLevel(true);
            }

            if (!high)
            {
                _ignne = false;
            }

            _ferr = high;
        }
    }

    /// <inheritdoc />
    public byte ReadRegister(int offset) => 0xFF;

    /// <inheritdoc />
    public void WriteRegister(int offset, byte value)
    {
        if (offset != 0)
        {
            return;
        }

        if (_latched)
        {
            _latched = false;
            _irq.SetLevel(false);
        }

        _ignne = _ferr;
    }
}
