using System.Reflection;
using System.Reflection.Emit;
using Hypervisor.Accel.Tcg.Decoding;
using Hypervisor.Accel.Tcg.Interpreter;
using Hypervisor.Accel.Tcg.Mmu;
using Hypervisor.Accel.Tcg.State;
using Iced.Intel;
using Label = System.Reflection.Emit.Label;
using FlowControl = Iced.Intel.FlowControl;

namespace Hypervisor.Accel.Tcg.Jit;

/// <summary>
/// Translates one decoded block into a <see cref="DynamicMethod"/>. Guest GPRs live in IL locals between the
/// region's entry and its exits; status flags are lazy (<see cref="JitFlags"/>); memory goes through the software TLB
/// with an inline path for RAM hits in 64-bit mode and through the interpreter's own accessors otherwise; every
/// instruction without a native translation runs in the interpreter (<see cref="TcgCpu.JitStep"/>) with the
/// registers spilled before and reloaded after. A block whose last instruction branches back to its start becomes
/// an IL loop that checks the budget, kicks and pending interrupts on every back edge.
/// </summary>
/// <remarks>
/// Exactness rules the emitters follow: an instruction changes register locals and the lazy-flag state only after its
/// last possible fault, so a fault exit (which materialises the lazy flags, writes the locals back and sets RIP to the
/// faulting instruction) leaves the state the interpreter would leave.
/// </remarks>
internal sealed class JitTranslator
{
    private const BindingFlags Any = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;

    private static readonly FieldInfo s_state = Field(typeof(TcgCpu), "S");
    private static readonly FieldInfo s_gpr = Field(typeof(CpuState), nameof(CpuState.Gpr));
    private static readonly FieldInfo s_rflags = Field(typeof(CpuState), nameof(CpuState.Rflags));
    private static readonly FieldInfo s_rip = Field(typeof(CpuState), nameof(CpuState.Rip));
    private static readonly FieldInfo s_tlb = Field(typeof(TcgCpu), "_tlb");
    private static readonly FieldInfo s_tlbRead = Field(typeof(Tlb), nameof(Tlb.Read));
    private static readonly FieldInfo s_tlbWrite = Field(typeof(Tlb), nameof(Tlb.Write));
    private static readonly FieldInfo s_cpl = Field(typeof(TcgCpu), "_cpl");
    private static readonly FieldInfo s_kick = Field(typeof(TcgCpu), "_kick");
    private static readonly FieldInfo s_irqHint = Field(typeof(TcgCpu), "_irqHint");
    private static readonly FieldInfo s_endBlock = Field(typeof(TcgCpu), "_endBlock");
    private static readonly FieldInfo s_exitSlot = Field(typeof(TcgCpu), nameof(TcgCpu.JitExitSlot));
    private static readonly FieldInfo s_tag = Field(typeof(TlbEntry), nameof(TlbEntry.Tag));
    private static readonly FieldInfo s_physPage = Field(typeof(TlbEntry), nameof(TlbEntry.PhysPage));
    private static readonly FieldInfo s_host = Field(typeof(TlbEntry), nameof(TlbEntry.Host));
    private static readonly FieldInfo s_user = Field(typeof(TlbEntry), nameof(TlbEntry.User));
    private static readonly FieldInfo s_userPage = Field(typeof(TlbEntry), nameof(TlbEntry.UserPage));
    private static readonly MethodInfo s_smapAllows = Method(typeof(TcgCpu), nameof(TcgCpu.JitSmapAllows));
    private static readonly FieldInfo s_rips = Field(typeof(JitRegion), nameof(JitRegion.Rips));
    private static readonly MethodInfo s_step = Method(typeof(TcgCpu), nameof(TcgCpu.JitStep));
    private static readonly MethodInfo s_readSlow = Method(typeof(TcgCpu), nameof(TcgCpu.JitReadSlow));
    private static readonly MethodInfo s_writeSlow = Method(typeof(TcgCpu), nameof(TcgCpu.JitWriteSlow));
    private static readonly MethodInfo s_noteWrite = Method(typeof(TcgCpu), nameof(TcgCpu.JitNoteWrite));
    private static readonly FieldInfo s_physical = Field(typeof(TcgCpu), "<Physical>k__BackingField");

    /// <summary>PhysicalMemory's per-page "holds code" bytes, read inline so that writes to data pages make no call (null: always call).</summary>
    private static readonly FieldInfo? s_holdsCode = typeof(PhysicalMemory).GetField("_holdsCode", Any) is { FieldType: var ft } f && ft == typeof(byte[]) ? f : null;
    private static readonly MethodInfo s_csLimit = Method(typeof(TcgCpu), nameof(TcgCpu.JitCsLimit));
    private static readonly MethodInfo s_segBase = Method(typeof(TcgCpu), nameof(TcgCpu.JitSegmentBase));
    private static readonly MethodInfo s_segLimit = Method(typeof(TcgCpu), nameof(TcgCpu.JitSegmentLimit));
    private static readonly MethodInfo s_materialize = Method(typeof(JitFlags), nameof(JitFlags.Materialize));
    private static readonly MethodInfo s_carry = Method(typeof(JitFlags), nameof(JitFlags.Carry));
    private static readonly MethodInfo s_condition = Method(typeof(JitFlags), nameof(JitFlags.Condition));
    private static readonly MethodInfo s_shift = Method(typeof(JitFlags), nameof(JitFlags.Shift));
    private static readonly MethodInfo s_imul = Method(typeof(JitFlags), nameof(JitFlags.Imul2));

    /// <summary>Static lazy-flag state: a <see cref="JitFlags"/> kind, or <see cref="Dynamic"/> at a block reached by internal branches.</summary>
    private const int Dynamic = -1;

    /// <summary>Exit slot of indirect exits (RET): the dispatcher looks the target up through the fetch TLB.</summary>
    public const int IndirectSlot = 1 << 20;

    /// <summary>Largest IL body of a region (RyuJIT falls back to MinOpts at 60,000 bytes of IL).</summary>
    private const int MaxIlBytes = 24_000;

    private readonly Instruction[] _ins;
    private readonly int _count;
    private readonly int _bitness;

    /// <summary>Stack address size the region was translated for (SS.B outside 64-bit mode; 0: unknown, stack instructions call the interpreter).</summary>
    private readonly int _stackBits;
    private readonly ulong _stackMask;
    private readonly ulong _ripMask;
    private readonly bool[] _native;
    private readonly int[] _blockStart;
    private readonly int[] _blockCount;
    private readonly Dictionary<ulong, int> _blockAt = [];
    private readonly bool[] _blockTargeted;
    private readonly List<int> _returnSites = [];
    private readonly FlagState?[]? _entryStates;
    private readonly FlagState?[] _incoming;
    private readonly bool[] _conflict;
    private LocalBuilder? _csLimit;

    /// <summary>The only locals passed by reference (to helpers with ref or out parameters): RFLAGS and slow-path reads go through them, so the runtime can keep every other local in a register.</summary>
    private LocalBuilder _flRef = null!, _slowValue = null!;
    private Label[] _blockLabels = [];
    private int _exitSlots;
    private int _block;
    private int _local;
    private readonly bool[] _used = new bool[16];
    private bool _usesStack;

    /// <summary>Registers whose local may differ from CpuState.Gpr here (a call into the interpreter spills only these).</summary>
    private readonly bool[] _dirty = new bool[16];
    private readonly DynamicMethod _method;
    private readonly ILGenerator _il;
    private readonly LocalBuilder[] _gpr = new LocalBuilder[16];
    private readonly Dictionary<int, (Label Label, int Done)> _faultStubs = [];
    private readonly Stack<LocalBuilder> _freeTemps = new();
    private LocalBuilder _state = null!, _fl = null!, _lop = null!, _la = null!, _lb = null!, _lc = null!, _exec = null!;
    private LocalBuilder _tlbRead = null!, _tlbWrite = null!, _sup = null!, _exitIdx = null!, _exitDone = null!, _entry = null!;
    private LocalBuilder _holds = null!, _smc = null!;

    /// <summary>Supervisor code whose accesses SMAP does not restrict now (CR4.SMAP clear or EFLAGS.AC set; STAC/CLAC end the region).</summary>
    private LocalBuilder _supAll = null!;

    /// <summary>
    /// The stack page cache (<see cref="EmitStackAccess"/>): linear page number + 1 of the page PUSH/POP/CALL/RET last
    /// reached through the write TLB (0: none), its host address, its physical page and a reference to its code-page
    /// byte (a shared zero for an untracked page). Null when the region has no native stack instruction.
    /// </summary>
    private LocalBuilder? _stkTag, _stkHost, _stkPhys, _stkHolds;

    /// <summary>The code-page byte of pages <see cref="PhysicalMemory"/> does not track (never set).</summary>
    private static readonly byte[] s_untracked = new byte[1];
    private static readonly FieldInfo s_untrackedField = typeof(JitTranslator).GetField(nameof(s_untracked), Any)!;
    private Label _faultExit, _commonExit;
    private LocalBuilder _exitRip = null!;
    private int _pending = JitFlags.None;
    private int _pendingBits = 64;
    private int _pendingCount;
    private int _current;

    private JitTranslator(IReadOnlyList<DecodedBlock> blocks, int stackBits, FlagState?[]? entryStates)
    {
        _entryStates = entryStates;
        _incoming = new FlagState?[blocks.Count];
        _conflict = new bool[blocks.Count];
        DecodedBlock entry = blocks[0];
        _stackBits = entry.Bitness == 64 ? 64 : stackBits;
        _stackMask = _stackBits switch { 64 => ulong.MaxValue, 32 => 0xFFFF_FFFFUL, _ => 0xFFFFUL };
        _blockStart = new int[blocks.Count];
        _blockCount = new int[blocks.Count];
        _blockTargeted = new bool[blocks.Count];
        for (int b = 0; b < blocks.Count; b++)
        {
            _blockStart[b] = _count;
            _blockCount[b] = blocks[b].Count;
            _blockAt[blocks[b].Rip] = b;
            _count += blocks[b].Count;
        }

        _ins = new Instruction[_count];
        for (int b = 0; b < blocks.Count; b++)
        {
            Array.Copy(blocks[b].Instructions, 0, _ins, _blockStart[b], blocks[b].Count);
        }

        _bitness = entry.Bitness;
        _ripMask = _bitness == 64 ? ulong.MaxValue : _bitness == 32 ? 0xFFFF_FFFFUL : 0xFFFFUL;
        _native = new bool[_count];
        for (int i = 0; i < _count; i++)
        {
            _native[i] = IsNative(ref _ins[i]);
            if (_native[i] && IsDirectBranch(ref _ins[i]) && _blockAt.TryGetValue(_ins[i].NearBranchTarget, out int t))
            {
                _blockTargeted[t] = true;
            }
        }

        // Return sites: blocks that follow a native CALL of the region; a native RET whose target is one of them
        // branches there inside the region.
        bool hasRet = false;
        for (int i = 0; i < _count; i++)
        {
            hasRet |= _native[i] && _ins[i].Mnemonic == Mnemonic.Ret;
        }

        for (int i = 0; i < _count && hasRet; i++)
        {
            if (_native[i] && _ins[i].Mnemonic == Mnemonic.Call && _blockAt.TryGetValue(_ins[i].NextIP & _ripMask, out int site) &&
                !_returnSites.Contains(site))
            {
                _returnSites.Add(site);
                _blockTargeted[site] = true;
            }
        }

        for (int b = 0; b < blocks.Count; b++)
        {
            ref Instruction last = ref _ins[_blockStart[b] + _blockCount[b] - 1];
            if (_native[_blockStart[b] + _blockCount[b] - 1] && (last.FlowControl == FlowControl.Next || IsDirectBranch(ref last)) &&
                _blockAt.TryGetValue(last.NextIP & _ripMask, out int f))
            {
                _blockTargeted[f] = true;
            }
        }

        _method = new DynamicMethod($"tcg_{entry.PhysicalAddress:X}_{entry.Rip:X}", typeof(long),
            [typeof(JitRegion), typeof(TcgCpu), typeof(long)], typeof(TcgCpu), skipVisibility: true);
        _il = _method.GetILGenerator(256 + (_count * 96));
    }

    /// <summary>How many instructions of a block have a native translation (the rest call the interpreter).</summary>
    public static int NativeCount(DecodedBlock block, int stackBits)
    {
        int n = 0;
        for (int i = 0; i < block.Count; i++)
        {
            if (IsNative(ref block.Instructions[i], block.Bitness, stackBits))
            {
                n++;
            }
        }

        return n;
    }

    /// <summary>
    /// Translates a region: <paramref name="blocks"/>[0] is its entry, the others are blocks of the same page that
    /// direct branches of the region reach (each must hold at least one instruction).
    /// </summary>
    public static JitRegion Translate(IReadOnlyList<DecodedBlock> blocks, int stackBits)
    {
        (JitTranslator t, JitRegion region) = Build(blocks, stackBits);
        while (t._il.ILOffset > MaxIlBytes && blocks.Count > 1)
        {
            // RyuJIT compiles very large methods without optimisation (MinOpts): keep regions well below that.
            blocks = [.. blocks.Take(blocks.Count / 2)];
            (t, region) = Build(blocks, stackBits);
        }

        region.ExitSlots = t._exitSlots;
        region.StackBits = t._usesStack && t._bitness != 64 ? t._stackBits : 0;
        region.Code = t._method.CreateDelegate<JitRegionCode>();
        region.CostBytes = 1024 + (t._il.ILOffset * 6);

        // A negative budget returns at once: this call makes the runtime compile the method now, on this thread (the
        // background compiler's), instead of on the vCPU at the region's first run.
        region.Code(region, null!, -1);
        return region;
    }

    /// <summary>
    /// Emits the region, then again with the lazy-flag state known statically at the entry of every block whose
    /// internal predecessors all branch there with the same state (the kind, width and shift count of the pending
    /// operation): there conditions and carries read the operands directly instead of dispatching on the run-time
    /// kind. An assumption holds only if the emission that made it finds the same state on every incoming branch;
    /// otherwise it is dropped (at most a few rounds), and with none the block starts from the run-time state, which
    /// is always right because the lazy-flag locals are written whenever the static state changes.
    /// </summary>
    private static (JitTranslator, JitRegion) Build(IReadOnlyList<DecodedBlock> blocks, int stackBits)
    {
        var t = new JitTranslator(blocks, stackBits, null);
        var region = new JitRegion(t._ins, blocks[0], t._ripMask, blocks.Count);
        t.Emit(region);
        FlagState?[] assume = t.IncomingStates();
        for (int round = 0; round < 3 && assume.Any(a => a is not null); round++)
        {
            var u = new JitTranslator(blocks, stackBits, assume);
            var r = new JitRegion(u._ins, blocks[0], u._ripMask, blocks.Count);
            u.Emit(r);
            FlagState?[] found = u.IncomingStates();
            bool holds = true;
            for (int b = 0; b < assume.Length; b++)
            {
                if (assume[b] is { } a && found[b] != a)
                {
                    holds = false;
                    assume[b] = null;
                }
            }

            if (holds)
            {
                return (u, r);
            }
        }

        return (t, region);
    }

    /// <summary>A static lazy-flag state: a <see cref="JitFlags"/> kind, its operand width and, for shifts, the count.</summary>
    private readonly record struct FlagState(int Kind, int Bits, int Count);

    /// <summary>Per block, the one state all its incoming internal branches (and the region entry for block 0) had; null when they differ or none.</summary>
    private FlagState?[] IncomingStates()
    {
        var result = new FlagState?[_blockStart.Length];
        for (int b = 0; b < result.Length; b++)
        {
            result[b] = _incoming[b] is { } s && !_conflict[b] && s.Kind != Dynamic ? s : null;
        }

        return result;
    }

    private void NoteIncoming(int block, int kind, int bits, int count)
    {
        var s = kind == Dynamic || kind == JitFlags.None
            ? new FlagState(kind, 0, 0)
            : new FlagState(kind, bits, kind is JitFlags.Shl or JitFlags.Shr or JitFlags.Sar ? count : 0);
        if (_incoming[block] is null)
        {
            _incoming[block] = s;
        }
        else if (_incoming[block] != s)
        {
            _conflict[block] = true;
        }
    }

    // ------------------------------------------------------------------ selection

    private bool IsNative(ref Instruction ins) => IsNative(ref ins, _bitness, _stackBits);

    private static bool IsGpr(Register r) => r != Register.None && r.IsGPR();

    private static bool IsDirectBranch(ref Instruction ins) =>
        ins.Op0Kind is OpKind.NearBranch16 or OpKind.NearBranch32 or OpKind.NearBranch64 &&
        (ins.Mnemonic == Mnemonic.Jmp ||
         (ins.FlowControl == FlowControl.ConditionalBranch && ins.ConditionCode != ConditionCode.None &&
          ins.Mnemonic is not (Mnemonic.Jcxz or Mnemonic.Jecxz or Mnemonic.Jrcxz or Mnemonic.Loop or Mnemonic.Loope or Mnemonic.Loopne)));

    private static bool MemoryOk(ref Instruction ins)
    {
        Register b = ins.MemoryBase, x = ins.MemoryIndex;
        return (b == Register.None || b is Register.RIP or Register.EIP || IsGpr(b)) && (x == Register.None || IsGpr(x));
    }

    private static bool OperandOk(ref Instruction ins, int n, bool allowImmediate)
    {
        switch (ins.GetOpKind(n))
        {
            case OpKind.Register:
                return IsGpr(ins.GetOpRegister(n));
            case OpKind.Memory:
                return MemoryOk(ref ins);
            case OpKind.Immediate8:
            case OpKind.Immediate16:
            case OpKind.Immediate32:
            case OpKind.Immediate64:
            case OpKind.Immediate8to16:
            case OpKind.Immediate8to32:
            case OpKind.Immediate8to64:
            case OpKind.Immediate32to64:
                return allowImmediate;
            default:
                return false;
        }
    }

    /// <summary>
    /// Whether <paramref name="ins"/> gets a native translation in code of <paramref name="bitness"/> bits with a stack
    /// of <paramref name="stackBits"/> bits (SS.B; 0 when unknown) (else it calls the interpreter).
    /// </summary>
    internal static bool IsNative(ref Instruction ins, int bitness, int stackBits)
    {
        bool stackKnown = bitness == 64 || stackBits is 16 or 32;
        if (ins.HasLockPrefix || ins.IsInvalid)
        {
            return false;
        }

        switch (ins.Mnemonic)
        {
            case Mnemonic.Nop:
                return true;
            case Mnemonic.Mov:
                return ins.OpCount == 2 && OperandOk(ref ins, 0, false) && OperandOk(ref ins, 1, true) &&
                       !(ins.Op0Kind == OpKind.Memory && ins.Op1Kind == OpKind.Memory);
            case Mnemonic.Movzx:
            case Mnemonic.Movsx:
            case Mnemonic.Movsxd:
                return ins.Op0Kind == OpKind.Register && IsGpr(ins.Op0Register) && OperandOk(ref ins, 1, false);
            case Mnemonic.Lea:
                return ins.Op0Kind == OpKind.Register && IsGpr(ins.Op0Register) && ins.Op1Kind == OpKind.Memory && MemoryOk(ref ins);
            case Mnemonic.Add:
            case Mnemonic.Or:
            case Mnemonic.Adc:
            case Mnemonic.Sbb:
            case Mnemonic.And:
            case Mnemonic.Sub:
            case Mnemonic.Xor:
            case Mnemonic.Cmp:
            case Mnemonic.Test:
                return ins.OpCount == 2 && OperandOk(ref ins, 0, false) && OperandOk(ref ins, 1, true);
            case Mnemonic.Inc:
            case Mnemonic.Dec:
            case Mnemonic.Neg:
            case Mnemonic.Not:
                return ins.OpCount == 1 && OperandOk(ref ins, 0, false);
            case Mnemonic.Shl:
            case Mnemonic.Sal:
            case Mnemonic.Shr:
            case Mnemonic.Sar:
            case Mnemonic.Rol:
            case Mnemonic.Ror:
                return ins.OpCount == 2 && OperandOk(ref ins, 0, false) &&
                       (ins.Op1Kind == OpKind.Immediate8 || (ins.Op1Kind == OpKind.Register && ins.Op1Register == Register.CL));
            case Mnemonic.Imul:
                return ins.OpCount >= 2 && ins.Op0Kind == OpKind.Register && IsGpr(ins.Op0Register) &&
                       OperandOk(ref ins, 1, false) && (ins.OpCount == 2 || OperandOk(ref ins, 2, true));
            case Mnemonic.Cmova:
            case Mnemonic.Cmovae:
            case Mnemonic.Cmovb:
            case Mnemonic.Cmovbe:
            case Mnemonic.Cmove:
            case Mnemonic.Cmovg:
            case Mnemonic.Cmovge:
            case Mnemonic.Cmovl:
            case Mnemonic.Cmovle:
            case Mnemonic.Cmovne:
            case Mnemonic.Cmovno:
            case Mnemonic.Cmovnp:
            case Mnemonic.Cmovns:
            case Mnemonic.Cmovo:
            case Mnemonic.Cmovp:
            case Mnemonic.Cmovs:
                return ins.Op0Kind == OpKind.Register && IsGpr(ins.Op0Register) && OperandOk(ref ins, 1, false);
            case Mnemonic.Seta:
            case Mnemonic.Setae:
            case Mnemonic.Setb:
            case Mnemonic.Setbe:
            case Mnemonic.Sete:
            case Mnemonic.Setg:
            case Mnemonic.Setge:
            case Mnemonic.Setl:
            case Mnemonic.Setle:
            case Mnemonic.Setne:
            case Mnemonic.Setno:
            case Mnemonic.Setnp:
            case Mnemonic.Setns:
            case Mnemonic.Seto:
            case Mnemonic.Setp:
            case Mnemonic.Sets:
                return OperandOk(ref ins, 0, false);
            case Mnemonic.Jmp:
            case Mnemonic.Ja:
            case Mnemonic.Jae:
            case Mnemonic.Jb:
            case Mnemonic.Jbe:
            case Mnemonic.Je:
            case Mnemonic.Jg:
            case Mnemonic.Jge:
            case Mnemonic.Jl:
            case Mnemonic.Jle:
            case Mnemonic.Jne:
            case Mnemonic.Jno:
            case Mnemonic.Jnp:
            case Mnemonic.Jns:
            case Mnemonic.Jo:
            case Mnemonic.Jp:
            case Mnemonic.Js:
                // Outside 64-bit mode the CS limit is checked once per region entry (JitRegion.MaxBranchTarget).
                return IsDirectBranch(ref ins) && (bitness != 64 || TcgCpu.IsCanonical(ins.NearBranchTarget));
            case Mnemonic.Call:
                // Outside 64-bit mode the target is within the CS limit (checked at region entry, MaxBranchTarget).
                return bitness == 64
                    ? ins.Op0Kind == OpKind.NearBranch64 && TcgCpu.IsCanonical(ins.NearBranchTarget)
                    : stackKnown && ins.Op0Kind is OpKind.NearBranch16 or OpKind.NearBranch32;
            case Mnemonic.Ret:
                return bitness == 64
                    ? ins.Code is Code.Retnq or Code.Retnq_imm16
                    : stackKnown && ins.Code is Code.Retnw or Code.Retnw_imm16 or Code.Retnd or Code.Retnd_imm16;
            case Mnemonic.Push:
                return stackKnown && (bitness == 64 ? ins.StackPointerIncrement is -8 or -2 : ins.StackPointerIncrement is -4 or -2) &&
                       OperandOk(ref ins, 0, true);
            case Mnemonic.Pop:
                return stackKnown && (bitness == 64 ? ins.StackPointerIncrement is 8 or 2 : ins.StackPointerIncrement is 4 or 2) &&
                       ins.Op0Kind == OpKind.Register && IsGpr(ins.Op0Register);
            default:
                return false;
        }
    }

    // ------------------------------------------------------------------ region

    private void Emit(JitRegion region)
    {
        for (int i = 0; i < _count; i++)
        {
            if (_native[i])
            {
                MarkUsed(ref _ins[i]);
            }
        }

        ILGenerator il = _il;
        _state = il.DeclareLocal(typeof(CpuState).MakeByRefType());
        _fl = il.DeclareLocal(typeof(ulong));
        _flRef = il.DeclareLocal(typeof(ulong));
        _slowValue = il.DeclareLocal(typeof(ulong));
        _lop = il.DeclareLocal(typeof(int));
        _la = il.DeclareLocal(typeof(ulong));
        _lb = il.DeclareLocal(typeof(ulong));
        _lc = il.DeclareLocal(typeof(ulong));
        _exec = il.DeclareLocal(typeof(long));
        _tlbRead = il.DeclareLocal(typeof(TlbEntry).MakeByRefType());
        _tlbWrite = il.DeclareLocal(typeof(TlbEntry).MakeByRefType());
        _holds = il.DeclareLocal(typeof(byte[]));
        _smc = il.DeclareLocal(typeof(bool));
        _sup = il.DeclareLocal(typeof(bool));
        _supAll = il.DeclareLocal(typeof(bool));
        _exitIdx = il.DeclareLocal(typeof(int));
        _exitDone = il.DeclareLocal(typeof(int));
        _entry = il.DeclareLocal(typeof(TlbEntry).MakeByRefType());
        for (int r = 0; r < 16; r++)
        {
            if (_used[r])
            {
                _gpr[r] = il.DeclareLocal(typeof(ulong));
            }
        }

        _faultExit = il.DefineLabel();
        _commonExit = il.DefineLabel();
        _exitRip = il.DeclareLocal(typeof(ulong));
        _blockLabels = new Label[_blockStart.Length];
        for (int b = 0; b < _blockLabels.Length; b++)
        {
            _blockLabels[b] = il.DefineLabel();
        }

        // Prologue: a negative budget is the compile-only call of Translate; then the state pointer, registers, flags,
        // TLB arrays and the privilege of this entry.
        Label run = il.DefineLabel();
        il.Emit(OpCodes.Ldarg_2);
        il.Emit(OpCodes.Ldc_I8, 0L);
        il.Emit(OpCodes.Bge, run);
        il.Emit(OpCodes.Ldc_I8, 0L);
        il.Emit(OpCodes.Ret);
        il.MarkLabel(run);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldflda, s_state);
        il.Emit(OpCodes.Stloc, _state);
        LoadRegisters();
        il.Emit(OpCodes.Ldloc, _state);
        il.Emit(OpCodes.Ldfld, s_rflags);
        il.Emit(OpCodes.Stloc, _fl);
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Stloc, _lop);
        il.Emit(OpCodes.Ldc_I8, 0L);
        il.Emit(OpCodes.Stloc, _exec);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldfld, s_cpl);
        il.Emit(OpCodes.Ldc_I4_3);
        il.Emit(OpCodes.Ceq);
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Ceq);
        il.Emit(OpCodes.Stloc, _sup);
        il.Emit(OpCodes.Ldloc, _sup);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Call, s_smapAllows);
        il.Emit(OpCodes.And);
        il.Emit(OpCodes.Stloc, _supAll);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldfld, s_tlb);
        il.Emit(OpCodes.Dup);
        il.Emit(OpCodes.Ldfld, s_tlbRead);
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Ldelema, typeof(TlbEntry));
        il.Emit(OpCodes.Stloc, _tlbRead);
        il.Emit(OpCodes.Ldfld, s_tlbWrite);
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Ldelema, typeof(TlbEntry));
        il.Emit(OpCodes.Stloc, _tlbWrite);
        if (s_holdsCode is not null)
        {
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldfld, s_physical);
            il.Emit(OpCodes.Ldfld, s_holdsCode);
            il.Emit(OpCodes.Stloc, _holds);
        }
        DeclareSegments();
        if (_usesStack && s_holdsCode is not null && (InlineMemory(State.Seg.SS) || _segLimit[State.Seg.SS] is not null))
        {
            _stkTag = il.DeclareLocal(typeof(ulong));
            _stkHost = il.DeclareLocal(typeof(nint));
            _stkPhys = il.DeclareLocal(typeof(ulong));
            _stkHolds = il.DeclareLocal(typeof(byte).MakeByRefType());
            il.Emit(OpCodes.Ldc_I8, 0L);
            il.Emit(OpCodes.Stloc, _stkTag);
            il.Emit(OpCodes.Ldsfld, s_untrackedField);
            il.Emit(OpCodes.Ldc_I4_0);
            il.Emit(OpCodes.Ldelema, typeof(byte));
            il.Emit(OpCodes.Stloc, _stkHolds);
        }

        if (_bitness != 64 && Enumerable.Range(0, _count).Any(i => _native[i] && _ins[i].Mnemonic == Mnemonic.Ret))
        {
            // Read once per region entry: CS cannot change inside a region (far transfers end it).
            _csLimit = il.DeclareLocal(typeof(ulong));
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Call, s_csLimit);
            il.Emit(OpCodes.Conv_U8);
            il.Emit(OpCodes.Stloc, _csLimit);
        }

        // The region entry reaches block 0 with no pending operation (lop = 0). When internal branches reach block 0
        // too (a loop head, a return site), the entry runs a copy of it emitted for that state, and block 0 itself
        // gets the state its internal branches bring (statically known when they agree, as for any other block):
        // otherwise the entry's "no pending operation" would make every pass of the loop dispatch on the run-time kind.
        bool entryCopy = _blockTargeted[0] && EntryReadsFlags();
        if (!entryCopy)
        {
            NoteIncoming(0, JitFlags.None, 0, 0);
        }

        // Blocks: the entry first; a block that internal branches reach starts with the lazy flags known only at run
        // time, unless every way in brings the same static state (Build).
        for (int pass = entryCopy ? -1 : 0; pass < _blockStart.Length; pass++)
        {
            int b = Math.Max(pass, 0);
            _block = b;
            if (pass >= 0)
            {
                il.MarkLabel(_blockLabels[b]);
            }

            _pending = pass < 0 || (b == 0 && !_blockTargeted[0]) ? JitFlags.None : Dynamic;
            if (pass >= 0 && _entryStates?[b] is { } known)
            {
                _pending = known.Kind;
                _pendingBits = known.Bits;
                _pendingCount = known.Count;
            }

            // Reached by branches: any register may be ahead of CpuState.
            Array.Fill(_dirty, pass > 0 || (pass == 0 && _blockTargeted[0]));
            bool reachable = true;
            for (int j = 0; j < _blockCount[b]; j++)
            {
                int i = _blockStart[b] + j;
                _current = i;
                _local = j;
                reachable = _native[i] ? EmitNative(ref _ins[i], i) : EmitFallback(i);
            }

            if (reachable)
            {
                ulong next = _ins[_blockStart[b] + _blockCount[b] - 1].NextIP & _ripMask;
                EmitGoto(next, _blockCount[b]);
            }
        }

        // Shared fault exit: the lazy flags are materialised from the dynamic locals (faults are rare).
        EmitExitStubs(_faultStubs, _faultExit);

        // Stack accesses the inline path does not serve: the interpreter runs the instruction, then the region ends
        // (so it always makes progress, even when that instruction is the region's first). Registers and flags are
        // written back before the call and nothing of the region is used after it. One shared tail keeps the IL small.
        if (_stackExits.Count > 0)
        {
            Label stepExit = il.DefineLabel();
            EmitExitStubs(_stackExits, stepExit);

            il.MarkLabel(stepExit);
            EmitSettleState();
            il.Emit(OpCodes.Ldloc, _state);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, s_rips);
            il.Emit(OpCodes.Ldloc, _exitIdx);
            il.Emit(OpCodes.Ldelem_I8);
            il.Emit(OpCodes.Stfld, s_rip);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldloc, _exitIdx);
            il.Emit(OpCodes.Ldc_I4, TcgCpu.JitStepEnds);
            il.Emit(OpCodes.Call, s_step);
            // 1: done, the region ends after it; 2: it faulted (the dispatcher raises the fault; it does not count).
            il.Emit(OpCodes.Ldc_I4_2);
            il.Emit(OpCodes.Ceq);
            il.Emit(OpCodes.Ldc_I4_1);
            il.Emit(OpCodes.Xor);
            il.Emit(OpCodes.Conv_I8);
            il.Emit(OpCodes.Ldloc, _exec);
            il.Emit(OpCodes.Add);
            il.Emit(OpCodes.Ldloc, _exitDone);
            il.Emit(OpCodes.Conv_I8);
            il.Emit(OpCodes.Add);
            il.Emit(OpCodes.Ret);
        }

        EmitCommonExit();
        il.MarkLabel(_faultExit);
        EmitSettleState();
        il.Emit(OpCodes.Ldloc, _state);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldfld, s_rips);
        il.Emit(OpCodes.Ldloc, _exitIdx);
        il.Emit(OpCodes.Ldelem_I8);
        il.Emit(OpCodes.Stfld, s_rip);
        EmitReturnRetired();
        region.IsLoop = _blockTargeted.Any(t => t);
        region.NativeCount = _native.Count(n => n);
    }

    /// <summary>
    /// Whether the entry block reads a status flag before writing it, so that a copy of it for the region entry (see
    /// <see cref="Emit"/>) pays: when it writes them all first, the copy only makes the method larger (sort-16 ran
    /// about a fifth slower with it).
    /// </summary>
    private bool EntryReadsFlags()
    {
        const RflagsBits status = RflagsBits.OF | RflagsBits.SF | RflagsBits.ZF | RflagsBits.AF | RflagsBits.CF | RflagsBits.PF;
        RflagsBits written = RflagsBits.None;
        for (int j = 0; j < _blockCount[0]; j++)
        {
            ref Instruction ins = ref _ins[_blockStart[0] + j];
            if ((ins.RflagsRead & status & ~written) != 0)
            {
                return true;
            }

            written |= ins.RflagsModified & status;
            if (written == status)
            {
                return false;
            }
        }

        return false;
    }

    private void MarkUsed(ref Instruction ins)
    {
        for (int n = 0; n < ins.OpCount; n++)
        {
            if (ins.GetOpKind(n) == OpKind.Register && IsGpr(ins.GetOpRegister(n)))
            {
                _used[Info(ins.GetOpRegister(n)).Index] = true;
            }
            else if (ins.GetOpKind(n) == OpKind.Memory)
            {
                if (IsGpr(ins.MemoryBase))
                {
                    _used[Info(ins.MemoryBase).Index] = true;
                }

                if (IsGpr(ins.MemoryIndex))
                {
                    _used[Info(ins.MemoryIndex).Index] = true;
                }
            }
        }

        if (ins.Mnemonic is Mnemonic.Push or Mnemonic.Pop or Mnemonic.Call or Mnemonic.Ret)
        {
            _used[4] = true;
            _usesStack = true;
        }
    }

    private void LoadRegisters()
    {
        for (int r = 0; r < 16; r++)
        {
            if (_used[r])
            {
                _il.Emit(OpCodes.Ldloc, _state);
                _il.Emit(OpCodes.Ldflda, s_gpr);
                if (r != 0)
                {
                    _il.Emit(OpCodes.Ldc_I4, r * 8);
                    _il.Emit(OpCodes.Add);
                }

                _il.Emit(OpCodes.Ldind_I8);
                _il.Emit(OpCodes.Stloc, _gpr[r]);
            }
        }
    }

    private void StoreRegisters(bool dirtyOnly = false)
    {
        for (int r = 0; r < 16; r++)
        {
            if (_used[r] && (!dirtyOnly || _dirty[r]))
            {
                _il.Emit(OpCodes.Ldloc, _state);
                _il.Emit(OpCodes.Ldflda, s_gpr);
                if (r != 0)
                {
                    _il.Emit(OpCodes.Ldc_I4, r * 8);
                    _il.Emit(OpCodes.Add);
                }

                _il.Emit(OpCodes.Ldloc, _gpr[r]);
                _il.Emit(OpCodes.Stind_I8);
            }
        }
    }

    /// <summary>
    /// Leaves the region through the shared exit, which materialises the flags from the dynamic lazy-flag locals,
    /// writes registers, RFLAGS and RIP back, records the exit slot and returns the count of instructions done. One
    /// exit for all keeps the IL (and so the runtime's compile time) small; exits run once per region entry.
    /// </summary>
    private void EmitExit(int completed, Action pushRip, int chainSlot)
    {
        pushRip();
        _il.Emit(OpCodes.Stloc, _exitRip);
        _il.Emit(OpCodes.Ldc_I4, chainSlot);
        _il.Emit(OpCodes.Stloc, _exitIdx);
        _il.Emit(OpCodes.Ldc_I4, completed);
        _il.Emit(OpCodes.Stloc, _exitDone);
        _il.Emit(OpCodes.Br, _commonExit);
    }

    /// <summary>Materialises the lazy flags into RFLAGS and writes the guest registers and RFLAGS back to the state.</summary>
    private void EmitSettleState()
    {
        ILGenerator il = _il;
        // Registers first: no guest register is then live across the call (RyuJIT keeps values live across calls in
        // the few callee-saved registers or in the frame).
        StoreRegisters();
        il.Emit(OpCodes.Ldloc, _fl);
        il.Emit(OpCodes.Ldloc, _lop);
        il.Emit(OpCodes.Ldloc, _la);
        il.Emit(OpCodes.Ldloc, _lb);
        il.Emit(OpCodes.Ldloc, _lc);
        il.Emit(OpCodes.Call, s_materialize);
        il.Emit(OpCodes.Stloc, _fl);
        il.Emit(OpCodes.Ldloc, _state);
        il.Emit(OpCodes.Ldloc, _fl);
        il.Emit(OpCodes.Stfld, s_rflags);
    }

    /// <summary>Returns the instructions retired: those before this exit plus the ones its block completed.</summary>
    private void EmitReturnRetired()
    {
        ILGenerator il = _il;
        il.Emit(OpCodes.Ldloc, _exec);
        il.Emit(OpCodes.Ldloc, _exitDone);
        il.Emit(OpCodes.Conv_I8);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Ret);
    }

    private void EmitCommonExit()
    {
        ILGenerator il = _il;
        il.MarkLabel(_commonExit);
        EmitSettleState();
        il.Emit(OpCodes.Ldloc, _state);
        il.Emit(OpCodes.Ldloc, _exitRip);
        il.Emit(OpCodes.Stfld, s_rip);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldloc, _exitIdx);
        il.Emit(OpCodes.Stfld, s_exitSlot);
        EmitReturnRetired();
    }

    /// <summary>The fault exit of the current instruction (RIP of it, instructions before it in its block counted).</summary>
    private Label FaultStub()
    {
        if (!_faultStubs.TryGetValue(_current, out (Label Label, int Done) stub))
        {
            stub = (_il.DefineLabel(), _local);
            _faultStubs[_current] = stub;
        }

        return stub.Label;
    }

    /// <summary>
    /// Control goes to <paramref name="target"/> after <paramref name="completed"/> instructions of the current block:
    /// an IL branch when the target is a block of this region and another pass fits the budget (backward branches also
    /// check kicks and interrupt requests, which bounds interrupt latency to one pass), else an exit that the
    /// dispatcher may link.
    /// </summary>
    private void EmitGoto(ulong target, int completed, bool backward = false)
    {
        ILGenerator il = _il;
        int pending = _pending, bits = _pendingBits;
        if (_blockAt.TryGetValue(target, out int c))
        {
            Label exit = il.DefineLabel();
            il.Emit(OpCodes.Ldloc, _exec);
            il.Emit(OpCodes.Ldc_I8, (long)completed);
            il.Emit(OpCodes.Add);
            il.Emit(OpCodes.Stloc, _exec);
            il.Emit(OpCodes.Ldloc, _exec);
            il.Emit(OpCodes.Ldc_I8, (long)_blockCount[c]);
            il.Emit(OpCodes.Add);
            il.Emit(OpCodes.Ldarg_2);
            il.Emit(OpCodes.Bgt, exit);
            if (c <= _block || backward)
            {
                // A pending interrupt matters only with IF set (IF cannot change inside a region: CLI/STI/POPF end it).
                Label go = il.DefineLabel();
                il.Emit(OpCodes.Ldarg_1);
                il.Emit(OpCodes.Volatile);
                il.Emit(OpCodes.Ldfld, s_kick);
                il.Emit(OpCodes.Brtrue, exit);
                il.Emit(OpCodes.Ldarg_1);
                il.Emit(OpCodes.Volatile);
                il.Emit(OpCodes.Ldfld, s_irqHint);
                il.Emit(OpCodes.Brfalse, go);
                il.Emit(OpCodes.Ldloc, _fl);
                il.Emit(OpCodes.Ldc_I8, (long)Fl.IF);
                il.Emit(OpCodes.And);
                il.Emit(OpCodes.Ldc_I8, 0L);
                il.Emit(OpCodes.Bne_Un, exit);
                il.MarkLabel(go);
            }

            NoteIncoming(c, _pending, _pendingBits, _pendingCount);
            il.Emit(OpCodes.Br, _blockLabels[c]);
            il.MarkLabel(exit);
            EmitExit(0, () => il.Emit(OpCodes.Ldc_I8, (long)target), _exitSlots++);
        }
        else
        {
            EmitExit(completed, () => il.Emit(OpCodes.Ldc_I8, (long)target), _exitSlots++);
        }

        _pending = pending;
        _pendingBits = bits;
    }

    /// <summary>
    /// RSP after adding <paramref name="delta"/> within the stack's address size (the bits above SP/ESP are kept, as
    /// the interpreter's PushTo/PopFrom keep them) into <paramref name="rsp"/>, and its offset in SS into
    /// <paramref name="offset"/> when asked.
    /// </summary>
    private void EmitStackStep(long delta, LocalBuilder rsp, LocalBuilder? offset)
    {
        ILGenerator il = _il;
        if (_stackMask == ulong.MaxValue)
        {
            il.Emit(OpCodes.Ldloc, _gpr[4]);
            il.Emit(OpCodes.Ldc_I8, delta);
            il.Emit(OpCodes.Add);
            il.Emit(OpCodes.Stloc, rsp);
            if (offset is not null)
            {
                il.Emit(OpCodes.Ldloc, rsp);
                il.Emit(OpCodes.Stloc, offset);
            }

            return;
        }

        il.Emit(OpCodes.Ldloc, _gpr[4]);
        il.Emit(OpCodes.Ldc_I8, delta);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Ldc_I8, (long)_stackMask);
        il.Emit(OpCodes.And);
        if (offset is not null)
        {
            il.Emit(OpCodes.Dup);
            il.Emit(OpCodes.Stloc, offset);
        }

        il.Emit(OpCodes.Ldloc, _gpr[4]);
        il.Emit(OpCodes.Ldc_I8, (long)~_stackMask);
        il.Emit(OpCodes.And);
        il.Emit(OpCodes.Or);
        il.Emit(OpCodes.Stloc, rsp);
    }

    /// <summary>A local holding the offset of the top of the stack in SS (RSP itself in 64-bit mode).</summary>
    private LocalBuilder StackOffset()
    {
        if (_stackMask == ulong.MaxValue)
        {
            return _gpr[4];
        }

        LocalBuilder t = Temp();
        _il.Emit(OpCodes.Ldloc, _gpr[4]);
        _il.Emit(OpCodes.Ldc_I8, (long)_stackMask);
        _il.Emit(OpCodes.And);
        _il.Emit(OpCodes.Stloc, t);
        return t;
    }

    /// <summary>Runs instruction <paramref name="i"/> in the interpreter with the registers spilled around it.</summary>
    private bool EmitFallback(int i)
    {
        ILGenerator il = _il;
        MaterializeStatic();
        StoreRegisters(dirtyOnly: true);
        il.Emit(OpCodes.Ldloc, _state);
        il.Emit(OpCodes.Ldloc, _fl);
        il.Emit(OpCodes.Stfld, s_rflags);
        il.Emit(OpCodes.Ldloc, _state);
        il.Emit(OpCodes.Ldc_I8, (long)(_ins[i].IP & _ripMask));
        il.Emit(OpCodes.Stfld, s_rip);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldc_I4, i);
        bool last = _local == _blockCount[_block] - 1;
        il.Emit(OpCodes.Ldc_I4, ChangesEntryState(ref _ins[i]) ? TcgCpu.JitStepEnds
            : !last ? TcgCpu.JitStepContinues
            : _ins[i].Mnemonic is Mnemonic.In or Mnemonic.Out ? TcgCpu.JitStepPortIo
            : TcgCpu.JitStepEnds);
        il.Emit(OpCodes.Call, s_step);
        EmitDropStackPage();
        int done0 = _local;
        LocalBuilder st = TempInt();
        il.Emit(OpCodes.Stloc, st);
        Label cont = il.DefineLabel(), done = il.DefineLabel();
        il.Emit(OpCodes.Ldloc, st);
        il.Emit(OpCodes.Brfalse, cont);
        // 1: the interpreter ended the region after the instruction; 2: it faulted (RIP and state are as it left them).
        il.Emit(OpCodes.Ldloc, _exec);
        il.Emit(OpCodes.Ldc_I8, (long)done0);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Ldloc, st);
        il.Emit(OpCodes.Ldc_I4_2);
        il.Emit(OpCodes.Ceq);
        il.Emit(OpCodes.Brtrue, done);
        il.Emit(OpCodes.Ldc_I8, 1L);
        il.Emit(OpCodes.Add);
        il.MarkLabel(done);
        il.Emit(OpCodes.Ret);
        il.MarkLabel(cont);
        LoadRegisters();
        Array.Clear(_dirty);
        il.Emit(OpCodes.Ldloc, _state);
        il.Emit(OpCodes.Ldfld, s_rflags);
        il.Emit(OpCodes.Stloc, _fl);
        _pending = JitFlags.None;
        return true; // the region goes on after a port access (JitStepPortIo) or an instruction inside its block

    }

    // ------------------------------------------------------------------ temporaries

    private LocalBuilder Temp()
    {
        return _freeTemps.Count > 0 ? _freeTemps.Pop() : _il.DeclareLocal(typeof(ulong));
    }

    private void Free(LocalBuilder l) => _freeTemps.Push(l);

    private LocalBuilder? _tempInt;

    private LocalBuilder TempInt() => _tempInt ??= _il.DeclareLocal(typeof(int));

    // ------------------------------------------------------------------ registers and operands

    private readonly record struct RegInfo(int Index, int Size, bool High);

    private static RegInfo Info(Register r)
    {
        bool high = r is Register.AH or Register.CH or Register.DH or Register.BH;
        int index = high ? r - Register.AH : r.GetFullRegister() - Register.RAX;
        return new RegInfo(index, r.GetSize(), high);
    }

    private static ulong SizeMask(int size) => size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    private void EmitGetReg(Register r)
    {
        RegInfo info = Info(r);
        _il.Emit(OpCodes.Ldloc, _gpr[info.Index]);
        switch (info.Size)
        {
            case 8:
                break;
            case 4:
                _il.Emit(OpCodes.Conv_U4);
                _il.Emit(OpCodes.Conv_U8);
                break;
            case 2:
                _il.Emit(OpCodes.Conv_U2);
                _il.Emit(OpCodes.Conv_U8);
                break;
            default:
                if (info.High)
                {
                    _il.Emit(OpCodes.Ldc_I4_8);
                    _il.Emit(OpCodes.Shr_Un);
                }

                _il.Emit(OpCodes.Conv_U1);
                _il.Emit(OpCodes.Conv_U8);
                break;
        }
    }

    /// <summary>Stores the ulong on the stack into <paramref name="r"/> with the x86-64 width rules.</summary>
    private void EmitSetReg(Register r)
    {
        RegInfo info = Info(r);
        LocalBuilder g = _gpr[info.Index];
        _dirty[info.Index] = true;
        switch (info.Size)
        {
            case 8:
                _il.Emit(OpCodes.Stloc, g);
                return;
            case 4:
                _il.Emit(OpCodes.Conv_U4);
                _il.Emit(OpCodes.Conv_U8);
                _il.Emit(OpCodes.Stloc, g);
                return;
        }

        ulong mask = info.Size == 2 ? 0xFFFFUL : 0xFFUL;
        LocalBuilder t = Temp();
        _il.Emit(OpCodes.Stloc, t);
        _il.Emit(OpCodes.Ldloc, g);
        _il.Emit(OpCodes.Ldc_I8, (long)~(info.High ? 0xFF00UL : mask));
        _il.Emit(OpCodes.And);
        _il.Emit(OpCodes.Ldloc, t);
        _il.Emit(OpCodes.Ldc_I8, (long)mask);
        _il.Emit(OpCodes.And);
        if (info.High)
        {
            _il.Emit(OpCodes.Ldc_I4_8);
            _il.Emit(OpCodes.Shl);
        }

        _il.Emit(OpCodes.Or);
        _il.Emit(OpCodes.Stloc, g);
        Free(t);
    }

    private static int AddrSize(ref Instruction ins)
    {
        int s = ins.MemoryBase == Register.RIP || ins.MemoryBase.IsGPR64() || ins.MemoryIndex.IsGPR64()
            ? 8
            : ins.MemoryBase == Register.EIP || ins.MemoryBase.IsGPR32() || ins.MemoryIndex.IsGPR32()
                ? 4
                : ins.MemoryBase.IsGPR16() || ins.MemoryIndex.IsGPR16() ? 2 : 0;
        if (s == 0)
        {
            s = ins.MemoryDisplSize switch
            {
                2 => 2,
                4 => 4,
                8 => 8,
                _ => ins.CodeSize switch { CodeSize.Code16 => 2, CodeSize.Code32 => 4, _ => 8 },
            };
        }

        return s;
    }

    /// <summary>Pushes the effective address (segment offset) of the memory operand, as TcgCpu.EffectiveAddress computes it.</summary>
    private void EmitEffectiveAddress(ref Instruction ins)
    {
        Register b = ins.MemoryBase;
        if (b is Register.RIP or Register.EIP)
        {
            _il.Emit(OpCodes.Ldc_I8, (long)(b == Register.EIP ? (uint)ins.MemoryDisplacement64 : ins.MemoryDisplacement64));
            return;
        }

        _il.Emit(OpCodes.Ldc_I8, (long)ins.MemoryDisplacement64);
        if (b != Register.None)
        {
            EmitGetReg(b);
            _il.Emit(OpCodes.Add);
        }

        Register x = ins.MemoryIndex;
        if (x != Register.None)
        {
            EmitGetReg(x);
            if (ins.MemoryIndexScale != 1)
            {
                _il.Emit(OpCodes.Ldc_I4, ins.MemoryIndexScale switch { 2 => 1, 4 => 2, _ => 3 });
                _il.Emit(OpCodes.Shl);
            }

            _il.Emit(OpCodes.Add);
        }

        switch (AddrSize(ref ins))
        {
            case 2:
                _il.Emit(OpCodes.Conv_U2);
                _il.Emit(OpCodes.Conv_U8);
                break;
            case 4:
                _il.Emit(OpCodes.Conv_U4);
                _il.Emit(OpCodes.Conv_U8);
                break;
        }
    }

    private static int SegIndex(ref Instruction ins) => ins.MemorySegment - Register.ES;

    private bool InlineMemory(int seg) => _bitness == 64 && seg is not (State.Seg.FS or State.Seg.GS);

    /// <summary>
    /// Outside 64-bit mode: per segment the region accesses inline, locals with its base and the highest offset an
    /// inline access may reach (-1: every access takes the interpreter's path), read at region entry
    /// (<see cref="TcgCpu.JitSegmentLimit"/>). Segment registers cannot change inside a region: instructions that load
    /// them end it.
    /// </summary>
    private readonly LocalBuilder?[] _segBase = new LocalBuilder?[6], _segLimit = new LocalBuilder?[6];

    /// <summary>
    /// Emits the checks of an inline access and returns the local holding its linear address (the offset itself in
    /// 64-bit mode), or null when this access always goes through the interpreter's accessors.
    /// </summary>
    private LocalBuilder? InlineLinear(int seg, LocalBuilder ea, int size, Label slow)
    {
        if (InlineMemory(seg))
        {
            return ea;
        }

        if (_bitness == 64 || _segLimit[seg] is not { } limit)
        {
            return null;
        }

        ILGenerator il = _il;
        il.Emit(OpCodes.Ldloc, ea);
        il.Emit(OpCodes.Ldc_I8, (long)(size - 1));
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Ldloc, limit);
        il.Emit(OpCodes.Bgt, slow);
        LocalBuilder lin = Temp();
        il.Emit(OpCodes.Ldloc, _segBase[seg]!);
        il.Emit(OpCodes.Ldloc, ea);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Ldc_I8, 0xFFFF_FFFFL);
        il.Emit(OpCodes.And);
        il.Emit(OpCodes.Stloc, lin);
        return lin;
    }

    /// <summary>
    /// Whether instruction <paramref name="ins"/> (run by the interpreter) may change what the region read at its
    /// entry: a segment register outside 64-bit mode, or EFLAGS.AC (SMAP); the region ends after it.
    /// </summary>
    private bool ChangesEntryState(ref Instruction ins) =>
        ins.Mnemonic is Mnemonic.Stac or Mnemonic.Clac ||
        (_bitness != 64 &&
         (ins.Mnemonic is Mnemonic.Lds or Mnemonic.Les or Mnemonic.Lfs or Mnemonic.Lgs or Mnemonic.Lss ||
          (ins.OpCount > 0 && ins.Op0Kind == OpKind.Register && ins.Op0Register.IsSegmentRegister())));

    private void DeclareSegments()
    {
        if (_bitness == 64)
        {
            return;
        }

        for (int i = 0; i < _count; i++)
        {
            if (!_native[i])
            {
                continue;
            }

            ref Instruction ins = ref _ins[i];
            if (ins.Mnemonic is Mnemonic.Push or Mnemonic.Pop or Mnemonic.Call or Mnemonic.Ret)
            {
                DeclareSegment(State.Seg.SS);
            }

            for (int n = 0; n < ins.OpCount; n++)
            {
                if (ins.GetOpKind(n) == OpKind.Memory && ins.Mnemonic != Mnemonic.Lea)
                {
                    DeclareSegment(SegIndex(ref ins));
                }
            }
        }
    }

    private void DeclareSegment(int seg)
    {
        if (_segLimit[seg] is not null || seg is < 0 or > 5)
        {
            return;
        }

        ILGenerator il = _il;
        _segBase[seg] = il.DeclareLocal(typeof(ulong));
        _segLimit[seg] = il.DeclareLocal(typeof(long));
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4, seg);
        il.Emit(OpCodes.Call, s_segBase);
        il.Emit(OpCodes.Stloc, _segBase[seg]!);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4, seg);
        il.Emit(OpCodes.Call, s_segLimit);
        il.Emit(OpCodes.Stloc, _segLimit[seg]!);
    }

    /// <summary>Loads the TLB entry for the linear address in <paramref name="lin"/> and branches to <paramref name="slow"/> unless it maps RAM for this access.</summary>
    private void EmitTlbHit(LocalBuilder tlb, LocalBuilder lin, int size, Label slow)
    {
        ILGenerator il = _il;
        // &tlb[(lin >> 12) & (Size - 1)] from a reference to element 0 (the mask keeps it in the array; no bounds check).
        il.Emit(OpCodes.Ldloc, tlb);
        il.Emit(OpCodes.Ldloc, lin);
        il.Emit(OpCodes.Ldc_I4, 12);
        il.Emit(OpCodes.Shr_Un);
        il.Emit(OpCodes.Conv_I4);
        il.Emit(OpCodes.Ldc_I4, Tlb.Size - 1);
        il.Emit(OpCodes.And);
        il.Emit(OpCodes.Sizeof, typeof(TlbEntry));
        il.Emit(OpCodes.Mul);
        il.Emit(OpCodes.Conv_I);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Stloc, _entry);
        // Tag == page + 1 (a matching tag implies a canonical address: only canonical addresses are ever filled in).
        il.Emit(OpCodes.Ldloc, _entry);
        il.Emit(OpCodes.Ldfld, s_tag);
        il.Emit(OpCodes.Ldloc, lin);
        il.Emit(OpCodes.Ldc_I4, 12);
        il.Emit(OpCodes.Shr_Un);
        il.Emit(OpCodes.Ldc_I8, 1L);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Bne_Un, slow);
        il.Emit(OpCodes.Ldloc, _entry);
        il.Emit(OpCodes.Ldfld, s_host);
        il.Emit(OpCodes.Brfalse, slow);
        // Privilege as ReadLinear checks it: CPL 3 needs User; a supervisor access to a user page needs SMAP's consent.
        Label allowed = il.DefineLabel(), supervisor = il.DefineLabel();
        il.Emit(OpCodes.Ldloc, _supAll);
        il.Emit(OpCodes.Brtrue, allowed);
        il.Emit(OpCodes.Ldloc, _sup);
        il.Emit(OpCodes.Brtrue, supervisor);
        il.Emit(OpCodes.Ldloc, _entry);
        il.Emit(OpCodes.Ldfld, s_user);
        il.Emit(OpCodes.Brfalse, slow);
        il.Emit(OpCodes.Br, allowed);
        il.MarkLabel(supervisor);
        il.Emit(OpCodes.Ldloc, _entry);
        il.Emit(OpCodes.Ldfld, s_userPage);
        il.Emit(OpCodes.Brtrue, slow);
        il.MarkLabel(allowed);
        if (size > 1)
        {
            il.Emit(OpCodes.Ldloc, lin);
            il.Emit(OpCodes.Conv_I4);
            il.Emit(OpCodes.Ldc_I4, 0xFFF);
            il.Emit(OpCodes.And);
            il.Emit(OpCodes.Ldc_I4, 0x1000 - size);
            il.Emit(OpCodes.Bgt, slow);
        }

        // Host pointer of the byte.
        il.Emit(OpCodes.Ldloc, _entry);
        il.Emit(OpCodes.Ldfld, s_host);
        il.Emit(OpCodes.Ldloc, lin);
        il.Emit(OpCodes.Conv_I4);
        il.Emit(OpCodes.Ldc_I4, 0xFFF);
        il.Emit(OpCodes.And);
        il.Emit(OpCodes.Conv_I);
        il.Emit(OpCodes.Add);
    }

    /// <summary>Reads <paramref name="size"/> bytes at segment <paramref name="seg"/> offset <paramref name="ea"/> into a new temporary (or branches to the fault stub).</summary>
    private LocalBuilder EmitRead(int seg, LocalBuilder ea, int size)
    {
        ILGenerator il = _il;
        LocalBuilder value = Temp();
        Label slow = il.DefineLabel(), done = il.DefineLabel();
        if (InlineLinear(seg, ea, size, slow) is { } lin)
        {
            EmitTlbHit(_tlbRead, lin, size, slow);
            if (lin != ea)
            {
                Free(lin);
            }

            switch (size)
            {
                case 1: il.Emit(OpCodes.Ldind_U1); break;
                case 2: il.Emit(OpCodes.Unaligned, (byte)1); il.Emit(OpCodes.Ldind_U2); break;
                case 4: il.Emit(OpCodes.Unaligned, (byte)1); il.Emit(OpCodes.Ldind_U4); break;
                default: il.Emit(OpCodes.Unaligned, (byte)1); il.Emit(OpCodes.Ldind_I8); break;
            }

            if (size < 8)
            {
                il.Emit(OpCodes.Conv_U8);
            }

            il.Emit(OpCodes.Stloc, value);
            il.Emit(OpCodes.Br, done);
        }

        il.MarkLabel(slow);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4, seg);
        il.Emit(OpCodes.Ldloc, ea);
        il.Emit(OpCodes.Ldc_I4, size);
        il.Emit(OpCodes.Ldloca, _slowValue);
        il.Emit(OpCodes.Call, s_readSlow);
        il.Emit(OpCodes.Brfalse, FaultStub());
        il.Emit(OpCodes.Ldloc, _slowValue);
        il.Emit(OpCodes.Stloc, value);
        EmitDropStackPage();
        il.MarkLabel(done);
        return value;
    }

    private void EmitWrite(int seg, LocalBuilder ea, int size, LocalBuilder value)
    {
        ILGenerator il = _il;
        Label slow = il.DefineLabel(), done = il.DefineLabel();
        if (InlineLinear(seg, ea, size, slow) is { } lin)
        {
            EmitTlbHit(_tlbWrite, lin, size, slow);
            if (lin != ea)
            {
                Free(lin);
            }

            il.Emit(OpCodes.Ldloc, value);
            switch (size)
            {
                case 1: il.Emit(OpCodes.Conv_U1); il.Emit(OpCodes.Stind_I1); break;
                case 2: il.Emit(OpCodes.Conv_U2); il.Emit(OpCodes.Unaligned, (byte)1); il.Emit(OpCodes.Stind_I2); break;
                case 4: il.Emit(OpCodes.Conv_U4); il.Emit(OpCodes.Unaligned, (byte)1); il.Emit(OpCodes.Stind_I4); break;
                default: il.Emit(OpCodes.Unaligned, (byte)1); il.Emit(OpCodes.Stind_I8); break;
            }

            // Code-page tracking: a page that holds code gets its generation bumped (and ends the region if it is this
            // one); a data page costs two loads.
            if (s_holdsCode is not null)
            {
                il.Emit(OpCodes.Ldloc, _entry);
                il.Emit(OpCodes.Ldfld, s_physPage);
                il.Emit(OpCodes.Ldloc, _holds);
                il.Emit(OpCodes.Ldlen);
                il.Emit(OpCodes.Conv_U8);
                il.Emit(OpCodes.Bge_Un, done);
                il.Emit(OpCodes.Ldloc, _holds);
                il.Emit(OpCodes.Ldloc, _entry);
                il.Emit(OpCodes.Ldfld, s_physPage);
                il.Emit(OpCodes.Conv_I);
                il.Emit(OpCodes.Ldelem_U1);
                il.Emit(OpCodes.Brfalse, done);
            }

            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldloc, _entry);
            il.Emit(OpCodes.Ldfld, s_physPage);
            il.Emit(OpCodes.Call, s_noteWrite);
            EmitNoteEndBlock();
            il.Emit(OpCodes.Br, done);
        }

        il.MarkLabel(slow);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4, seg);
        il.Emit(OpCodes.Ldloc, ea);
        il.Emit(OpCodes.Ldc_I4, size);
        il.Emit(OpCodes.Ldloc, value);
        il.Emit(OpCodes.Call, s_writeSlow);
        il.Emit(OpCodes.Brfalse, FaultStub());
        EmitNoteEndBlock();
        EmitDropStackPage();
        il.MarkLabel(done);
    }

    /// <summary>
    /// A stack access (PUSH/POP/CALL/RET) at SS offset <paramref name="offset"/>: the segment checks of
    /// <see cref="InlineLinear"/>, then, when the linear page is the cached stack page, the host access right away. The
    /// cache is filled from a write-TLB hit (a writable page is readable with the same privilege) and dropped after
    /// every interpreter call (which may flush or refill the TLB). Everything else (a TLB miss, an access that crosses
    /// the page or the segment limit, a write to a page holding code) goes to a stub that has the interpreter run the
    /// instruction and ends the region: no call on a path that comes back, so RyuJIT can keep the guest registers in
    /// caller-saved host registers (with a slow-path call that returned into the region they lived in the frame). Returns the value
    /// read (a new temporary) or null for a write.
    /// </summary>
    private LocalBuilder? EmitStackAccess(LocalBuilder offset, int size, LocalBuilder? value)
    {
        const int ss = State.Seg.SS;
        if (_stkTag is null)
        {
            if (value is null)
            {
                return EmitRead(ss, offset, size);
            }

            EmitWrite(ss, offset, size, value);
            return null;
        }

        ILGenerator il = _il;
        LocalBuilder? result = value is null ? Temp() : null;
        Label slow = StackExit(), fill = il.DefineLabel(), hit = il.DefineLabel(), done = il.DefineLabel();
        LocalBuilder lin = InlineLinear(ss, offset, size, slow)!;
        il.Emit(OpCodes.Ldloc, lin);
        il.Emit(OpCodes.Ldc_I4, 12);
        il.Emit(OpCodes.Shr_Un);
        il.Emit(OpCodes.Ldc_I8, 1L);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Ldloc, _stkTag);
        il.Emit(OpCodes.Bne_Un, fill);
        il.MarkLabel(hit);
        il.Emit(OpCodes.Ldloc, lin);
        il.Emit(OpCodes.Conv_I4);
        il.Emit(OpCodes.Ldc_I4, 0xFFF);
        il.Emit(OpCodes.And);
        il.Emit(OpCodes.Ldc_I4, 0x1000 - size);
        il.Emit(OpCodes.Bgt, slow);
        if (value is not null)
        {
            // A page holding code: the interpreter's write bumps its generation (and ends the block on its own page).
            il.Emit(OpCodes.Ldloc, _stkHolds!);
            il.Emit(OpCodes.Ldind_U1);
            il.Emit(OpCodes.Brtrue, slow);
        }

        il.Emit(OpCodes.Ldloc, _stkHost!);
        il.Emit(OpCodes.Ldloc, lin);
        il.Emit(OpCodes.Conv_I4);
        il.Emit(OpCodes.Ldc_I4, 0xFFF);
        il.Emit(OpCodes.And);
        il.Emit(OpCodes.Conv_I);
        il.Emit(OpCodes.Add);
        if (value is null)
        {
            switch (size)
            {
                case 2: il.Emit(OpCodes.Unaligned, (byte)1); il.Emit(OpCodes.Ldind_U2); break;
                case 4: il.Emit(OpCodes.Unaligned, (byte)1); il.Emit(OpCodes.Ldind_U4); break;
                default: il.Emit(OpCodes.Unaligned, (byte)1); il.Emit(OpCodes.Ldind_I8); break;
            }

            if (size < 8)
            {
                il.Emit(OpCodes.Conv_U8);
            }

            il.Emit(OpCodes.Stloc, result!);
        }
        else
        {
            il.Emit(OpCodes.Ldloc, value);
            switch (size)
            {
                case 2: il.Emit(OpCodes.Conv_U2); il.Emit(OpCodes.Unaligned, (byte)1); il.Emit(OpCodes.Stind_I2); break;
                case 4: il.Emit(OpCodes.Conv_U4); il.Emit(OpCodes.Unaligned, (byte)1); il.Emit(OpCodes.Stind_I4); break;
                default: il.Emit(OpCodes.Unaligned, (byte)1); il.Emit(OpCodes.Stind_I8); break;
            }
        }

        il.Emit(OpCodes.Br, done);

        // Fill: the write-TLB entry of the page (tag, RAM, privilege as EmitTlbHit checks them).
        il.MarkLabel(fill);
        EmitTlbHit(_tlbWrite, lin, 1, slow);
        il.Emit(OpCodes.Pop);
        il.Emit(OpCodes.Ldloc, _entry);
        il.Emit(OpCodes.Ldfld, s_tag);
        il.Emit(OpCodes.Stloc, _stkTag);
        il.Emit(OpCodes.Ldloc, _entry);
        il.Emit(OpCodes.Ldfld, s_host);
        il.Emit(OpCodes.Stloc, _stkHost!);
        il.Emit(OpCodes.Ldloc, _entry);
        il.Emit(OpCodes.Ldfld, s_physPage);
        il.Emit(OpCodes.Stloc, _stkPhys!);
        Label untracked = il.DefineLabel(), filled = il.DefineLabel();
        il.Emit(OpCodes.Ldloc, _stkPhys!);
        il.Emit(OpCodes.Ldloc, _holds);
        il.Emit(OpCodes.Ldlen);
        il.Emit(OpCodes.Conv_U8);
        il.Emit(OpCodes.Bge_Un, untracked);
        il.Emit(OpCodes.Ldloc, _holds);
        il.Emit(OpCodes.Ldloc, _stkPhys!);
        il.Emit(OpCodes.Conv_I);
        il.Emit(OpCodes.Ldelema, typeof(byte));
        il.Emit(OpCodes.Stloc, _stkHolds!);
        il.Emit(OpCodes.Br, filled);
        il.MarkLabel(untracked);
        il.Emit(OpCodes.Ldsfld, s_untrackedField);
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Ldelema, typeof(byte));
        il.Emit(OpCodes.Stloc, _stkHolds!);
        il.MarkLabel(filled);
        il.Emit(OpCodes.Br, hit);

        il.MarkLabel(done);
        if (lin != offset)
        {
            Free(lin);
        }

        return result;
    }

    /// <summary>
    /// The label of the current instruction's interpreter stub, for a stack access the inline path does not serve:
    /// taken before the instruction changed anything.
    /// </summary>
    private Label StackExit()
    {
        if (!_stackExits.TryGetValue(_current, out (Label Label, int Done) stub))
        {
            stub = (_il.DefineLabel(), _local);
            _stackExits[_current] = stub;
        }

        return stub.Label;
    }

    private readonly Dictionary<int, (Label Label, int Done)> _stackExits = [];

    /// <summary>Per stub: mark its label, store the instruction index and the retired count, branch to <paramref name="tail"/>.</summary>
    private void EmitExitStubs(Dictionary<int, (Label Label, int Done)> stubs, Label tail)
    {
        foreach ((int index, (Label label, int done)) in stubs)
        {
            _il.MarkLabel(label);
            _il.Emit(OpCodes.Ldc_I4, index);
            _il.Emit(OpCodes.Stloc, _exitIdx);
            _il.Emit(OpCodes.Ldc_I4, done);
            _il.Emit(OpCodes.Stloc, _exitDone);
            _il.Emit(OpCodes.Br, tail);
        }
    }

    /// <summary>Forgets the cached stack page (after an interpreter call, which may have changed the TLB).</summary>
    private void EmitDropStackPage()
    {
        if (_stkTag is not null)
        {
            _il.Emit(OpCodes.Ldc_I8, 0L);
            _il.Emit(OpCodes.Stloc, _stkTag);
        }
    }

    /// <summary>Copies the interpreter's end-of-block request (set by writes to the current code page) into a local the instruction's end tests.</summary>
    private void EmitNoteEndBlock()
    {
        _il.Emit(OpCodes.Ldarg_1);
        _il.Emit(OpCodes.Ldfld, s_endBlock);
        _il.Emit(OpCodes.Stloc, _smc);
    }

    /// <summary>Reads operand <paramref name="n"/> into a new temporary (memory through <paramref name="ea"/>).</summary>
    private LocalBuilder ReadOperand(ref Instruction ins, int n, int size, LocalBuilder? ea)
    {
        switch (ins.GetOpKind(n))
        {
            case OpKind.Register:
            {
                LocalBuilder t = Temp();
                EmitGetReg(ins.GetOpRegister(n));
                _il.Emit(OpCodes.Stloc, t);
                return t;
            }

            case OpKind.Memory:
                return EmitRead(SegIndex(ref ins), ea!, size);
            default:
            {
                LocalBuilder t = Temp();
                _il.Emit(OpCodes.Ldc_I8, (long)(ins.GetImmediate(n) & SizeMask(size)));
                _il.Emit(OpCodes.Stloc, t);
                return t;
            }
        }
    }

    /// <summary>Writes <paramref name="value"/> to operand 0; returns true when that was a memory write.</summary>
    private bool WriteOperand0(ref Instruction ins, int size, LocalBuilder value, LocalBuilder? ea)
    {
        if (ins.Op0Kind == OpKind.Register)
        {
            _il.Emit(OpCodes.Ldloc, value);
            EmitSetReg(ins.Op0Register);
            return false;
        }

        EmitWrite(SegIndex(ref ins), ea!, size, value);
        return true;
    }

    private LocalBuilder? EaIfMemory(ref Instruction ins)
    {
        for (int n = 0; n < ins.OpCount; n++)
        {
            if (ins.GetOpKind(n) == OpKind.Memory)
            {
                LocalBuilder ea = Temp();
                EmitEffectiveAddress(ref ins);
                _il.Emit(OpCodes.Stloc, ea);
                return ea;
            }
        }

        return null;
    }

    private static int OpSize(ref Instruction ins, int n) =>
        ins.GetOpKind(n) == OpKind.Register ? Info(ins.GetOpRegister(n)).Size : ins.MemorySize.GetSize();

    // ------------------------------------------------------------------ flags

    private void SetPending(int kind, int bits, LocalBuilder? a, LocalBuilder? b, LocalBuilder? c)
    {
        ILGenerator il = _il;
        il.Emit(OpCodes.Ldc_I4, JitFlags.Encode(kind, bits));
        il.Emit(OpCodes.Stloc, _lop);
        if (a is not null)
        {
            il.Emit(OpCodes.Ldloc, a);
            il.Emit(OpCodes.Stloc, _la);
        }

        if (b is not null)
        {
            il.Emit(OpCodes.Ldloc, b);
            il.Emit(OpCodes.Stloc, _lb);
        }

        if (c is not null)
        {
            il.Emit(OpCodes.Ldloc, c);
            il.Emit(OpCodes.Stloc, _lc);
        }

        _pending = kind;
        _pendingBits = bits;
    }

    /// <summary>Computes the pending flags into <c>fl</c> (inline ALU code when the operation is known here).</summary>
    private void MaterializeStatic()
    {
        ILGenerator il = _il;
        if (_pending == JitFlags.None)
        {
            return;
        }

        // The shared routine (itself the ALU library's code), with the operation as a constant when it is known here.
        // By value: a local whose address is taken is never kept in a register, and RFLAGS is read everywhere.
        il.Emit(OpCodes.Ldloc, _fl);
        if (_pending == Dynamic)
        {
            il.Emit(OpCodes.Ldloc, _lop);
        }
        else
        {
            il.Emit(OpCodes.Ldc_I4, JitFlags.Encode(_pending, _pendingBits));
        }

        il.Emit(OpCodes.Ldloc, _la);
        il.Emit(OpCodes.Ldloc, _lb);
        il.Emit(OpCodes.Ldloc, _lc);
        il.Emit(OpCodes.Call, s_materialize);
        il.Emit(OpCodes.Stloc, _fl);
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Stloc, _lop);
        _pending = JitFlags.None;
    }

    private void EmitMask(int bits)
    {
        if (bits < 64)
        {
            _il.Emit(OpCodes.Ldc_I8, (long)SizeMask(bits / 8));
            _il.Emit(OpCodes.And);
        }
    }

    private void EmitSignExtend(int bits)
    {
        switch (bits)
        {
            case 8: _il.Emit(OpCodes.Conv_I1); _il.Emit(OpCodes.Conv_I8); break;
            case 16: _il.Emit(OpCodes.Conv_I2); _il.Emit(OpCodes.Conv_I8); break;
            case 32: _il.Emit(OpCodes.Conv_I4); _il.Emit(OpCodes.Conv_I8); break;
        }
    }

    /// <summary>Pushes the current CF (0 or 1, as a ulong).</summary>
    private void EmitCarry()
    {
        ILGenerator il = _il;
        int bits = _pendingBits;
        switch (_pending)
        {
            case JitFlags.Sub:
                il.Emit(OpCodes.Ldloc, _la);
                EmitMask(bits);
                il.Emit(OpCodes.Ldloc, _lb);
                EmitMask(bits);
                il.Emit(OpCodes.Clt_Un);
                il.Emit(OpCodes.Conv_U8);
                return;
            case JitFlags.Add:
                il.Emit(OpCodes.Ldloc, _la);
                il.Emit(OpCodes.Ldloc, _lb);
                il.Emit(OpCodes.Add);
                EmitMask(bits);
                il.Emit(OpCodes.Ldloc, _la);
                EmitMask(bits);
                il.Emit(OpCodes.Clt_Un);
                il.Emit(OpCodes.Conv_U8);
                return;
            case JitFlags.Logic:
                il.Emit(OpCodes.Ldc_I8, 0L);
                return;
            case JitFlags.Shr:
            case JitFlags.Sar:
            case JitFlags.Shl when bits < 64:
                // Shr/Sar: the last bit shifted out is bit n-1 of the (sign-extended) operand; Shl (under 64 bits):
                // bit `bits` of the operand shifted left by n (0 when n exceeds the width).
                il.Emit(OpCodes.Ldloc, _la);
                if (_pending == JitFlags.Shl)
                {
                    EmitMask(bits);
                    il.Emit(OpCodes.Ldc_I4, _pendingCount);
                    il.Emit(OpCodes.Shl);
                    il.Emit(OpCodes.Ldc_I4, bits);
                    il.Emit(OpCodes.Shr_Un);
                }
                else if (_pending == JitFlags.Shr)
                {
                    EmitMask(bits);
                    il.Emit(OpCodes.Ldc_I4, _pendingCount - 1);
                    il.Emit(OpCodes.Shr_Un);
                }
                else
                {
                    EmitSignExtend(bits);
                    il.Emit(OpCodes.Ldc_I4, _pendingCount - 1);
                    il.Emit(OpCodes.Shr);
                }

                il.Emit(OpCodes.Ldc_I8, 1L);
                il.Emit(OpCodes.And);
                return;
            case JitFlags.Inc:
            case JitFlags.Dec:
                il.Emit(OpCodes.Ldloc, _lc);
                return;
            case Dynamic:
                il.Emit(OpCodes.Ldloc, _fl);
                il.Emit(OpCodes.Ldloc, _lop);
                il.Emit(OpCodes.Ldloc, _la);
                il.Emit(OpCodes.Ldloc, _lb);
                il.Emit(OpCodes.Ldloc, _lc);
                il.Emit(OpCodes.Call, s_carry);
                return;
            default:
                MaterializeStatic();
                il.Emit(OpCodes.Ldloc, _fl);
                il.Emit(OpCodes.Ldc_I8, 1L);
                il.Emit(OpCodes.And);
                return;
        }
    }

    /// <summary>Pushes the pending result (masked) for kinds that have one.</summary>
    private void EmitPendingResult()
    {
        ILGenerator il = _il;
        switch (_pending)
        {
            case JitFlags.Sub:
                il.Emit(OpCodes.Ldloc, _la);
                il.Emit(OpCodes.Ldloc, _lb);
                il.Emit(OpCodes.Sub);
                break;
            case JitFlags.Add:
                il.Emit(OpCodes.Ldloc, _la);
                il.Emit(OpCodes.Ldloc, _lb);
                il.Emit(OpCodes.Add);
                break;
            case JitFlags.Inc:
            case JitFlags.Dec:
                il.Emit(OpCodes.Ldloc, _la);
                il.Emit(OpCodes.Ldc_I8, 1L);
                il.Emit(_pending == JitFlags.Inc ? OpCodes.Add : OpCodes.Sub);
                break;
            case JitFlags.Shl:
            case JitFlags.Shr:
            case JitFlags.Sar:
                EmitShiftValue(_pending, _la, _pendingCount, _pendingBits);
                return;
            default:
                il.Emit(OpCodes.Ldloc, _la);
                break;
        }

        EmitMask(_pendingBits);
    }

    private void EmitNot()
    {
        _il.Emit(OpCodes.Ldc_I4_0);
        _il.Emit(OpCodes.Ceq);
    }

    /// <summary>Pushes condition <paramref name="cc"/> as an int32 0/1, from the lazy operands where that is cheap.</summary>
    private void EmitCondition(ConditionCode cc)
    {
        ILGenerator il = _il;
        int bits = _pendingBits;
        bool invert = cc is ConditionCode.ne or ConditionCode.ae or ConditionCode.a or ConditionCode.ge or ConditionCode.g or ConditionCode.ns;
        ConditionCode basic = cc switch
        {
            ConditionCode.ne => ConditionCode.e,
            ConditionCode.ae => ConditionCode.b,
            ConditionCode.a => ConditionCode.be,
            ConditionCode.ge => ConditionCode.l,
            ConditionCode.g => ConditionCode.le,
            ConditionCode.ns => ConditionCode.s,
            _ => cc,
        };
        bool done = true;
        switch (_pending, basic)
        {
            case (JitFlags.Sub, ConditionCode.e):
                il.Emit(OpCodes.Ldloc, _la);
                il.Emit(OpCodes.Ldloc, _lb);
                il.Emit(OpCodes.Xor);
                EmitMask(bits);
                il.Emit(OpCodes.Ldc_I8, 0L);
                il.Emit(OpCodes.Ceq);
                break;
            case (JitFlags.Sub, ConditionCode.b):
            case (JitFlags.Sub, ConditionCode.be):
                il.Emit(OpCodes.Ldloc, _la);
                EmitMask(bits);
                il.Emit(OpCodes.Ldloc, _lb);
                EmitMask(bits);
                if (basic == ConditionCode.b)
                {
                    il.Emit(OpCodes.Clt_Un);
                }
                else
                {
                    il.Emit(OpCodes.Cgt_Un);
                    EmitNot();
                }

                break;
            case (JitFlags.Sub, ConditionCode.l):
            case (JitFlags.Sub, ConditionCode.le):
                il.Emit(OpCodes.Ldloc, _la);
                EmitSignExtend(bits);
                il.Emit(OpCodes.Ldloc, _lb);
                EmitSignExtend(bits);
                if (basic == ConditionCode.l)
                {
                    il.Emit(OpCodes.Clt);
                }
                else
                {
                    il.Emit(OpCodes.Cgt);
                    EmitNot();
                }

                break;
            case (JitFlags.Logic, ConditionCode.b):
            case (JitFlags.Logic, ConditionCode.o):
                il.Emit(OpCodes.Ldc_I4_0);
                break;
            case (JitFlags.Logic, ConditionCode.l):
                EmitPendingResult();
                EmitSignExtend(bits);
                il.Emit(OpCodes.Ldc_I8, 0L);
                il.Emit(OpCodes.Clt);
                break;
            case (JitFlags.Logic, ConditionCode.le):
                EmitPendingResult();
                EmitSignExtend(bits);
                il.Emit(OpCodes.Ldc_I8, 0L);
                il.Emit(OpCodes.Cgt);
                EmitNot();
                break;
            case (JitFlags.Logic, ConditionCode.be):
            case (JitFlags.Add or JitFlags.Sub or JitFlags.Logic or JitFlags.Inc or JitFlags.Dec or JitFlags.Shl or JitFlags.Shr or JitFlags.Sar, ConditionCode.e):
                EmitPendingResult();
                il.Emit(OpCodes.Ldc_I8, 0L);
                il.Emit(OpCodes.Ceq);
                break;
            case (JitFlags.Add or JitFlags.Sub or JitFlags.Logic or JitFlags.Inc or JitFlags.Dec or JitFlags.Shl or JitFlags.Shr or JitFlags.Sar, ConditionCode.s):
                EmitPendingResult();
                il.Emit(OpCodes.Ldc_I4, bits - 1);
                il.Emit(OpCodes.Shr_Un);
                il.Emit(OpCodes.Conv_I4);
                il.Emit(OpCodes.Ldc_I4_1);
                il.Emit(OpCodes.And);
                break;
            case (JitFlags.Add or JitFlags.Shr or JitFlags.Sar, ConditionCode.b):
            case (JitFlags.Shl, ConditionCode.b) when bits < 64:
                EmitCarry();
                il.Emit(OpCodes.Conv_I4);
                break;
            default:
                done = false;
                break;
        }

        if (done)
        {
            if (invert)
            {
                EmitNot();
            }

            return;
        }

        MaterializeStatic();
        il.Emit(OpCodes.Ldloc, _fl);
        il.Emit(OpCodes.Ldc_I4, (int)cc);
        il.Emit(OpCodes.Call, s_condition);
    }

    // ------------------------------------------------------------------ instructions

    /// <summary>Emits instruction <paramref name="i"/>; returns false when control cannot fall through to the next one.</summary>
    private bool EmitNative(ref Instruction ins, int i)
    {
        ILGenerator il = _il;
        bool wroteMemory = false;
        switch (ins.Mnemonic)
        {
            case Mnemonic.Nop:
                break;
            case Mnemonic.Mov:
            {
                LocalBuilder? ea = EaIfMemory(ref ins);
                int sz = OpSize(ref ins, 0);
                LocalBuilder v = ReadOperand(ref ins, 1, sz, ea);
                wroteMemory = WriteOperand0(ref ins, sz, v, ea);
                Free(v);
                FreeEa(ea);
                break;
            }

            case Mnemonic.Movzx:
            case Mnemonic.Movsx:
            case Mnemonic.Movsxd:
            {
                LocalBuilder? ea = EaIfMemory(ref ins);
                int ss = OpSize(ref ins, 1);
                LocalBuilder v = ReadOperand(ref ins, 1, ss, ea);
                il.Emit(OpCodes.Ldloc, v);
                if (ins.Mnemonic != Mnemonic.Movzx)
                {
                    EmitSignExtend(ss * 8);
                }

                EmitSetReg(ins.Op0Register);
                Free(v);
                FreeEa(ea);
                break;
            }

            case Mnemonic.Lea:
                EmitEffectiveAddress(ref ins);
                EmitSetReg(ins.Op0Register);
                break;
            case Mnemonic.Add:
            case Mnemonic.Or:
            case Mnemonic.Adc:
            case Mnemonic.Sbb:
            case Mnemonic.And:
            case Mnemonic.Sub:
            case Mnemonic.Xor:
            case Mnemonic.Cmp:
            case Mnemonic.Test:
                wroteMemory = EmitBinary(ref ins);
                break;
            case Mnemonic.Inc:
            case Mnemonic.Dec:
            case Mnemonic.Neg:
            case Mnemonic.Not:
                wroteMemory = EmitUnary(ref ins);
                break;
            case Mnemonic.Shl:
            case Mnemonic.Sal:
            case Mnemonic.Shr:
            case Mnemonic.Sar:
            case Mnemonic.Rol:
            case Mnemonic.Ror:
            {
                LocalBuilder? ea = EaIfMemory(ref ins);
                int sz = OpSize(ref ins, 0);
                if (ins.Op1Kind == OpKind.Immediate8 && ins.Mnemonic is Mnemonic.Shl or Mnemonic.Sal or Mnemonic.Shr or Mnemonic.Sar)
                {
                    wroteMemory = EmitShiftImmediate(ref ins, sz, ea);
                    FreeEa(ea);
                    break;
                }

                LocalBuilder a = ReadOperand(ref ins, 0, sz, ea);
                LocalBuilder count = ReadOperand(ref ins, 1, 1, null);
                MaterializeStatic();
                LocalBuilder tf = _flRef, r = Temp();
                il.Emit(OpCodes.Ldloc, _fl);
                il.Emit(OpCodes.Stloc, tf);
                il.Emit(OpCodes.Ldc_I4, (int)(ins.Mnemonic == Mnemonic.Sal ? Mnemonic.Shl : ins.Mnemonic));
                il.Emit(OpCodes.Ldloc, a);
                il.Emit(OpCodes.Ldloc, count);
                il.Emit(OpCodes.Ldc_I4, sz * 8);
                il.Emit(OpCodes.Ldloca, tf);
                il.Emit(OpCodes.Call, s_shift);
                il.Emit(OpCodes.Stloc, r);
                wroteMemory = WriteOperand0(ref ins, sz, r, ea);
                il.Emit(OpCodes.Ldloc, tf);
                il.Emit(OpCodes.Stloc, _fl);
                Free(a);
                Free(count);
                Free(r);
                FreeEa(ea);
                break;
            }

            case Mnemonic.Imul:
            {
                LocalBuilder? ea = EaIfMemory(ref ins);
                int sz = OpSize(ref ins, 0);
                LocalBuilder a, b;
                if (ins.OpCount == 3)
                {
                    a = ReadOperand(ref ins, 1, sz, ea);
                    b = ReadOperand(ref ins, 2, sz, ea);
                }
                else
                {
                    a = Temp();
                    EmitGetReg(ins.Op0Register);
                    il.Emit(OpCodes.Stloc, a);
                    b = ReadOperand(ref ins, 1, sz, ea);
                }

                MaterializeStatic();
                il.Emit(OpCodes.Ldloc, _fl);
                il.Emit(OpCodes.Stloc, _flRef);
                il.Emit(OpCodes.Ldloc, a);
                il.Emit(OpCodes.Ldloc, b);
                il.Emit(OpCodes.Ldc_I4, sz * 8);
                il.Emit(OpCodes.Ldloca, _flRef);
                il.Emit(OpCodes.Call, s_imul);
                EmitSetReg(ins.Op0Register);
                il.Emit(OpCodes.Ldloc, _flRef);
                il.Emit(OpCodes.Stloc, _fl);
                Free(a);
                Free(b);
                FreeEa(ea);
                break;
            }

            case Mnemonic.Cmova:
            case Mnemonic.Cmovae:
            case Mnemonic.Cmovb:
            case Mnemonic.Cmovbe:
            case Mnemonic.Cmove:
            case Mnemonic.Cmovg:
            case Mnemonic.Cmovge:
            case Mnemonic.Cmovl:
            case Mnemonic.Cmovle:
            case Mnemonic.Cmovne:
            case Mnemonic.Cmovno:
            case Mnemonic.Cmovnp:
            case Mnemonic.Cmovns:
            case Mnemonic.Cmovo:
            case Mnemonic.Cmovp:
            case Mnemonic.Cmovs:
            {
                LocalBuilder? ea = EaIfMemory(ref ins);
                int sz = OpSize(ref ins, 0);
                LocalBuilder v = ReadOperand(ref ins, 1, sz, ea); // read (and possibly fault) even when the condition fails
                Label skip = il.DefineLabel(), end = il.DefineLabel();
                EmitCondition(ins.ConditionCode);
                il.Emit(OpCodes.Brfalse, skip);
                il.Emit(OpCodes.Ldloc, v);
                EmitSetReg(ins.Op0Register);
                il.Emit(OpCodes.Br, end);
                il.MarkLabel(skip);
                if (sz == 4)
                {
                    EmitGetReg(ins.Op0Register);
                    EmitSetReg(ins.Op0Register);
                }

                il.MarkLabel(end);
                Free(v);
                FreeEa(ea);
                break;
            }

            case Mnemonic.Seta:
            case Mnemonic.Setae:
            case Mnemonic.Setb:
            case Mnemonic.Setbe:
            case Mnemonic.Sete:
            case Mnemonic.Setg:
            case Mnemonic.Setge:
            case Mnemonic.Setl:
            case Mnemonic.Setle:
            case Mnemonic.Setne:
            case Mnemonic.Setno:
            case Mnemonic.Setnp:
            case Mnemonic.Setns:
            case Mnemonic.Seto:
            case Mnemonic.Setp:
            case Mnemonic.Sets:
            {
                LocalBuilder? ea = EaIfMemory(ref ins);
                LocalBuilder v = Temp();
                EmitCondition(ins.ConditionCode);
                il.Emit(OpCodes.Conv_U8);
                il.Emit(OpCodes.Stloc, v);
                wroteMemory = WriteOperand0(ref ins, 1, v, ea);
                Free(v);
                FreeEa(ea);
                break;
            }

            case Mnemonic.Push:
            {
                int sz = -ins.StackPointerIncrement;
                LocalBuilder? ea = EaIfMemory(ref ins);
                LocalBuilder v = ReadOperand(ref ins, 0, sz, ea);
                LocalBuilder rsp = Temp(), offset = Temp();
                EmitStackStep(-sz, rsp, offset);
                EmitStackAccess(offset, sz, v);
                il.Emit(OpCodes.Ldloc, rsp);
                il.Emit(OpCodes.Stloc, _gpr[4]);
                Free(offset);
                _dirty[4] = true;
                wroteMemory = true;
                Free(v);
                Free(rsp);
                FreeEa(ea);
                break;
            }

            case Mnemonic.Pop:
            {
                int sz = ins.StackPointerIncrement;
                LocalBuilder top = StackOffset();
                LocalBuilder v = EmitStackAccess(top, sz, null)!;
                if (top != _gpr[4])
                {
                    Free(top);
                }

                LocalBuilder rsp = Temp();
                EmitStackStep(sz, rsp, null);
                il.Emit(OpCodes.Ldloc, rsp);
                il.Emit(OpCodes.Stloc, _gpr[4]);
                Free(rsp);
                _dirty[4] = true;
                il.Emit(OpCodes.Ldloc, v);
                EmitSetReg(ins.Op0Register);
                Free(v);
                break;
            }

            case Mnemonic.Call:
            {
                int sz = ins.Op0Kind switch { OpKind.NearBranch16 => 2, OpKind.NearBranch32 => 4, _ => 8 };
                LocalBuilder ret = Temp(), rsp = Temp(), offset = Temp();
                il.Emit(OpCodes.Ldc_I8, (long)(ins.NextIP & _ripMask));
                il.Emit(OpCodes.Stloc, ret);
                EmitStackStep(-sz, rsp, offset);
                EmitStackAccess(offset, sz, ret);
                il.Emit(OpCodes.Ldloc, rsp);
                il.Emit(OpCodes.Stloc, _gpr[4]);
                _dirty[4] = true;
                Free(ret);
                Free(rsp);
                Free(offset);
                EmitEndIfCodeWritten(ref ins);
                if (ContinuesBlock(i, ins.NearBranchTarget))
                {
                    return true; // the decoder followed the call: its target is the next instruction of this block
                }

                EmitGoto(ins.NearBranchTarget, _local + 1);
                return false;
            }

            case Mnemonic.Ret:
            {
                int sz = ins.Code switch { Code.Retnw or Code.Retnw_imm16 => 2, Code.Retnd or Code.Retnd_imm16 => 4, _ => 8 };
                LocalBuilder top = StackOffset();
                LocalBuilder target = EmitStackAccess(top, sz, null)!;
                // BranchNear: a non-canonical return address (64-bit) or one beyond the CS limit is #GP(0) with RSP unchanged.
                Label ok = il.DefineLabel();
                if (sz == 8)
                {
                    il.Emit(OpCodes.Ldloc, target);
                    il.Emit(OpCodes.Ldc_I4, 16);
                    il.Emit(OpCodes.Shl);
                    il.Emit(OpCodes.Ldc_I4, 16);
                    il.Emit(OpCodes.Shr);
                    il.Emit(OpCodes.Ldloc, target);
                    il.Emit(OpCodes.Beq, ok);
                }
                else
                {
                    il.Emit(OpCodes.Ldloc, target);
                    il.Emit(OpCodes.Ldloc, _csLimit!);
                    il.Emit(OpCodes.Ble_Un, ok);
                }

                // Faulting: the interpreter runs the RET and raises it (no call on a path back into the region, see EmitStackAccess).
                il.Emit(OpCodes.Br, StackExit());
                il.MarkLabel(ok);
                LocalBuilder rsp = Temp();
                EmitStackStep(sz + (ins.OpCount == 1 ? ins.Immediate16 : 0), rsp, null);
                il.Emit(OpCodes.Ldloc, rsp);
                il.Emit(OpCodes.Stloc, _gpr[4]);
                Free(rsp);
                _dirty[4] = true;
                foreach (int site in _returnSites)
                {
                    // A return to a call site of this region: an internal branch (with the budget and interrupt checks).
                    Label other = il.DefineLabel();
                    il.Emit(OpCodes.Ldloc, target);
                    il.Emit(OpCodes.Ldc_I8, (long)_ins[_blockStart[site]].IP);
                    il.Emit(OpCodes.Bne_Un, other);
                    EmitGoto(_ins[_blockStart[site]].IP, _local + 1, backward: true);
                    il.MarkLabel(other);
                }

                il.Emit(OpCodes.Ldloc, _exec);
                il.Emit(OpCodes.Ldc_I8, (long)(_local + 1));
                il.Emit(OpCodes.Add);
                il.Emit(OpCodes.Stloc, _exec);
                EmitExit(0, () => il.Emit(OpCodes.Ldloc, target), IndirectSlot);
                return false;
            }

            case Mnemonic.Jmp:
                if (ContinuesBlock(i, ins.NearBranchTarget))
                {
                    return true; // the decoder followed the jump: its target is the next instruction of this block
                }

                EmitGoto(ins.NearBranchTarget, _local + 1);
                return false;
            default:
            {
                // Jcc: taken → branch; not taken → fall through to the next instruction (or the region's end exit).
                Label notTaken = il.DefineLabel();
                int savedPending = _pending, savedBits = _pendingBits;
                EmitCondition(ins.ConditionCode);
                il.Emit(OpCodes.Brfalse, notTaken);
                int afterPending = _pending, afterBits = _pendingBits;
                EmitGoto(ins.NearBranchTarget, _local + 1);
                il.MarkLabel(notTaken);
                _pending = afterPending;
                _pendingBits = afterBits;
                _ = savedPending;
                _ = savedBits;
                return true;
            }
        }

        if (wroteMemory)
        {
            EmitEndIfCodeWritten(ref ins);
        }

        return true;
    }

    /// <summary>A write to this region's code page (or a bus write that asked for it) ends the region after this instruction.</summary>
    private void EmitEndIfCodeWritten(ref Instruction ins)
    {
        ILGenerator il = _il;
        Label cont = il.DefineLabel();
        il.Emit(OpCodes.Ldloc, _smc);
        il.Emit(OpCodes.Brfalse, cont);
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Stloc, _smc);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Stfld, s_endBlock);
        int pending = _pending, bits = _pendingBits;
        long nextRip = (long)((ins.Mnemonic == Mnemonic.Call ? ins.NearBranchTarget : ins.NextIP) & _ripMask);
        EmitExit(_local + 1, () => il.Emit(OpCodes.Ldc_I8, nextRip), -1);
        _pending = pending;
        _pendingBits = bits;
        il.MarkLabel(cont);
    }

    /// <summary>
    /// Whether instruction <paramref name="i"/>, a direct JMP or CALL to <paramref name="target"/>, was followed by the
    /// decoder (TcgCpu.Decode continues a block at a same-page target): then the next instruction of its block is the
    /// target, and control simply falls through to it inside the region.
    /// </summary>
    private bool ContinuesBlock(int i, ulong target) =>
        _local < _blockCount[_block] - 1 && (ulong)(long)(_ins[i + 1].IP & _ripMask) == (target & _ripMask);

    private void FreeEa(LocalBuilder? ea)
    {
        if (ea is not null)
        {
            Free(ea);
        }
    }

    /// <summary>SHL/SHR/SAR by an immediate: the result inline, the flags lazy (a masked count of 0 changes no flag).</summary>
    private bool EmitShiftImmediate(ref Instruction ins, int sz, LocalBuilder? ea)
    {
        ILGenerator il = _il;
        int bits = sz * 8;
        int n = ins.Immediate8 & ((bits >> 1) | 31);
        int kind = ins.Mnemonic switch { Mnemonic.Shr => JitFlags.Shr, Mnemonic.Sar => JitFlags.Sar, _ => JitFlags.Shl };
        LocalBuilder a = ReadOperand(ref ins, 0, sz, ea);
        LocalBuilder r = Temp();
        EmitShiftValue(kind, a, n, bits);
        il.Emit(OpCodes.Stloc, r);
        bool wrote = WriteOperand0(ref ins, sz, r, ea);
        if (n != 0)
        {
            LocalBuilder c = Temp();
            il.Emit(OpCodes.Ldc_I8, (long)n);
            il.Emit(OpCodes.Stloc, c);
            SetPending(kind, bits, a, c, null);
            _pendingCount = n;
            Free(c);
        }

        Free(a);
        Free(r);
        return wrote;
    }

    /// <summary>Pushes the result of shifting <paramref name="a"/> by the constant <paramref name="n"/> (already masked), masked to <paramref name="bits"/>.</summary>
    private void EmitShiftValue(int kind, LocalBuilder a, int n, int bits)
    {
        ILGenerator il = _il;
        il.Emit(OpCodes.Ldloc, a);
        switch (kind)
        {
            case JitFlags.Shl:
                il.Emit(OpCodes.Ldc_I4, n);
                il.Emit(OpCodes.Shl);
                break;
            case JitFlags.Shr:
                EmitMask(bits);
                il.Emit(OpCodes.Ldc_I4, n);
                il.Emit(OpCodes.Shr_Un);
                break;
            default:
                EmitSignExtend(bits);
                il.Emit(OpCodes.Ldc_I4, n);
                il.Emit(OpCodes.Shr);
                break;
        }

        EmitMask(bits);
    }

    private bool EmitBinary(ref Instruction ins)
    {
        ILGenerator il = _il;
        Mnemonic m = ins.Mnemonic;
        int sz = OpSize(ref ins, 0);
        int bits = sz * 8;
        LocalBuilder? ea = EaIfMemory(ref ins);
        LocalBuilder a = ReadOperand(ref ins, 0, sz, ea);
        LocalBuilder b = ReadOperand(ref ins, 1, sz, ea);
        LocalBuilder? c = null;
        if (m is Mnemonic.Adc or Mnemonic.Sbb)
        {
            c = Temp();
            EmitCarry();
            il.Emit(OpCodes.Stloc, c);
        }

        LocalBuilder r = Temp();
        il.Emit(OpCodes.Ldloc, a);
        il.Emit(OpCodes.Ldloc, b);
        switch (m)
        {
            case Mnemonic.Add: il.Emit(OpCodes.Add); break;
            case Mnemonic.Adc: il.Emit(OpCodes.Add); il.Emit(OpCodes.Ldloc, c!); il.Emit(OpCodes.Add); break;
            case Mnemonic.Sub:
            case Mnemonic.Cmp: il.Emit(OpCodes.Sub); break;
            case Mnemonic.Sbb: il.Emit(OpCodes.Sub); il.Emit(OpCodes.Ldloc, c!); il.Emit(OpCodes.Sub); break;
            case Mnemonic.Or: il.Emit(OpCodes.Or); break;
            case Mnemonic.Xor: il.Emit(OpCodes.Xor); break;
            default: il.Emit(OpCodes.And); break;
        }

        EmitMask(bits);
        il.Emit(OpCodes.Stloc, r);
        bool wrote = false;
        if (m is not (Mnemonic.Cmp or Mnemonic.Test))
        {
            wrote = WriteOperand0(ref ins, sz, r, ea);
        }

        switch (m)
        {
            case Mnemonic.Add: SetPending(JitFlags.Add, bits, a, b, null); break;
            case Mnemonic.Sub:
            case Mnemonic.Cmp: SetPending(JitFlags.Sub, bits, a, b, null); break;
            case Mnemonic.Adc: SetPending(JitFlags.Adc, bits, a, b, c); break;
            case Mnemonic.Sbb: SetPending(JitFlags.Sbb, bits, a, b, c); break;
            default: SetPending(JitFlags.Logic, bits, r, null, null); break;
        }

        Free(a);
        Free(b);
        Free(r);
        if (c is not null)
        {
            Free(c);
        }

        FreeEa(ea);
        return wrote;
    }

    private bool EmitUnary(ref Instruction ins)
    {
        ILGenerator il = _il;
        Mnemonic m = ins.Mnemonic;
        int sz = OpSize(ref ins, 0);
        int bits = sz * 8;
        LocalBuilder? ea = EaIfMemory(ref ins);
        LocalBuilder a = ReadOperand(ref ins, 0, sz, ea);
        LocalBuilder? c = null;
        if (m is Mnemonic.Inc or Mnemonic.Dec)
        {
            c = Temp();
            EmitCarry();
            il.Emit(OpCodes.Stloc, c);
        }

        LocalBuilder r = Temp();
        switch (m)
        {
            case Mnemonic.Inc:
                il.Emit(OpCodes.Ldloc, a);
                il.Emit(OpCodes.Ldc_I8, 1L);
                il.Emit(OpCodes.Add);
                break;
            case Mnemonic.Dec:
                il.Emit(OpCodes.Ldloc, a);
                il.Emit(OpCodes.Ldc_I8, 1L);
                il.Emit(OpCodes.Sub);
                break;
            case Mnemonic.Neg:
                il.Emit(OpCodes.Ldc_I8, 0L);
                il.Emit(OpCodes.Ldloc, a);
                il.Emit(OpCodes.Sub);
                break;
            default:
                il.Emit(OpCodes.Ldloc, a);
                il.Emit(OpCodes.Not);
                break;
        }

        EmitMask(bits);
        il.Emit(OpCodes.Stloc, r);
        bool wrote = WriteOperand0(ref ins, sz, r, ea);
        switch (m)
        {
            case Mnemonic.Inc: SetPending(JitFlags.Inc, bits, a, null, c); break;
            case Mnemonic.Dec: SetPending(JitFlags.Dec, bits, a, null, c); break;
            case Mnemonic.Neg:
            {
                LocalBuilder zero = Temp();
                il.Emit(OpCodes.Ldc_I8, 0L);
                il.Emit(OpCodes.Stloc, zero);
                SetPending(JitFlags.Sub, bits, zero, a, null);
                Free(zero);
                break;
            }
        }

        Free(a);
        Free(r);
        if (c is not null)
        {
            Free(c);
        }

        FreeEa(ea);
        return wrote;
    }

    private static FieldInfo Field(Type t, string name) =>
        t.GetField(name, Any) ?? throw new MissingFieldException(t.Name, name);

    private static MethodInfo Method(Type t, string name) =>
        t.GetMethod(name, Any) ?? throw new MissingMethodException(t.Name, name);
}
