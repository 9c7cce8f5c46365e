using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Hypervisor.Accel.Tcg.Decoding;
using Hypervisor.Accel.Tcg.Mmu;
using Hypervisor.Accel.Tcg.State;
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Registers;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Interpreter;

/// <summary>
/// The tcg vCPU: an interpreter of decoded blocks over <see cref="CpuState"/>, with a software MMU, precise
/// exceptions, interrupt delivery and the <see cref="IVcpu"/> contract.
/// </summary>
internal sealed partial class TcgCpu : IVcpu, INonMaskableInterruptTarget
{
    private const int BlockCacheSize = 4096;

    internal CpuState S;

    private readonly PortIoBus _ports;
    private readonly IInterruptSource? _interrupts;
    private readonly ILocalInterruptController? _lapic;
    private readonly GuestCodeReader _reader;
    private readonly Decoder _decoder16;
    private readonly Decoder _decoder32;
    private readonly Decoder _decoder64;
    private readonly DecodedBlock?[] _blocks = new DecodedBlock?[BlockCacheSize];
    private readonly DecodedBlock _scratchBlock = new();
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private readonly long[] _unimplemented = new long[(int)Mnemonic.Vpdpbssd + 2048];

    private ulong _nextRip;
    private bool _endBlock;
    private bool _inhibitOnce;
    private bool _halted;
    private bool _singleStepTrap;
    private ulong _currentPage = ulong.MaxValue;
    private long _retired;
    private long _exits;
    private volatile int _kick;
    private volatile int _irqHint;
    private volatile int _lapicHint;
    private volatile bool _nmiPending; // set by the local APIC (vCPU thread) or RaiseNonMaskableInterrupt (any thread)
    private bool _nmiBlocked;
    private bool _resetting;
    private string? _shutdownDetail;
    private int _deliveryDepth;

    public TcgCpu(int index, PhysicalMemory physical, PortIoBus ports, IInterruptSource? interrupts)
    {
        Index = index;
        Physical = physical;
        _ports = ports;
        _interrupts = interrupts;
        _lapic = interrupts as ILocalInterruptController;
        _reader = new GuestCodeReader(this);
        _decoder16 = Decoder.Create(16, _reader);
        _decoder32 = Decoder.Create(32, _reader);
        _decoder64 = Decoder.Create(64, _reader);
        Reset();
        WaitingForSipi = index > 0;
    }

    /// <inheritdoc />
    public int Index { get; }

    /// <summary>
    /// True for application processors (index &gt; 0) until a start-up IPI arrives through their local APIC or the host
    /// sets their registers.
    /// </summary>
    internal bool WaitingForSipi { get; set; }

    /// <summary>The board's FERR# input (IRQ 13 on a PC), or null: see <see cref="X87PendingCheck"/>.</summary>
    internal IInterruptLine? FpuErrorLine { get; init; }

    /// <summary>Guest-physical memory.</summary>
    internal PhysicalMemory Physical { get; }

    /// <summary>Optional hook called before every instruction with the linear RIP (tests and tracing; slows the CPU).</summary>
    internal Action<TcgCpu>? TraceHook { get; set; }

    /// <summary>How often each mnemonic the interpreter does not implement was met (raised #UD).</summary>
    internal IReadOnlyDictionary<Mnemonic, long> UnimplementedCounts
    {
        get
        {
            var d = new Dictionary<Mnemonic, long>();
            for (int i = 0; i < _unimplemented.Length; i++)
            {
                long n = Interlocked.Read(ref _unimplemented[i]);
                if (n != 0)
                {
                    d[(Mnemonic)i] = n;
                }
            }

            return d;
        }
    }

    /// <inheritdoc />
    public VcpuStatistics Statistics => new(Interlocked.Read(ref _retired), Interlocked.Read(ref _exits) + Physical.BusAccesses)
    {
        Details = Jit?.Statistics.ToDetails(),
    };

    /// <summary>The architectural reset state (Intel SDM Vol. 3A, 10.1.1).</summary>
    internal void Reset()
    {
        S = default;
        SetGeneralRegisters(ResetState.General());
        _resetting = true; // the local APIC keeps its own IA32_APIC_BASE across INIT (SDM Vol. 3A, 11.4.7.3)
        SetSystemRegisters(ResetState.System());
        _resetting = false;
        SetFpuRegisters(ResetState.Fpu());
        S.Pat = 0x0007_0406_0007_0406; // SDM Vol. 3A, 13.12.4: the PAT power-up value
        S.Dr6 = 0xFFFF_0FF0;
        S.Dr7 = 0x400;
        _pendingDr6 = 0;
        OnDebugRegistersChanged();
        S.Xcr0 = 1;
        S.MiscEnable = 1; // fast strings
        _halted = false;
        _inhibitOnce = false;
        _nmiPending = false;
        _nmiBlocked = false;
        FlushTlb();
    }

    /// <inheritdoc />
    public void RaiseNonMaskableInterrupt()
    {
        _nmiPending = true;
        _wake.Release();
    }

    /// <inheritdoc />
    public void Kick()
    {
        _kick = 1;
        _wake.Release();
    }

    /// <inheritdoc />
    public void NotifyInterruptPending()
    {
        _lapicHint = 1;
        _irqHint = 1;
        _wake.Release();
    }

    /// <inheritdoc />
    public void Dispose() => _wake.Dispose();

    /// <inheritdoc />
    public VcpuExit Run(long instructionLimit = long.MaxValue)
    {
        try
        {
            return RunCore(instructionLimit < 0 ? 0 : instructionLimit);
        }
        catch (GuestUnsupported u)
        {
            MaterializeFlags();
            return new VcpuExit(VcpuExitReason.GuestError, S.Rip, u.Message);
        }
#pragma warning disable CA1031 // a bug in the interpreter must end the run with a value, never take the host down
        catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
        {
            MaterializeFlags();
            return new VcpuExit(VcpuExitReason.GuestError, S.Rip,
                $"tcg internal error at RIP 0x{S.Rip:X}: {e.GetType().Name}: {e.Message}");
        }
    }

    private VcpuExit RunCore(long budget)
    {
        while (true)
        {
            if (_kick != 0)
            {
                _kick = 0;
                return new VcpuExit(VcpuExitReason.Interrupted, S.Rip);
            }

            if (_lapicHint != 0 && _lapic is not null)
            {
                TakeLocalApicEvents();
            }

            if (WaitingForSipi)
            {
                // An application processor sleeps until its local APIC brings a start-up IPI (or it is kicked) instead
                // of running the firmware alongside the bootstrap processor.
                if (_lapicHint == 0 && _kick == 0)
                {
                    _wake.Wait(100);
                }

                continue;
            }

            if (_nmiPending && !_nmiBlocked && !_inhibitOnce)
            {
                // SDM Vol. 3A, 6.7.1: an NMI is taken regardless of IF and blocks further NMIs until the next IRET.
                _nmiPending = false;
                _nmiBlocked = true;
                _halted = false;
                DeliverEvent(Vec.NMI, 0, false, EventKind.External, S.Rip);
                if (_shutdownDetail is not null)
                {
                    return ShutdownExit();
                }
            }

            if (!_inhibitOnce && (S.Rflags & Fl.IF) != 0 && _irqHint != 0 && _interrupts is not null)
            {
                TryDeliverExternal();
                if (_shutdownDetail is not null)
                {
                    return ShutdownExit();
                }
            }

            if (_halted)
            {
                if ((S.Rflags & Fl.IF) == 0)
                {
                    return new VcpuExit(VcpuExitReason.Halted, S.Rip);
                }

                // Sleep until an interrupt is signalled or the vCPU is kicked (no busy spin).
                if (_irqHint == 0 && _kick == 0 && (!_nmiPending || _nmiBlocked))
                {
                    _wake.Wait(100);
                }

                continue;
            }

            if (budget == 0)
            {
                return new VcpuExit(VcpuExitReason.InstructionLimit, S.Rip);
            }

            if (_singleStepTrap)
            {
                DeliverDebugTrap(); // a trap left by an event delivery (the T flag of a task entered through a gate)
                if (_shutdownDetail is not null)
                {
                    return ShutdownExit();
                }

                continue;
            }

            // Breakpoints enabled in DR7 (or RF set): one instruction at a time, checked (TcgCpu.Debug.cs).
            bool debugStep = _breakpointsEnabled || (S.Rflags & Fl.RF) != 0;
            if (debugStep && DebugBeforeInstruction())
            {
                budget--;
                if (_shutdownDetail is not null)
                {
                    return ShutdownExit();
                }

                continue;
            }

            try
            {
                ExecuteBlocks(debugStep ? 1 : budget);
                if (debugStep)
                {
                    DebugAfterInstruction();
                }
            }
            catch (GuestFault f)
            {
                MaterializeFlags(); // the flags the faulting instruction started with
                _endBlock = false;
                _inhibitOnce = false;
                DeliverEvent(f.Vector, f.ErrorCode, f.HasErrorCode, EventKind.Fault, S.Rip);
                budget--; // a delivered fault uses budget, so fault loops that retire nothing still end
            }

            budget -= _lastExecuted;
            Volatile.Write(ref _retired, _retired + _lastExecuted); // one writer: this thread
            if (_singleStepTrap)
            {
                DeliverDebugTrap();
            }

            if (_shutdownDetail is not null)
            {
                return ShutdownExit();
            }
        }
    }

    private long _lastExecuted;

    private VcpuExit ShutdownExit()
    {
        string d = _shutdownDetail!;
        _shutdownDetail = null;
        return new VcpuExit(VcpuExitReason.Shutdown, S.Rip, d);
    }

    /// <summary>Takes INIT, start-up IPIs and NMIs from the local APIC (SDM Vol. 3A, 9.4.4 and 11.6.1).</summary>
    private void TakeLocalApicEvents()
    {
        Interlocked.Exchange(ref _lapicHint, 0); // a full fence: see TryDeliverExternal
        StartupRequest request = _lapic!.TakeStartupRequest();
        switch (request.Kind)
        {
            case StartupRequestKind.Init:
                Reset();
                WaitingForSipi = (_lapic.ApicBase & (1UL << 8)) == 0; // the BSP restarts at the reset vector
                break;
            case StartupRequestKind.Startup when WaitingForSipi:
                // The start-up vector VV starts the processor in real mode at VV00:0000 (SDM Vol. 3A, 9.4.4.1).
                S.Seg[Seg.CS].Selector = (ushort)(request.Vector << 8);
                S.Seg[Seg.CS].Base = (ulong)request.Vector << 12;
                S.Rip = 0;
                WaitingForSipi = false;
                FlushTlb();
                break;
            default:
                break;
        }

        if (_lapic.TakeNmi())
        {
            _nmiPending = true;
        }
    }

    private void TryDeliverExternal()
    {
        // Clearing the hint must be visible before the controller's state is read. A plain store could sit in the
        // store buffer while the read goes ahead (x86 reorders a store with a later load), so a notification made in
        // between would be overwritten while the read missed its interrupt, and a halted vCPU would not look again.
        Interlocked.Exchange(ref _irqHint, 0);
        if (!_interrupts!.HasPendingInterrupt)
        {
            return;
        }

        int vector = _interrupts.AcknowledgeInterrupt();
        _irqHint = 1; // more may be pending; the next boundary asks again
        if (vector < 0)
        {
            return;
        }

        _halted = false;
        Interlocked.Increment(ref _exits);
        DeliverEvent(vector & 0xFF, 0, false, EventKind.External, S.Rip);
    }

    /// <summary>
    /// Executes blocks, chaining from one to the next without returning to the run loop, until the budget is used or
    /// something the run loop must see happens (kick, interrupt window, HLT, shutdown, single-step, trace, a block that
    /// is not cached). The number retired is in <see cref="_lastExecuted"/> (also when a fault ends the run).
    /// </summary>
    private unsafe void ExecuteBlocks(long budget)
    {
        _lastExecuted = 0;
        RefreshFast();
        DecodedBlock block = GetBlock();

        // Without a trace hook, a whole block runs here, translated (RunJit) or as fused micro-ops (ExecuteBlock
        // handles the rest: trace, single-step, interrupt shadow, a block longer than the budget, a fetch fault).
        bool plain = TraceHook is null;
        var jit = Jit;
        while (true)
        {
            int count = block.Count;
            if (plain && count != 0 && count <= budget - _lastExecuted && !_inhibitOnce && (S.Rflags & Fl.TF) == 0)
            {
                _sawGeneric = false;
                _currentPage = block.Page;
                if (jit is not null && block.Cached && !_breakpointsEnabled && RunJit(block, budget - _lastExecuted))
                {
                    _sawGeneric = true;
                    RefreshFast();
                    goto checks;
                }

                ref MicroOp op = ref MemoryMarshal.GetArrayDataReference(block.Ops);
                ref MicroOp end = ref Unsafe.Add(ref op, count);
                do
                {
                    _nextRip = op.NextIp;
                    op.Run(this, ref op);
                    S.Rip = _nextRip;
                    _lastExecuted++;
                    if (_endBlock)
                    {
                        _endBlock = false;
                        break;
                    }

                    op = ref Unsafe.Add(ref op, 1);
                }
                while (Unsafe.IsAddressLessThan(ref op, ref end));
            }
            else
            {
                ExecuteBlock(block, budget - _lastExecuted);
            }

        checks:
            // After a block of micro-ops only (no generic instruction, trace, single-step or shadow), nothing but
            // another thread's request can have changed what the checks below look at.
            // An interrupt request while IF is clear, or a local-APIC hint without a local APIC, needs nothing here.
            if (_sawGeneric || _lastExecuted >= budget || !block.Cached || _kick != 0 || _nmiPending || _breakpointsEnabled ||
                (_lapicHint != 0 && _lapic is not null) || (_irqHint != 0 && (S.Rflags & Fl.IF) != 0))
            {
                if (_lastExecuted >= budget || !block.Cached || _kick != 0 || _halted || _inhibitOnce || _singleStepTrap ||
                    _breakpointsEnabled || _shutdownDetail is not null || TraceHook is not null || (S.Rflags & Fl.TF) != 0 || _nmiPending ||
                    (_lapicHint != 0 && _lapic is not null) || (_irqHint != 0 && (S.Rflags & Fl.IF) != 0))
                {
                    MaterializeFlags();
                    return;
                }
            }

            block = NextBlock(block);
        }
    }

    /// <summary>Executes up to one block (bounded by <paramref name="budget"/>), adding to <see cref="_lastExecuted"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private unsafe void ExecuteBlock(DecodedBlock block, long budget)
    {
        int count = block.Count;
        if (count == 0)
        {
            throw new GuestFault(block.FetchFaultVector, block.FetchFaultError, block.FetchFaultVector is Vec.PF or Vec.GP);
        }

        bool inhibit = _inhibitOnce;
        _inhibitOnce = false;
        Action<TcgCpu>? trace = TraceHook;
        bool singleStep = (S.Rflags & Fl.TF) != 0;
        _sawGeneric = false;
        if (inhibit || trace is not null || singleStep)
        {
            count = 1;
            _sawGeneric = true;
        }

        if (count > budget)
        {
            count = (int)budget;
        }

        _currentPage = block.Page;
        if (Jit is not null && !inhibit && trace is null && !singleStep && block.Cached && count == block.Count && !_breakpointsEnabled)
        {
            if (RunJit(block, budget))
            {
                _sawGeneric = true;
                RefreshFast();
                return;
            }
        }

        MicroOp[] ops = block.Ops;
        if (trace is null && !singleStep)
        {
            for (int i = 0; i < count; i++)
            {
                ref MicroOp op = ref ops[i];
                _nextRip = op.NextIp;
                op.Single(this, ref op);
                S.Rip = _nextRip;
                _lastExecuted++;
                if (_endBlock)
                {
                    _endBlock = false;
                    break;
                }
            }
        }
        else
        {
            for (int i = 0; i < count; i++)
            {
                ref MicroOp op = ref ops[i];
                _nextRip = op.NextIp;
                if (trace is not null)
                {
                    trace(this);
                    RefreshFast(); // the hook may change registers
                }

                op.Single(this, ref op);
                S.Rip = _nextRip;
                _lastExecuted++;
                if (singleStep)
                {
                    // TF was set when the instruction began: a single-step trap follows it (SDM Vol. 3A, 18.3.1.4).
                    _singleStepTrap = true;
                    _pendingDr6 |= Dr6Bs;
                }

                if (_endBlock)
                {
                    _endBlock = false;
                    break;
                }
            }
        }

        if (!block.Cached && block.Count == 0)
        {
            _currentPage = ulong.MaxValue;
        }
    }

    /// <summary>
    /// The block at the current RIP, found through the previous block's links when they are still valid (same RIP,
    /// code segment, mode, CPL and TLB epoch, and an unchanged code page), else through <see cref="GetBlock"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private DecodedBlock NextBlock(DecodedBlock prev)
    {
        ulong rip = S.Rip;
        DecodedBlock? n = prev.Link0;
        if (n is null || !LinkValid(n, rip))
        {
            n = prev.Link1;
            if (n is null || !LinkValid(n, rip))
            {
                n = GetBlock();
                if (n.Cached)
                {
                    if (prev.LinkToggle)
                    {
                        prev.Link1 = n;
                    }
                    else
                    {
                        prev.Link0 = n;
                    }

                    prev.LinkToggle = !prev.LinkToggle;
                }
            }
        }

        return n;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool LinkValid(DecodedBlock b, ulong rip)
    {
        // _contextId stands for CS, EFER.LMA, CPL and the TLB epoch (RefreshFast keeps it current).
        return b.Rip == rip && b.ContextId == _contextId && b.Generation == Physical.Generation(b.Page) && b.Cached;
    }

    /// <summary>Ends the current block after this instruction (mode change, self-modifying code, interrupt window).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void EndBlock() => _endBlock = true;

    private int CodeBitness => S.Seg[Seg.CS].Long && (S.Efer & Cr.EferLma) != 0 ? 64 : S.Seg[Seg.CS].Big ? 32 : 16;

    /// <summary>Wraps a linear address of a code fetch the way the current mode does (32-bit outside long mode).</summary>
    internal ulong CodeLinearWrap(ulong linear) => (S.Efer & Cr.EferLma) != 0 ? linear : linear & 0xFFFF_FFFF;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private DecodedBlock GetBlock()
    {
        int bitness = CodeBitness;
        ulong rip = S.Rip;
        ref SegmentCache cs = ref S.Seg[Seg.CS];
        ulong linear = bitness == 64 ? rip : (cs.Base + rip) & 0xFFFF_FFFF;
        if (bitness == 64 && !IsCanonical(linear))
        {
            throw new GuestFault(Vec.GP, 0, true);
        }

        if (bitness != 64 && rip > cs.Limit)
        {
            throw new GuestFault(Vec.GP, 0, true);
        }

        if (!TryTranslateFetch(linear, out ulong phys, out int vector, out uint error))
        {
            if (vector == Vec.PF)
            {
                S.Cr2 = linear;
            }

            throw new GuestFault(vector, error, true);
        }

        ulong page = phys >> PhysicalMemory.PageShift;
        int slot = (int)((phys ^ (phys >> 12) ^ (rip >> 2)) & (BlockCacheSize - 1));
        DecodedBlock? b = _blocks[slot];
        if (b is not null && b.PhysicalAddress == phys && b.Rip == rip && b.Bitness == bitness &&
            b.Generation == Physical.Generation(page))
        {
            SetLinkKey(b);
            return b;
        }

        bool cacheable = Physical.IsTracked(page);
        if (cacheable)
        {
            b ??= new DecodedBlock();
            _blocks[slot] = b;
        }
        else
        {
            b = _scratchBlock;
        }

        // Read the generation before decoding so that a write racing with the decode invalidates the block.
        uint generation = Physical.Generation(page);
        Physical.MarkCode(page);
        Decode(b, bitness, rip, linear, phys, page, bitness == 64 ? ulong.MaxValue : cs.Limit);
        FuseClosingBranch(b);
        b.Generation = generation;
        b.Cached = cacheable;
        b.Link0 = null;
        b.Link1 = null;
        SetLinkKey(b);
        if (!cacheable)
        {
            b.Generation = uint.MaxValue;
        }

        return b;
    }

    /// <summary>Records the state a block was last found valid in, which <see cref="LinkValid"/> compares.</summary>
    private void SetLinkKey(DecodedBlock b)
    {
        b.ContextId = _contextId;
    }

    private void Decode(DecodedBlock b, int bitness, ulong rip, ulong linear, ulong phys, ulong page, ulong limit)
    {
        b.Rip = rip;
        b.PhysicalAddress = phys;
        b.Page = page;
        b.Bitness = bitness;
        b.Count = 0;
        b.FetchFaultVector = -1;
        Decoder decoder = bitness == 64 ? _decoder64 : bitness == 32 ? _decoder32 : _decoder16;
        _reader.Reset(rip, linear, limit, page, Physical.HostPage(page, false));
        decoder.IP = rip;
        ulong ipMask = bitness == 64 ? ulong.MaxValue : bitness == 32 ? 0xFFFF_FFFFUL : 0xFFFFUL;
        while (b.Count < DecodedBlock.MaxInstructions)
        {
            _reader.CrossedPage = false;
            ref Instruction ins = ref b.Instructions[b.Count];
            decoder.Decode(out ins);
            if (_reader.Faulted)
            {
                if (b.Count == 0)
                {
                    b.FetchFaultVector = _reader.FaultVector;
                    b.FetchFaultError = _reader.FaultError;
                    if (_reader.FaultVector == Vec.PF)
                    {
                        S.Cr2 = _reader.FaultAddress;
                    }
                }

                return;
            }

            // An instruction that spills into the next page is executed from a block of its own, so that every
            // cached block depends on exactly one physical page.
            if (_reader.CrossedPage && b.Count > 0)
            {
                return;
            }

            PreDecode(ref ins, ref b.Ops[b.Count], ipMask);
            b.Count++;
            if (ins.IsInvalid || _reader.CrossedPage)
            {
                return;
            }

            // A direct JMP or CALL whose target lies on the same page continues the block at the target: its micro-op
            // sets the next RIP, and the block still depends on one physical page only.
            if (ins.Mnemonic is Mnemonic.Jmp or Mnemonic.Call &&
                ins.Op0Kind is OpKind.NearBranch16 or OpKind.NearBranch32 or OpKind.NearBranch64 &&
                b.Ops[b.Count - 1].Kind is MicroKind.Jmp or MicroKind.CallRel)
            {
                ulong target = ins.NearBranchTarget;
                ulong targetLinear = bitness == 64 ? target : (linear - rip + target) & 0xFFFF_FFFF;
                if ((targetLinear >> 12) == (linear >> 12) && target <= limit)
                {
                    _reader.Reset(target, targetLinear, limit, page, Physical.HostPage(page, false));
                    decoder.IP = target;
                    continue;
                }
            }

            if (EndsBlock(ref ins))
            {
                return;
            }

            if (((ins.NextIP & ipMask) & 0xFFF) == 0 || (ins.NextIP & ipMask) != ins.NextIP)
            {
                return;
            }

            decoder.IP = ins.NextIP;
        }
    }

    private static bool EndsBlock(ref Instruction ins)
    {
        FlowControl fc = ins.FlowControl;
        if (fc != FlowControl.Next)
        {
            return true;
        }

        switch (ins.Mnemonic)
        {
            case Mnemonic.Mov:
                return ins.Op0Kind == OpKind.Register && (ins.Op0Register is Register.SS || ins.Op0Register.IsCR() || ins.Op0Register.IsDR() || ins.Op0Register.IsSegmentRegister());
            case Mnemonic.Pop:
                return ins.Op0Kind == OpKind.Register && ins.Op0Register.IsSegmentRegister();
            case Mnemonic.Sti:
            case Mnemonic.Cli:
            case Mnemonic.Popf:
            case Mnemonic.Popfd:
            case Mnemonic.Popfq:
            case Mnemonic.Hlt:
            case Mnemonic.Wrmsr:
            case Mnemonic.Lmsw:
            case Mnemonic.Clts:
            case Mnemonic.Invlpg:
            case Mnemonic.Lgdt:
            case Mnemonic.Lidt:
            case Mnemonic.Lldt:
            case Mnemonic.Ltr:
            case Mnemonic.Lss:
            case Mnemonic.Lds:
            case Mnemonic.Les:
            case Mnemonic.Lfs:
            case Mnemonic.Lgs:
            case Mnemonic.Swapgs:
            case Mnemonic.In:
            case Mnemonic.Out:
            case Mnemonic.Insb:
            case Mnemonic.Insw:
            case Mnemonic.Insd:
            case Mnemonic.Outsb:
            case Mnemonic.Outsw:
            case Mnemonic.Outsd:
            case Mnemonic.Xsetbv:
            case Mnemonic.Cpuid:
                return true;
            default:
                return false;
        }
    }

    private void CountUnimplemented(Mnemonic m)
    {
        int i = (int)m;
        if ((uint)i < (uint)_unimplemented.Length)
        {
            Interlocked.Increment(ref _unimplemented[i]);
        }
    }

    [Conditional("DEBUG_TCG")]
    private static void Trace(string message) => Debug.WriteLine(message);
}
