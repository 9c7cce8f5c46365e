using System.Buffers.Binary;
using Hypervisor.Accel.Tcg.State;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Interpreter;

// XSAVE feature set for the two state components this CPU has, x87 (bit 0) and SSE (bit 1): XGETBV/XSETBV over XCR0,
// XSAVE/XSAVE64, XSAVEOPT/XSAVEOPT64 and the standard form of XRSTOR/XRSTOR64 (SDM Vol. 1, chapter 13; Vol. 2, each
// instruction). XSAVEC, XSAVES and XRSTORS are not advertised (CPUID.(EAX=0DH,ECX=1):EAX = 1, XSAVEOPT only) and stay
// #UD; so does the compacted form of XRSTOR (#GP, XCOMP_BV[63] set). No AVX: XCR0 accepts only bits 0 and 1.
internal sealed partial class TcgCpu
{
    /// <summary>XCR0 bits this CPU supports: x87 and SSE (CPUID.(EAX=0DH,ECX=0):EDX:EAX).</summary>
    internal const ulong XcrSupported = 3;

    /// <summary>Size of the standard-format XSAVE area for x87 and SSE: the 512-byte legacy region and the 64-byte header (SDM Vol. 1, 13.4).</summary>
    internal const int XsaveAreaBytes = 576;

    private const int XsaveHeader = 512;

    /// <summary>Executes an XSAVE-family instruction; false when <paramref name="ins"/> is not one this file implements.</summary>
    private bool ExecXsave(ref Instruction ins)
    {
        switch (ins.Mnemonic)
        {
            case Mnemonic.Xsave:
            case Mnemonic.Xsave64:
                Xsave(ref ins, ins.Mnemonic == Mnemonic.Xsave64, optimised: false);
                return true;
            case Mnemonic.Xsaveopt:
            case Mnemonic.Xsaveopt64:
                Xsave(ref ins, ins.Mnemonic == Mnemonic.Xsaveopt64, optimised: true);
                return true;
            case Mnemonic.Xrstor:
            case Mnemonic.Xrstor64:
                Xrstor(ref ins, ins.Mnemonic == Mnemonic.Xrstor64);
                return true;
            default:
                return false;
        }
    }

    /// <summary>XGETBV (SDM Vol. 2): #UD without CR4.OSXSAVE; ECX 0 reads XCR0, any other ECX is #GP(0) (ECX = 1 is not advertised).</summary>
    private void Xgetbv()
    {
        if ((S.Cr4 & Cr.Cr4Osxsave) == 0)
        {
            throw Ud();
        }

        if ((uint)S.Gpr[1] != 0)
        {
            throw Gp0();
        }

        S.Gpr[0] = (uint)S.Xcr0;
        S.Gpr[2] = (uint)(S.Xcr0 >> 32);
    }

    /// <summary>
    /// XSETBV (SDM Vol. 2): #UD without CR4.OSXSAVE; #GP(0) unless CPL 0 and ECX 0, when EDX:EAX clears bit 0 (x87) or
    /// sets an unsupported bit.
    /// </summary>
    private void Xsetbv()
    {
        if ((S.Cr4 & Cr.Cr4Osxsave) == 0)
        {
            throw Ud();
        }

        ulong value = ((ulong)(uint)S.Gpr[2] << 32) | (uint)S.Gpr[0];
        if (_cpl != 0 || (uint)S.Gpr[1] != 0 || (value & 1) == 0 || (value & ~XcrSupported) != 0)
        {
            throw Gp0();
        }

        S.Xcr0 = value;
    }

    /// <summary>
    /// The XSAVE family's checks (SDM Vol. 2, XSAVE "Protected Mode Exceptions"): #UD without CR4.OSXSAVE, #NM with
    /// CR0.TS, #GP(0) unless the area is 64-byte aligned. CR0.EM does not matter.
    /// </summary>
    private void XsaveCheck(ref Instruction ins, bool write)
    {
        if ((S.Cr4 & Cr.Cr4Osxsave) == 0)
        {
            throw Ud();
        }

        if ((S.Cr0 & Cr.TS) != 0)
        {
            throw new GuestFault(Vec.NM, 0, false);
        }

        ulong lin = Linear(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), XsaveAreaBytes, write);
        if ((lin & 63) != 0)
        {
            throw Gp0();
        }
    }

    /// <summary>The requested-feature bitmap: XCR0 AND EDX:EAX.</summary>
    private ulong Rfbm => S.Xcr0 & (((ulong)(uint)S.Gpr[2] << 32) | (uint)S.Gpr[0]);

    /// <summary>The legacy region (first <see cref="FxImageBytes"/> bytes) of the current state, as FXSAVE writes it.</summary>
    private void CurrentLegacyImage(Span<byte> image, bool rexW)
    {
        S.X87.WriteFxsave(image, S.Mxcsr, MxcsrMask, rexW);
        for (int i = 0; 160 + (16 * i) < FxImageBytes; i++)
        {
            UInt128 x = S.Xmm[i];
            BinaryPrimitives.WriteUInt64LittleEndian(image[(160 + (16 * i))..], (ulong)x);
            BinaryPrimitives.WriteUInt64LittleEndian(image[(168 + (16 * i))..], (ulong)(x >> 64));
        }
    }

    /// <summary>
    /// XINUSE for x87 and SSE from a legacy image (SDM Vol. 1, 13.6): x87 is in its initial configuration when FCW is
    /// 037FH, FSW, FTW (every register empty), FOP, FIP, FDP and the registers are 0; SSE when the XMM registers of the
    /// mode are 0 (MXCSR is not tracked).
    /// </summary>
    private ulong XinUse(ReadOnlySpan<byte> image)
    {
        ulong inUse = 0;
        if (BinaryPrimitives.ReadUInt16LittleEndian(image) != 0x037F || image[2..24].ContainsAnyExcept((byte)0) ||
            image[32..160].ContainsAnyExcept((byte)0))
        {
            inUse |= 1;
        }

        if (image[160..FxImageBytes].ContainsAnyExcept((byte)0))
        {
            inUse |= 2;
        }

        return inUse;
    }

    /// <summary>
    /// XSAVE and XSAVEOPT, standard format (SDM Vol. 1, 13.7 and 13.9): x87 state (bytes 0-23, 32-159) if RFBM[0];
    /// MXCSR and MXCSR_MASK (24-31) if RFBM[1] or RFBM[2]; XMM registers (160-) if RFBM[1]; XSTATE_BV bits of RFBM set
    /// to XINUSE, its other bits and the rest of the header untouched. XSAVEOPT also skips a component whose XINUSE bit
    /// is 0 (it does not use the modified-since-XRSTOR optimisation, which the SDM allows it to leave out).
    /// </summary>
    private void Xsave(ref Instruction ins, bool rexW, bool optimised)
    {
        XsaveCheck(ref ins, write: true);
        ulong rfbm = Rfbm;
        Span<byte> image = stackalloc byte[416];
        CurrentLegacyImage(image, rexW);
        ulong inUse = XinUse(image);
        ulong save = optimised ? rfbm & inUse : rfbm;

        int seg = SegIndex(ins.MemorySegment);
        ulong ea = EffectiveAddress(ref ins);
        ProbeWrite(seg, ea, 8);
        ProbeWrite(seg, ea + XsaveAreaBytes - 8, 8);
        ulong header = ReadMem(seg, ea + XsaveHeader, 8);

        if ((save & 1) != 0)
        {
            XsaveWrite(seg, ea, image, 0, 24);
            XsaveWrite(seg, ea, image, 32, 160);
        }

        if ((rfbm & 6) != 0)
        {
            XsaveWrite(seg, ea, image, 24, 32);
        }

        if ((save & 2) != 0)
        {
            XsaveWrite(seg, ea, image, 160, FxImageBytes);
        }

        WriteMem(seg, ea + XsaveHeader, 8, (header & ~rfbm) | (inUse & rfbm));
    }

    private void XsaveWrite(int seg, ulong ea, ReadOnlySpan<byte> image, int from, int to)
    {
        for (int at = from; at < to; at += 8)
        {
            WriteMem(seg, ea + (ulong)at, 8, BinaryPrimitives.ReadUInt64LittleEndian(image[at..]));
        }
    }

    /// <summary>
    /// XRSTOR, standard form (SDM Vol. 1, 13.8.1; Vol. 2, XRSTOR): #GP(0) when XCOMP_BV[63] asks for the compacted form
    /// (not supported), when XSTATE_BV sets a bit outside XCR0, when header bytes 8-23 are not 0, or when the MXCSR to
    /// load sets reserved bits, all before any state changes. For each RFBM component, XSTATE_BV[i] = 1 loads it from
    /// the area and 0 puts it in its initial configuration; MXCSR is loaded from the area if RFBM[1] or RFBM[2].
    /// </summary>
    private void Xrstor(ref Instruction ins, bool rexW)
    {
        XsaveCheck(ref ins, write: false);
        ulong rfbm = Rfbm;
        int seg = SegIndex(ins.MemorySegment);
        ulong ea = EffectiveAddress(ref ins);
        ulong xstateBv = ReadMem(seg, ea + XsaveHeader, 8);
        ulong xcompBv = ReadMem(seg, ea + XsaveHeader + 8, 8);
        ulong reserved = ReadMem(seg, ea + XsaveHeader + 16, 8);
        if (xcompBv != 0 || reserved != 0 || (xstateBv & ~S.Xcr0) != 0)
        {
            throw Gp0();
        }

        Span<byte> memory = stackalloc byte[416];
        int count = FxImageBytes;
        for (int at = 0; at < count; at += 8)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(memory[at..], ReadMem(seg, ea + (ulong)at, 8));
        }

        uint mxcsr = S.Mxcsr;
        if ((rfbm & 6) != 0)
        {
            mxcsr = BinaryPrimitives.ReadUInt32LittleEndian(memory[24..]);
            if ((mxcsr & ~MxcsrMask) != 0)
            {
                throw Gp0();
            }
        }

        if ((rfbm & 1) != 0)
        {
            Span<byte> x87 = stackalloc byte[416];
            if ((xstateBv & 1) != 0)
            {
                memory[..24].CopyTo(x87);
                memory[32..160].CopyTo(x87[32..]);
            }
            else
            {
                x87.Clear();
                BinaryPrimitives.WriteUInt16LittleEndian(x87, 0x037F); // FCW; FSW, FTW, FOP, FIP, FDP and ST0-7 are 0
            }

            S.X87.ReadFxrstor(x87, rexW);
        }

        S.Mxcsr = mxcsr;
        if ((rfbm & 2) != 0)
        {
            for (int i = 0; 160 + (16 * i) < count; i++)
            {
                S.Xmm[i] = (xstateBv & 2) == 0
                    ? UInt128.Zero
                    : new UInt128(BinaryPrimitives.ReadUInt64LittleEndian(memory[(168 + (16 * i))..]),
                        BinaryPrimitives.ReadUInt64LittleEndian(memory[(160 + (16 * i))..]));
            }
        }
    }
}
