// The local APIC of one vCPU in xAPIC mode (Intel SDM Vol. 3A, chapter 11 "Advanced Programmable Interrupt Controller";
// chapter 10 in editions before 2023), version 0x50014 like QEMU's: version 0x14 (integrated APIC), six LVT entries
// (max LVT entry 5: timer, thermal, performance, LINT0, LINT1, error), no TSC-deadline timer, no x2APIC, no directed
// EOI. The 4 KiB register page sits at IA32_APIC_BASE (default 0xFEE00000); registers are 32 bits on 16-byte boundaries.
//
//   0x020 ID (31:24)            0x030 version (RO)          0x080 TPR                 0x090 APR (RO)
//   0x0A0 PPR (RO)              0x0B0 EOI (WO)              0x0C0 RRD (RO, 0)         0x0D0 LDR (31:24)
//   0x0E0 DFR (31:28)           0x0F0 SVR                   0x100-0x170 ISR (RO)      0x180-0x1F0 TMR (RO)
//   0x200-0x270 IRR (RO)        0x280 ESR                   0x300 ICR low             0x310 ICR high (31:24)
//   0x320 LVT timer             0x330 LVT thermal           0x340 LVT performance     0x350 LVT LINT0
//   0x360 LVT LINT1             0x370 LVT error             0x380 timer initial count 0x390 timer current count (RO)
//   0x3E0 timer divide configuration
//
// Priorities (11.8.3.1): PPR = TPR if TPR[7:4] >= ISRV[7:4], else ISRV[7:4] << 4; the highest IRR vector is dispatched
// when its class is above PPR[7:4]. APR follows the P6 rule (11.6.2.4). EOI clears the highest ISR bit and, if that
// vector was level-triggered (TMR), sends the EOI message to the I/O APIC (11.8.5). The timer counts bus clocks at
// 1 GHz divided by the divide configuration (11.5.4; 1 ns per bus clock, as QEMU's and KVM's APIC timers), one-shot or
// periodic. LINT0 in ExtINT mode passes the 8259's INTR through with its interrupt-acknowledge cycle (virtual-wire
// mode); with the APIC disabled in IA32_APIC_BASE the vCPU sees the 8259 directly, as a CPU without an APIC (11.4.3).
//
// At reset the bootstrap processor's LINT0 is ExtINT and unmasked, as a PC BIOS leaves it and as QEMU resets it, so that
// 8259 guests that never touch the APIC keep working; every other LVT entry is masked.
using System.Numerics;
using Hypervisor.Core.Io;
using Hypervisor.Core.Timing;

namespace Hypervisor.Devices.Apic;

/// <summary>
/// The xAPIC of one vCPU: registers, interrupt acceptance and priority, the timer, LINT0/LINT1 and IPIs. It is the
/// vCPU's <see cref="ILocalInterruptController"/>.
/// </summary>
/// <remarks>
/// Register access (<see cref="ReadRegister"/>, <see cref="WriteRegister"/>) happens with the machine's I/O lock held
/// (MMIO always is). The <see cref="ILocalInterruptController"/> members take the lock themselves, and
/// <see cref="HasPendingInterrupt"/> is lock-free.
/// </remarks>
public sealed class LocalApic : ILocalInterruptController
{
    /// <summary>The architectural default base of the register page.</summary>
    public const ulong DefaultBase = 0xFEE0_0000;

    /// <summary>The size of the register page.</summary>
    public const ulong PageSize = 0x1000;

    /// <summary>The version register: version 0x14, max LVT entry 5 (QEMU's value).</summary>
    public const uint Version = 0x0005_0014;

    /// <summary>The bus clock the timer counts, before the divider: 1 GHz.</summary>
    public const long BusFrequencyHz = 1_000_000_000;

    /// <summary>IA32_APIC_BASE bit 8: this is the bootstrap processor.</summary>
    public const ulong BaseBsp = 1UL << 8;

    /// <summary>IA32_APIC_BASE bit 11: the APIC is enabled.</summary>
    public const ulong BaseEnable = 1UL << 11;

    /// <summary>ESR bit 5: an ICR named an illegal vector (0-15).</summary>
    public const uint ErrorSendIllegalVector = 1 << 5;

    /// <summary>ESR bit 6: an illegal vector (0-15) was received or raised locally.</summary>
    public const uint ErrorReceiveIllegalVector = 1 << 6;

    /// <summary>ESR bit 7: a reserved register offset was accessed.</summary>
    public const uint ErrorIllegalRegisterAddress = 1 << 7;

    private const int LvtTimer = 0, LvtThermal = 1, LvtPerformance = 2, LvtLint0 = 3, LvtLint1 = 4, LvtError = 5;
    private const uint Masked = 1 << 16;
    private const uint SvrEnable = 1 << 8;

    // Writable bits per LVT entry (SDM Figure 11-8): vector 7:0, delivery mode 10:8, polarity 13, trigger 15, mask 16,
    // timer mode 17 (bit 18, TSC-deadline, is reserved because CPUID does not advertise it).
    private static readonly uint[] s_lvtWritable = [0x300FF, 0x107FF, 0x107FF, 0x1A7FF, 0x1A7FF, 0x100FF];

    private readonly ApicBus _bus;
    private readonly DeviceTimer _timer;
    private readonly uint[] _isr = new uint[8];
    private readonly uint[] _tmr = new uint[8];
    private readonly uint[] _irr = new uint[8];
    private readonly uint[] _lvt = new uint[6];

    private uint _id;
    private ulong _apicBase;
    private uint _tpr;
    private uint _ldr;
    private uint _dfr;
    private uint _svr;
    private uint _esr;
    private uint _esrPending;
    private uint _icrLow;
    private uint _icrHigh;
    private uint _initialCount;
    private uint _divideConfig;
    private int _divideShift;
    private long _timerLoadTime;
    private bool _inError;
    private bool _nmiPending;
    private bool _extIntRequested;
    private StartupRequest _startup;
    private volatile bool _intr;
    private volatile bool _extIntOpen;

    internal LocalApic(ApicBus bus, int index, TimerQueue timers)
    {
        _bus = bus;
        Index = index;
        _timer = timers.CreateTimer($"lapic{index}-timer", OnTimer);
        _id = (uint)index << 24;
        _apicBase = DefaultBase | BaseEnable | (index == 0 ? BaseBsp : 0);
        PowerUpRegisters();
        Update();
    }

    /// <summary>The index of the vCPU this APIC belongs to.</summary>
    public int Index { get; }

    /// <summary>The APIC ID (ID register bits 31:24).</summary>
    public byte Id => (byte)(_id >> 24);

    /// <summary>True while IA32_APIC_BASE enables the APIC.</summary>
    public bool IsHardwareEnabled => (_apicBase & BaseEnable) != 0;

    /// <summary>True while the spurious-interrupt vector register enables the APIC.</summary>
    public bool IsSoftwareEnabled => (_svr & SvrEnable) != 0;

    /// <summary>The processor priority (PPR), SDM 11.8.3.1.</summary>
    public int ProcessorPriority
    {
        get
        {
            int isrv = Highest(_isr);
            int tpr = (int)_tpr;
            return (tpr >> 4) >= (Math.Max(isrv, 0) >> 4) ? tpr : isrv & 0xF0;
        }
    }

    /// <summary>The base of the register page (IA32_APIC_BASE bits 51:12).</summary>
    public ulong BaseAddress => _apicBase & 0x000F_FFFF_FFFF_F000;

    // ------------------------------------------------------------------------------------------------ vCPU side

    /// <inheritdoc />
    /// <remarks>Lock-free: the state behind it is recomputed under the I/O lock on every change.</remarks>
    public bool HasPendingInterrupt => _intr || (_extIntOpen && _bus.Pic?.HasPendingInterrupt == true);

    /// <inheritdoc />
    /// <remarks>
    /// The highest-priority deliverable vector moves from IRR to ISR and is returned. Otherwise, when LINT0 (or an
    /// ExtINT message) passes the 8259 through, its acknowledge cycle supplies the vector. -1 when nothing is deliverable.
    /// </remarks>
    public int AcknowledgeInterrupt()
    {
        lock (_bus.IoLock.Sync)
        {
            if (Deliverable() is int vector and >= 0)
            {
                ClearBit(_irr, vector);
                SetBit(_isr, vector);
                Update();
                return vector;
            }

            if (_extIntOpen && _bus.Pic is { HasPendingInterrupt: true } pic)
            {
                _extIntRequested = false;
                int v = pic.AcknowledgeInterrupt();
                Update();
                return v;
            }

            return -1;
        }
    }

    /// <inheritdoc />
    public ulong ApicBase
    {
        get
        {
            lock (_bus.IoLock.Sync)
            {
                return _apicBase;
            }
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Bits 7:0, 9 and 10 (x2APIC, not offered) and 63:52 are reserved; the BSP bit is read-only. Clearing the enable bit
    /// returns the registers to their power-up state (SDM 11.4.3); the vCPU then sees the 8259 directly. A new base is
    /// kept and reads back, but the register page stays where the machine mapped it at build time.
    /// </remarks>
    public bool TrySetApicBase(ulong value)
    {
        if ((value & 0xFFF0_0000_0000_06FFUL) != 0)
        {
            return false;
        }

        lock (_bus.IoLock.Sync)
        {
            bool wasEnabled = IsHardwareEnabled;
            _apicBase = (value & ~BaseBsp) | (_apicBase & BaseBsp);
            if (wasEnabled && !IsHardwareEnabled)
            {
                PowerUpRegisters();
            }

            Update();
            return true;
        }
    }

    /// <inheritdoc />
    public int TaskPriorityClass
    {
        get
        {
            lock (_bus.IoLock.Sync)
            {
                return (int)(_tpr >> 4);
            }
        }
        set
        {
            lock (_bus.IoLock.Sync)
            {
                _tpr = (uint)(value & 0xF) << 4;
                Update();
            }
        }
    }

    /// <inheritdoc />
    public bool TakeNmi()
    {
        lock (_bus.IoLock.Sync)
        {
            bool n = _nmiPending;
            _nmiPending = false;
            return n;
        }
    }

    /// <inheritdoc />
    public StartupRequest TakeStartupRequest()
    {
        lock (_bus.IoLock.Sync)
        {
            StartupRequest r = _startup;
            _startup = default;
            return r;
        }
    }

    // ------------------------------------------------------------------------------------------------ registers

    /// <summary>Reads the 32-bit register at <paramref name="offset"/> (a multiple of 16 below 0x400). Call with the I/O lock held.</summary>
    public uint ReadRegister(int offset)
    {
        int r = offset >> 4;
        switch (r)
        {
            case 0x02: return _id;
            case 0x03: return Version;
            case 0x08: return _tpr;
            case 0x09: return ArbitrationPriority();
            case 0x0A: return (uint)ProcessorPriority;
            case 0x0B: return 0; // EOI is write-only
            case 0x0C: return 0; // remote read is not supported by xAPICs
            case 0x0D: return _ldr;
            case 0x0E: return _dfr;
            case 0x0F: return _svr;
            case >= 0x10 and <= 0x17: return _isr[r - 0x10];
            case >= 0x18 and <= 0x1F: return _tmr[r - 0x18];
            case >= 0x20 and <= 0x27: return _irr[r - 0x20];
            case 0x28: return _esr;
            case 0x30: return _icrLow;
            case 0x31: return _icrHigh;
            case >= 0x32 and <= 0x37: return _lvt[r - 0x32];
            case 0x38: return _initialCount;
            case 0x39: return CurrentCount(_bus.Clock.NowNanoseconds);
            case 0x3E: return _divideConfig;
            default:
                ReportError(ErrorIllegalRegisterAddress);
                return 0;
        }
    }

    /// <summary>Writes the 32-bit register at <paramref name="offset"/> (a multiple of 16 below 0x400). Call with the I/O lock held.</summary>
    public void WriteRegister(int offset, uint value)
    {
        int r = offset >> 4;
        switch (r)
        {
            case 0x02:
                _id = value & 0xFF00_0000;
                break;
            case 0x08:
                _tpr = value & 0xFF;
                break;
            case 0x0B:
                EndOfInterrupt();
                break;
            case 0x0D:
                _ldr = value & 0xFF00_0000;
                break;
            case 0x0E:
                _dfr = (value & 0xF000_0000) | 0x0FFF_FFFF;
                break;
            case 0x0F:
                _svr = value & 0x3FF;
                if (!IsSoftwareEnabled)
                {
                    // SDM 11.4.7.2: software-disabling the APIC sets every LVT mask bit.
                    for (int i = 0; i < _lvt.Length; i++)
                    {
                        _lvt[i] |= Masked;
                    }
                }

                break;
            case 0x28:
                // SDM 11.5.3: a write moves the errors collected since the last write into the readable ESR.
                _esr = _esrPending;
                _esrPending = 0;
                break;
            case 0x30:
                _icrLow = value & 0x000C_CFFF;
                SendIpi();
                break;
            case 0x31:
                _icrHigh = value & 0xFF00_0000;
                break;
            case >= 0x32 and <= 0x37:
                WriteLvt(r - 0x32, value);
                break;
            case 0x38:
                StartTimer(value);
                break;
            case 0x3E:
                SetDivide(value);
                break;
            case 0x03 or 0x09 or 0x0A or 0x0C or (>= 0x10 and <= 0x27) or 0x39:
                break; // read-only
            default:
                ReportError(ErrorIllegalRegisterAddress);
                break;
        }

        Update();
    }

    internal ulong ReadMmio(ulong offset, int size)
    {
        // Registers are 32 bits wide and 16-byte aligned (SDM 11.4.1); narrower reads see part of the dword, reads of
        // the padding see zero.
        int within = (int)(offset & 0xF);
        if (within >= 4 || !IsHardwareEnabled)
        {
            return 0;
        }

        ulong v = ReadRegister((int)(offset & 0xFF0)) >> (within * 8);
        return size >= 8 ? v : v & ((1UL << (size * 8)) - 1);
    }

    internal void WriteMmio(ulong offset, int size, ulong value)
    {
        if ((offset & 0xF) != 0 || size < 4 || !IsHardwareEnabled)
        {
            return; // partial writes are undefined on hardware; ignore them
        }

        WriteRegister((int)(offset & 0xFF0), (uint)value);
    }

    // ------------------------------------------------------------------------------------------------ bus side

    /// <summary>True if this APIC is a target of <paramref name="destination"/> (SDM 11.6.2.1 and 11.6.2.2).</summary>
    internal bool MatchesDestination(byte destination, bool logical)
    {
        if (!logical)
        {
            return destination == 0xFF || destination == Id;
        }

        if (destination == 0xFF)
        {
            return true;
        }

        byte ldr = (byte)(_ldr >> 24);
        if ((_dfr >> 28) == 0xF)
        {
            return (ldr & destination) != 0; // flat model
        }

        // Cluster model: the high nibble names the cluster, the low nibble the members.
        return (ldr >> 4) == (destination >> 4) && (ldr & destination & 0xF) != 0;
    }

    /// <summary>Accepts a message from the APIC bus or a local source. Call with the I/O lock held.</summary>
    internal void Accept(in ApicMessage message)
    {
        switch (message.Mode)
        {
            case ApicDeliveryMode.Fixed:
            case ApicDeliveryMode.LowestPriority:
                if (message.Vector < 16)
                {
                    ReportError(ErrorReceiveIllegalVector);
                    return;
                }

                SetBit(_irr, message.Vector);
                if (message.Level)
                {
                    SetBit(_tmr, message.Vector);
                }
                else
                {
                    ClearBit(_tmr, message.Vector);
                }

                Update();
                break;
            case ApicDeliveryMode.Nmi:
                _nmiPending = true;
                _bus.Control.NotifyVcpuInterruptPending(Index);
                break;
            case ApicDeliveryMode.Init:
                // SDM 11.4.7.3: INIT resets the APIC as power-up does, except for the APIC ID and the base MSR.
                PowerUpRegisters();
                _startup = new StartupRequest(StartupRequestKind.Init, 0);
                Update();
                _bus.Control.NotifyVcpuInterruptPending(Index);
                break;
            case ApicDeliveryMode.Startup:
                _startup = new StartupRequest(StartupRequestKind.Startup, message.Vector);
                _bus.Control.NotifyVcpuInterruptPending(Index);
                break;
            case ApicDeliveryMode.ExtInt:
                _extIntRequested = true;
                Update();
                _bus.Control.NotifyVcpuInterruptPending(Index);
                break;
            default:
                break; // SMI is not modelled
        }
    }

    /// <summary>The 8259's INTR rose: LINT0 acts on it per its LVT entry. Call with the I/O lock held.</summary>
    internal void OnLint0Raised()
    {
        if (!IsHardwareEnabled)
        {
            _bus.Control.NotifyVcpuInterruptPending(Index); // no APIC: INTR goes straight to the CPU
            return;
        }

        RaiseLocal(LvtLint0);
    }

    /// <summary>Drives LINT1 high (an NMI button on a PC). Call with the I/O lock held.</summary>
    public void RaiseLint1() => RaiseLocal(LvtLint1);

    // ------------------------------------------------------------------------------------------------ internals

    private void PowerUpRegisters()
    {
        // SDM 11.4.7.1, except the bootstrap processor's LINT0 (see the file header).
        _timer.Cancel();
        Array.Clear(_isr);
        Array.Clear(_tmr);
        Array.Clear(_irr);
        for (int i = 0; i < _lvt.Length; i++)
        {
            _lvt[i] = Masked;
        }

        if ((_apicBase & BaseBsp) != 0)
        {
            _lvt[LvtLint0] = (uint)ApicDeliveryMode.ExtInt << 8;
        }

        _tpr = 0;
        _ldr = 0;
        _dfr = 0xFFFF_FFFF;
        _svr = 0xFF;
        _esr = 0;
        _esrPending = 0;
        _icrLow = 0;
        _icrHigh = 0;
        _initialCount = 0;
        _divideConfig = 0;
        _divideShift = 1;
        _nmiPending = false;
        _extIntRequested = false;
    }

    private void RaiseLocal(int lvt)
    {
        uint entry = _lvt[lvt];
        if ((entry & Masked) != 0)
        {
            return;
        }

        var mode = (ApicDeliveryMode)((entry >> 8) & 7);
        switch (mode)
        {
            case ApicDeliveryMode.ExtInt:
                _bus.Control.NotifyVcpuInterruptPending(Index); // the vector comes from the 8259 at acknowledge
                break;
            case ApicDeliveryMode.Fixed:
            case ApicDeliveryMode.Nmi:
                Accept(new ApicMessage((byte)entry, mode, Id, false, lvt != LvtTimer && (entry & (1 << 15)) != 0));
                break;
            default:
                break; // SMI and INIT on LVT entries are not modelled
        }
    }

    private void WriteLvt(int lvt, uint value)
    {
        value &= s_lvtWritable[lvt];
        if (!IsSoftwareEnabled)
        {
            value |= Masked; // SDM 11.4.7.2: mask bits cannot be cleared while software-disabled
        }

        uint old = _lvt[lvt];
        _lvt[lvt] = value;
        if (lvt == LvtTimer && ((old ^ value) & (1 << 17)) != 0)
        {
            ScheduleTimer(_bus.Clock.NowNanoseconds);
        }
    }

    private void SendIpi()
    {
        var mode = (ApicDeliveryMode)((_icrLow >> 8) & 7);
        bool levelAssert = (_icrLow & (1 << 14)) != 0;
        bool levelTrigger = (_icrLow & (1 << 15)) != 0;
        int shorthand = (int)((_icrLow >> 18) & 3);
        byte vector = (byte)_icrLow;
        if (mode == ApicDeliveryMode.Init && levelTrigger && !levelAssert)
        {
            return; // INIT level de-assert: only resynchronises arbitration IDs on old APIC buses
        }

        if (mode is ApicDeliveryMode.Fixed or ApicDeliveryMode.LowestPriority && vector < 16)
        {
            ReportError(ErrorSendIllegalVector);
            return;
        }

        var message = new ApicMessage(vector, mode, (byte)(_icrHigh >> 24), (_icrLow & (1 << 11)) != 0, false);
        _bus.Send(message, shorthand, this);
    }

    private void EndOfInterrupt()
    {
        int v = Highest(_isr);
        if (v < 0)
        {
            return;
        }

        ClearBit(_isr, v);
        if (TestBit(_tmr, v))
        {
            _bus.BroadcastEoi(v);
        }
    }

    private void ReportError(uint bit)
    {
        _esrPending |= bit;
        uint entry = _lvt[LvtError];
        if (_inError || (entry & Masked) != 0)
        {
            return;
        }

        _inError = true;
        Accept(new ApicMessage((byte)entry, ApicDeliveryMode.Fixed, Id, false, false));
        _inError = false;
    }

    private uint ArbitrationPriority()
    {
        int tprClass = (int)(_tpr >> 4);
        int isrv = Math.Max(Highest(_isr), 0);
        int irrv = Math.Max(Highest(_irr), 0);
        if (tprClass >= irrv >> 4 && tprClass > isrv >> 4)
        {
            return _tpr;
        }

        return (uint)Math.Max(_tpr & 0xF0, Math.Max(isrv & 0xF0, irrv & 0xF0));
    }

    /// <summary>The highest IRR vector if it may be dispatched now, else -1.</summary>
    private int Deliverable()
    {
        if (!IsHardwareEnabled || !IsSoftwareEnabled)
        {
            return -1;
        }

        int irrv = Highest(_irr);
        return irrv >= 0 && (irrv >> 4) > (ProcessorPriority >> 4) ? irrv : -1;
    }

    /// <summary>Recomputes the outputs after a change; signals the vCPU when an interrupt became deliverable.</summary>
    private void Update()
    {
        uint lint0 = _lvt[LvtLint0];
        _extIntOpen = !IsHardwareEnabled || _extIntRequested ||
            ((lint0 & Masked) == 0 && ((lint0 >> 8) & 7) == (uint)ApicDeliveryMode.ExtInt);
        bool intr = Deliverable() >= 0;
        bool rising = intr && !_intr;
        _intr = intr;
        if (rising)
        {
            _bus.Control.NotifyVcpuInterruptPending(Index);
        }
    }

    // ------------------------------------------------------------------------------------------------ timer

    private bool Periodic => (_lvt[LvtTimer] & (1 << 17)) != 0;

    private long PeriodNanoseconds => (long)_initialCount << _divideShift;

    private void SetDivide(uint value)
    {
        long now = _bus.Clock.NowNanoseconds;
        uint current = CurrentCount(now);
        _divideConfig = value & 0xB;
        int code = (int)((_divideConfig & 3) | ((_divideConfig >> 1) & 4));
        _divideShift = code == 7 ? 0 : code + 1; // SDM Figure 11-10: 000 = /2 ... 110 = /128, 111 = /1
        if (_initialCount != 0 && current != 0)
        {
            // Keep counting down from the current value at the new rate.
            _timerLoadTime = now - ((long)(_initialCount - current) << _divideShift);
            ScheduleTimer(now);
        }
    }

    private void StartTimer(uint initialCount)
    {
        _initialCount = initialCount;
        _timerLoadTime = _bus.Clock.NowNanoseconds;
        ScheduleTimer(_timerLoadTime);
    }

    private uint CurrentCount(long now)
    {
        if (_initialCount == 0)
        {
            return 0;
        }

        long elapsed = (now - _timerLoadTime) >> _divideShift;
        if (Periodic)
        {
            return (uint)(_initialCount - (elapsed % _initialCount));
        }

        return elapsed >= _initialCount ? 0 : (uint)(_initialCount - elapsed);
    }

    private void ScheduleTimer(long now)
    {
        if (_initialCount == 0)
        {
            _timer.Cancel();
            return;
        }

        long period = PeriodNanoseconds;
        long expiry = _timerLoadTime + period;
        if (Periodic)
        {
            if (now >= expiry)
            {
                expiry = _timerLoadTime + ((now - _timerLoadTime) / period + 1) * period;
            }
        }
        else if (now >= expiry)
        {
            _timer.Cancel(); // a one-shot count that already reached zero stays there
            return;
        }

        _timer.Schedule(expiry);
    }

    private void OnTimer()
    {
        if (_initialCount == 0)
        {
            return;
        }

        long now = _bus.Clock.NowNanoseconds;
        RaiseLocal(LvtTimer);
        if (Periodic)
        {
            // Periods missed while the host was busy are dropped: the IRR holds one bit per vector anyway.
            long period = PeriodNanoseconds;
            long periods = (now - _timerLoadTime) / period;
            _timerLoadTime += periods * period;
            _timer.Schedule(_timerLoadTime + period);
        }
    }

    private static int Highest(uint[] bits)
    {
        for (int i = 7; i >= 0; i--)
        {
            if (bits[i] != 0)
            {
                return i * 32 + 31 - BitOperations.LeadingZeroCount(bits[i]);
            }
        }

        return -1;
    }

    private static void SetBit(uint[] bits, int v) => bits[v >> 5] |= 1u << (v & 31);

    private static void ClearBit(uint[] bits, int v) => bits[v >> 5] &= ~(1u << (v & 31));

    private static bool TestBit(uint[] bits, int v) => (bits[v >> 5] & (1u << (v & 31))) != 0;
}
