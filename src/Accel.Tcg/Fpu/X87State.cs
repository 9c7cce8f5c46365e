using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Hypervisor.Core.Registers;

namespace Hypervisor.Accel.Tcg.Fpu;

/// <summary>The eight physical x87 data registers R0-R7.</summary>
[InlineArray(8)]
internal struct X87PhysicalRegisters
{
    private ExtendedFloat _element;
}

/// <summary>Tag values of the full x87 tag word (SDM Vol. 1, 8.1.7).</summary>
internal enum X87Tag : byte
{
    Valid = 0,
    Zero = 1,
    Special = 2,
    Empty = 3,
}

/// <summary>Operand/address size and mode of an FSAVE/FSTENV/FRSTOR/FLDENV image (SDM Vol. 1, 8.1.10, Figures 8-9 to 8-12).</summary>
internal enum X87EnvironmentFormat : byte
{
    /// <summary>16-bit operand size, real or virtual-8086 mode (14-byte environment).</summary>
    Real16,
    /// <summary>16-bit operand size, protected mode (14-byte environment).</summary>
    Protected16,
    /// <summary>32-bit operand size, real or virtual-8086 mode (28-byte environment).</summary>
    Real32,
    /// <summary>32-bit (and 64-bit mode) operand size, protected mode (28-byte environment).</summary>
    Protected32,
}

/// <summary>
/// The x87 register file and its stack discipline: physical registers, TOP, the full tag word, FCW, FSW and the
/// last-instruction pointers; stack overflow/underflow with their masked responses (SDM Vol. 1, 8.5.1.1); and the
/// FSAVE/FSTENV/FXSAVE memory images and their restores.
/// </summary>
/// <remarks>
/// The instruction helpers return <c>false</c> when an unmasked exception was raised: FSW then has ES and B set and the
/// destination was left as the SDM requires; the interpreter delivers #MF (CR0.NE=1) or FERR#/IRQ 13 on the next
/// waiting x87 instruction.
/// </remarks>
internal struct X87State
{
    public X87PhysicalRegisters Registers;
    public ushort Fcw;
    /// <summary>FSW without TOP (bits 11-13 are kept in <see cref="Top"/>).</summary>
    private ushort _fsw;
    /// <summary>The full 16-bit tag word, two bits per physical register.</summary>
    public ushort Ftw;
    public int Top;
    public ushort Fop;
    public ulong Fip;
    public ushort Fcs;
    public ulong Fdp;
    public ushort Fds;

    public const ushort C0 = 0x0100, C1 = 0x0200, C2 = 0x0400, C3 = 0x4000;
    private const ushort StackFault = 0x40, ErrorSummary = 0x80, Busy = 0x8000;

    /// <summary>The state after FNINIT (SDM Vol. 1, Table 8-10).</summary>
    public static X87State Initial()
    {
        var s = default(X87State);
        s.Init();
        return s;
    }

    /// <summary>FNINIT: FCW 037Fh, FSW 0, all tags empty, pointers and opcode cleared; register contents are kept.</summary>
    public void Init()
    {
        Fcw = X87Control.Default;
        _fsw = 0;
        Ftw = 0xFFFF;
        Top = 0;
        Fop = 0;
        Fip = 0;
        Fcs = 0;
        Fdp = 0;
        Fds = 0;
    }

    /// <summary>The status word including TOP.</summary>
    public ushort Fsw
    {
        readonly get => (ushort)((_fsw & ~0x3800) | ((Top & 7) << 11));
        set
        {
            _fsw = (ushort)(value & ~0x3800);
            Top = (value >> 11) & 7;
        }
    }

    public readonly X87Tag Tag(int physical) => (X87Tag)((Ftw >> (2 * (physical & 7))) & 3);

    public void SetTag(int physical, X87Tag tag)
    {
        int sh = 2 * (physical & 7);
        Ftw = (ushort)((Ftw & ~(3 << sh)) | ((int)tag << sh));
    }

    /// <summary>The tag a value gets when written (SDM Vol. 1, 8.1.7).</summary>
    public static X87Tag Classify(ExtendedFloat v)
    {
        int e = v.BiasedExponent;
        if (e == 0x7FFF)
            return X87Tag.Special;
        if (e == 0)
            return v.Significand == 0 ? X87Tag.Zero : X87Tag.Special;
        return (v.Significand >> 63) != 0 ? X87Tag.Valid : X87Tag.Special;
    }

    public readonly int Physical(int st) => (Top + st) & 7;
    public readonly bool IsEmpty(int st) => Tag(Physical(st)) == X87Tag.Empty;
    public readonly ExtendedFloat St(int st) => Registers[Physical(st)];

    /// <summary>Writes ST(i) and its tag.</summary>
    public void SetSt(int st, ExtendedFloat value)
    {
        int p = Physical(st);
        Registers[p] = value;
        SetTag(p, Classify(value));
    }

    /// <summary>Marks ST(0) empty and increments TOP.</summary>
    public void Pop()
    {
        SetTag(Physical(0), X87Tag.Empty);
        Top = (Top + 1) & 7;
    }

    /// <summary>FFREE ST(i).</summary>
    public void Free(int st) => SetTag(Physical(st), X87Tag.Empty);

    /// <summary>FINCSTP / FDECSTP (tags unchanged, C1 cleared).</summary>
    public void Rotate(int delta)
    {
        Top = (Top + delta) & 7;
        SetC1(false);
    }

    public void SetC1(bool value) => _fsw = (ushort)(value ? _fsw | C1 : _fsw & ~C1);

    public void SetC2(bool value) => _fsw = (ushort)(value ? _fsw | C2 : _fsw & ~C2);

    /// <summary>Sets C3 C2 C1 C0 from a mask of those bits.</summary>
    public void SetConditionCodes(ushort bits) => _fsw = (ushort)((_fsw & ~(C0 | C1 | C2 | C3)) | (bits & (C0 | C1 | C2 | C3)));

    /// <summary>ORs exception flags into FSW; sets ES and B if any of them is unmasked. Returns whether one was unmasked.</summary>
    public bool Raise(FloatExceptions flags)
    {
        _fsw |= (ushort)flags;
        if (X87Control.Unmasked(Fcw, flags) != 0)
        {
            _fsw |= ErrorSummary | Busy;
            return true;
        }
        return false;
    }

    /// <summary>FNCLEX: clears the exception flags, SF, ES and B.</summary>
    public void ClearExceptions() => _fsw &= 0x7F00;

    /// <summary>FLDCW: a newly unmasked pending flag sets ES/B (the exception is then delivered by the next waiting instruction).</summary>
    public void LoadControlWord(ushort fcw)
    {
        Fcw = CanonicalControlWord(fcw);
        UpdateErrorSummary();
    }

    /// <summary>FCW as the x87 keeps it: bit 6 reads as one, bits 7 and 13-15 as zero (SDM Vol. 1, Figure 8-6; observed on the host).</summary>
    public static ushort CanonicalControlWord(ushort fcw) => (ushort)((fcw & 0x1F3F) | 0x0040);

    /// <summary>FSTENV/FNSTENV after storing: all exceptions masked, so ES and B clear.</summary>
    public void MaskAllExceptions() => LoadControlWord((ushort)(Fcw | 0x3F));

    private void UpdateErrorSummary()
    {
        if (X87Control.Unmasked(Fcw, (FloatExceptions)(_fsw & 0x3F)) != 0)
            _fsw |= ErrorSummary | Busy;
        else
            _fsw &= unchecked((ushort)~(ErrorSummary | Busy));
    }

    /// <summary>
    /// Pushes a value (FLD, FILD, FLD1...). If the new top is not empty: stack overflow, IE+SF with C1=1; masked, the QNaN
    /// indefinite is pushed; unmasked, nothing changes. Otherwise C1 is cleared.
    /// </summary>
    public bool Push(ExtendedFloat value)
    {
        int p = (Top - 1) & 7;
        if (Tag(p) != X87Tag.Empty)
        {
            SetC1(true);
            if (Raise(FloatExceptions.Invalid | (FloatExceptions)StackFault))
                return false;
            value = ExtendedFloat.Indefinite;
        }
        else
        {
            SetC1(false);
        }
        Top = p;
        Registers[p] = value;
        SetTag(p, Classify(value));
        return true;
    }

    /// <summary>
    /// Signals stack underflow for an empty source or destination: IE+SF, C1=0. Returns whether it was unmasked (the
    /// instruction then stops); if masked the caller writes the indefinite to its destination.
    /// </summary>
    public bool Underflow()
    {
        SetC1(false);
        return Raise(FloatExceptions.Invalid | (FloatExceptions)StackFault);
    }

    // ---- FXSAVE / FXRSTOR (SDM Vol. 1, 10.5.1, Table 10-2 and 10-3) ----

    /// <summary>The abridged tag byte of FXSAVE: bit i set when physical register i is not empty.</summary>
    public readonly byte AbridgedTag()
    {
        byte r = 0;
        for (int i = 0; i < 8; i++)
            if (Tag(i) != X87Tag.Empty)
                r |= (byte)(1 << i);
        return r;
    }

    /// <summary>
    /// Writes the x87 part of an FXSAVE image (bytes 0-23 and 32-159) and MXCSR/MXCSR_MASK (24-31). <paramref name="rexW"/>
    /// selects the 64-bit FIP/FDP layout (FXSAVE64); otherwise FCS and FDS follow 32-bit offsets. Bytes 160 and up (XMM
    /// registers) are the caller's; reserved bytes 10-15 of each register slot are written as zero.
    /// </summary>
    public readonly void WriteFxsave(Span<byte> image, uint mxcsr, uint mxcsrMask, bool rexW)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(image, Fcw);
        BinaryPrimitives.WriteUInt16LittleEndian(image[2..], Fsw);
        image[4] = AbridgedTag();
        image[5] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(image[6..], Fop);
        if (rexW)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(image[8..], Fip);
            BinaryPrimitives.WriteUInt64LittleEndian(image[16..], Fdp);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(image[8..], (uint)Fip);
            BinaryPrimitives.WriteUInt16LittleEndian(image[12..], Fcs);
            BinaryPrimitives.WriteUInt16LittleEndian(image[14..], 0);
            BinaryPrimitives.WriteUInt32LittleEndian(image[16..], (uint)Fdp);
            BinaryPrimitives.WriteUInt16LittleEndian(image[20..], Fds);
            BinaryPrimitives.WriteUInt16LittleEndian(image[22..], 0);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(image[24..], mxcsr);
        BinaryPrimitives.WriteUInt32LittleEndian(image[28..], mxcsrMask);
        for (int i = 0; i < 8; i++)
        {
            var slot = image.Slice(32 + 16 * i, 16);
            St(i).Write(slot);
            slot[10..].Clear();
        }
    }

    /// <summary>
    /// FXRSTOR of the x87 part: the full tag word is rebuilt from the abridged byte and the register contents (SDM Vol. 1,
    /// 10.5.1.1). Returns MXCSR from the image; the caller raises #GP if it sets bits outside MXCSR_MASK.
    /// </summary>
    public uint ReadFxrstor(ReadOnlySpan<byte> image, bool rexW)
    {
        Fcw = BinaryPrimitives.ReadUInt16LittleEndian(image);
        Fsw = BinaryPrimitives.ReadUInt16LittleEndian(image[2..]);
        byte abridged = image[4];
        Fop = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(image[6..]) & 0x7FF);
        if (rexW)
        {
            Fip = BinaryPrimitives.ReadUInt64LittleEndian(image[8..]);
            Fdp = BinaryPrimitives.ReadUInt64LittleEndian(image[16..]);
        }
        else
        {
            Fip = BinaryPrimitives.ReadUInt32LittleEndian(image[8..]);
            Fcs = BinaryPrimitives.ReadUInt16LittleEndian(image[12..]);
            Fdp = BinaryPrimitives.ReadUInt32LittleEndian(image[16..]);
            Fds = BinaryPrimitives.ReadUInt16LittleEndian(image[20..]);
        }
        for (int i = 0; i < 8; i++)
            Registers[Physical(i)] = ExtendedFloat.Read(image.Slice(32 + 16 * i, 10));
        for (int p = 0; p < 8; p++)
            SetTag(p, ((abridged >> p) & 1) != 0 ? Classify(Registers[p]) : X87Tag.Empty);
        return BinaryPrimitives.ReadUInt32LittleEndian(image[24..]);
    }

    // ---- FSTENV / FLDENV / FSAVE / FRSTOR ----

    public static int EnvironmentSize(X87EnvironmentFormat format) => format is X87EnvironmentFormat.Real16 or X87EnvironmentFormat.Protected16 ? 14 : 28;

    /// <summary>
    /// FNSTENV image. In the 32-bit formats the upper halves of the FCW, FSW and FTW dwords are written as FFFFh, as
    /// hardware does (reserved fields); FSTENV then masks all exceptions (the caller does that: <c>Fcw |= 0x3F</c>).
    /// </summary>
    public readonly void WriteEnvironment(Span<byte> image, X87EnvironmentFormat format)
    {
        switch (format)
        {
            case X87EnvironmentFormat.Protected32:
                W32(image, 0, 0xFFFF_0000u | Fcw);
                W32(image, 4, 0xFFFF_0000u | Fsw);
                W32(image, 8, 0xFFFF_0000u | Ftw);
                W32(image, 12, (uint)Fip);
                W32(image, 16, Fcs | ((uint)(Fop & 0x7FF) << 16));
                W32(image, 20, (uint)Fdp);
                W32(image, 24, 0xFFFF_0000u | Fds);
                break;
            case X87EnvironmentFormat.Real32:
                W32(image, 0, 0xFFFF_0000u | Fcw);
                W32(image, 4, 0xFFFF_0000u | Fsw);
                W32(image, 8, 0xFFFF_0000u | Ftw);
                W32(image, 12, 0xFFFF_0000u | (ushort)Fip);
                W32(image, 16, (uint)(Fop & 0x7FF) | ((uint)(Fip >> 16) & 0xFFFF) << 12);
                W32(image, 20, 0xFFFF_0000u | (ushort)Fdp);
                W32(image, 24, ((uint)(Fdp >> 16) & 0xFFFF) << 12);
                break;
            case X87EnvironmentFormat.Protected16:
                W16(image, 0, Fcw);
                W16(image, 2, Fsw);
                W16(image, 4, Ftw);
                W16(image, 6, (ushort)Fip);
                W16(image, 8, Fcs);
                W16(image, 10, (ushort)Fdp);
                W16(image, 12, Fds);
                break;
            default:
                W16(image, 0, Fcw);
                W16(image, 2, Fsw);
                W16(image, 4, Ftw);
                W16(image, 6, (ushort)Fip);
                W16(image, 8, (ushort)((uint)(Fop & 0x7FF) | ((uint)(Fip >> 16) & 0xF) << 12));
                W16(image, 10, (ushort)Fdp);
                W16(image, 12, (ushort)(((Fdp >> 16) & 0xF) << 12));
                break;
        }
    }

    /// <summary>FLDENV: loads FCW, FSW (with TOP), the full tag word and the pointers; ES/B follow the loaded flags and masks.</summary>
    public void ReadEnvironment(ReadOnlySpan<byte> image, X87EnvironmentFormat format)
    {
        bool wide = format is X87EnvironmentFormat.Real32 or X87EnvironmentFormat.Protected32;
        int step = wide ? 4 : 2;
        Fcw = CanonicalControlWord(BinaryPrimitives.ReadUInt16LittleEndian(image));
        Fsw = BinaryPrimitives.ReadUInt16LittleEndian(image[step..]);
        Ftw = BinaryPrimitives.ReadUInt16LittleEndian(image[(2 * step)..]);
        switch (format)
        {
            case X87EnvironmentFormat.Protected32:
                Fip = BinaryPrimitives.ReadUInt32LittleEndian(image[12..]);
                uint csop = BinaryPrimitives.ReadUInt32LittleEndian(image[16..]);
                Fcs = (ushort)csop;
                Fop = (ushort)((csop >> 16) & 0x7FF);
                Fdp = BinaryPrimitives.ReadUInt32LittleEndian(image[20..]);
                Fds = BinaryPrimitives.ReadUInt16LittleEndian(image[24..]);
                break;
            case X87EnvironmentFormat.Real32:
                uint w16 = BinaryPrimitives.ReadUInt32LittleEndian(image[16..]);
                Fip = BinaryPrimitives.ReadUInt16LittleEndian(image[12..]) | ((ulong)((w16 >> 12) & 0xFFFF) << 16);
                Fop = (ushort)(w16 & 0x7FF);
                Fdp = BinaryPrimitives.ReadUInt16LittleEndian(image[20..]) | ((ulong)((BinaryPrimitives.ReadUInt32LittleEndian(image[24..]) >> 12) & 0xFFFF) << 16);
                break;
            case X87EnvironmentFormat.Protected16:
                Fip = BinaryPrimitives.ReadUInt16LittleEndian(image[6..]);
                Fcs = BinaryPrimitives.ReadUInt16LittleEndian(image[8..]);
                Fdp = BinaryPrimitives.ReadUInt16LittleEndian(image[10..]);
                Fds = BinaryPrimitives.ReadUInt16LittleEndian(image[12..]);
                break;
            default:
                ushort w8 = BinaryPrimitives.ReadUInt16LittleEndian(image[8..]);
                Fip = (ulong)BinaryPrimitives.ReadUInt16LittleEndian(image[6..]) | ((ulong)(w8 >> 12) << 16);
                Fop = (ushort)(w8 & 0x7FF);
                Fdp = (ulong)BinaryPrimitives.ReadUInt16LittleEndian(image[10..]) | ((ulong)(uint)(BinaryPrimitives.ReadUInt16LittleEndian(image[12..]) >> 12) << 16);
                break;
        }
        UpdateErrorSummary();
        RetagLoaded();
    }

    // FLDENV/FRSTOR keep only "empty or not" from the loaded tag word; a non-empty register's tag follows its contents
    // (SDM Vol. 1, 8.1.7: the processor checks the tags against the register contents).
    private void RetagLoaded()
    {
        for (int p = 0; p < 8; p++)
            if (Tag(p) != X87Tag.Empty)
                SetTag(p, Classify(Registers[p]));
    }

    /// <summary>FNSAVE image: the environment followed by ST(0)..ST(7), 10 bytes each (94 or 108 bytes). The caller then runs <see cref="Init"/>.</summary>
    public readonly void WriteSave(Span<byte> image, X87EnvironmentFormat format)
    {
        int env = EnvironmentSize(format);
        WriteEnvironment(image, format);
        for (int i = 0; i < 8; i++)
            St(i).Write(image.Slice(env + 10 * i, 10));
    }

    /// <summary>FRSTOR: the environment, then the registers in stack order relative to the loaded TOP.</summary>
    public void ReadSave(ReadOnlySpan<byte> image, X87EnvironmentFormat format)
    {
        int env = EnvironmentSize(format);
        ReadEnvironment(image, format);
        for (int i = 0; i < 8; i++)
            Registers[Physical(i)] = ExtendedFloat.Read(image.Slice(env + 10 * i, 10));
        RetagLoaded();
    }

    private static void W32(Span<byte> s, int at, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(s[at..], v);
    private static void W16(Span<byte> s, int at, ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(s[at..], v);

    /// <summary>
    /// Copies the x87 part into the core register file (FXSAVE semantics: <c>St[i]</c> is ST(i), the tag word abridged,
    /// <c>LastIp</c>/<c>LastDp</c> the 64-bit pointers). XMM and MXCSR are the caller's.
    /// </summary>
    public readonly void CopyTo(ref FpuRegisters registers)
    {
        for (int i = 0; i < 8; i++)
        {
            var v = St(i);
            registers.St[i] = new Float80(v.Significand, v.SignExponent);
        }
        registers.Fcw = Fcw;
        registers.Fsw = Fsw;
        registers.Ftw = AbridgedTag();
        registers.LastOpcode = Fop;
        registers.LastIp = Fip;
        registers.LastDp = Fdp;
    }

    /// <summary>Loads the x87 part from the core register file, rebuilding the full tag word as FXRSTOR does.</summary>
    public void CopyFrom(in FpuRegisters registers)
    {
        Fcw = registers.Fcw;
        Fsw = registers.Fsw;
        Fop = (ushort)(registers.LastOpcode & 0x7FF);
        Fip = registers.LastIp;
        Fdp = registers.LastDp;
        for (int i = 0; i < 8; i++)
        {
            var v = registers.St[i];
            Registers[Physical(i)] = new ExtendedFloat(v.Significand, v.SignExponent);
        }
        for (int p = 0; p < 8; p++)
            SetTag(p, ((registers.Ftw >> p) & 1) != 0 ? Classify(Registers[p]) : X87Tag.Empty);
    }
}
