using System.Runtime.CompilerServices;
using Hypervisor.Accel.Tcg.State;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Interpreter;

// Register and operand access for decoded instructions.
internal sealed partial class TcgCpu
{
    /// <summary>Per Iced register: GPR index (or segment/CR/DR number), size in bytes, and whether it is AH/CH/DH/BH.</summary>
    private static readonly RegInfo[] s_regs = BuildRegTable();

    private readonly struct RegInfo(byte index, byte size, bool high, byte kind)
    {
        public readonly byte Index = index;
        public readonly byte Size = size;
        public readonly bool High = high;
        public readonly byte Kind = kind; // 0 none, 1 gpr, 2 segment, 3 cr, 4 dr
    }

    private static RegInfo[] BuildRegTable()
    {
        var t = new RegInfo[(int)Enum.GetValues<Register>().Max() + 1];
        for (int i = 0; i < t.Length; i++)
        {
            var r = (Register)i;
            if (r.IsGPR())
            {
                bool high = r is Register.AH or Register.CH or Register.DH or Register.BH;
                int index = high ? r - Register.AH : r.GetFullRegister() - Register.RAX;
                t[i] = new RegInfo((byte)index, (byte)r.GetSize(), high, 1);
            }
            else if (r.IsSegmentRegister())
            {
                t[i] = new RegInfo((byte)(r - Register.ES), 2, false, 2);
            }
            else if (r.IsCR())
            {
                t[i] = new RegInfo((byte)(r - Register.CR0), 8, false, 3);
            }
            else if (r.IsDR())
            {
                t[i] = new RegInfo((byte)(r - Register.DR0), 8, false, 4);
            }
        }

        return t;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int RegSize(Register r) => s_regs[(int)r].Size;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong GetReg(Register r)
    {
        RegInfo info = s_regs[(int)r];
        ulong v = S.Gpr[info.Index];
        return info.Size switch
        {
            8 => v,
            4 => (uint)v,
            2 => (ushort)v,
            _ => info.High ? (byte)(v >> 8) : (byte)v,
        };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetReg(Register r, ulong value)
    {
        RegInfo info = s_regs[(int)r];
        ref ulong g = ref S.Gpr[info.Index];
        switch (info.Size)
        {
            case 8: g = value; break;
            case 4: g = (uint)value; break;
            case 2: g = (g & ~0xFFFFUL) | (value & 0xFFFF); break;
            default:
                if (info.High)
                {
                    g = (g & ~0xFF00UL) | ((value & 0xFF) << 8);
                }
                else
                {
                    g = (g & ~0xFFUL) | (value & 0xFF);
                }

                break;
        }
    }

    /// <summary>Sets GPR <paramref name="index"/> with the x86-64 width rule: 32-bit writes zero the upper half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetGpr(int index, int size, ulong value)
    {
        ref ulong g = ref S.Gpr[index];
        switch (size)
        {
            case 8: g = value; break;
            case 4: g = (uint)value; break;
            case 2: g = (g & ~0xFFFFUL) | (value & 0xFFFF); break;
            default: g = (g & ~0xFFUL) | (value & 0xFF); break;
        }
    }

    private static ulong SizeMask(int size) => size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    private static int AddrSize(ref Instruction ins) => ins.MemoryBase == Register.RIP || ins.MemoryBase.IsGPR64() || ins.MemoryIndex.IsGPR64()
        ? 8
        : ins.MemoryBase == Register.EIP || ins.MemoryBase.IsGPR32() || ins.MemoryIndex.IsGPR32()
            ? 4
            : ins.MemoryBase.IsGPR16() || ins.MemoryIndex.IsGPR16() ? 2 : 0;

    /// <summary>The effective address (offset in the segment) of the memory operand, wrapped to the address size.</summary>
    private ulong EffectiveAddress(ref Instruction ins)
    {
        Register b = ins.MemoryBase;
        if (b is Register.RIP or Register.EIP)
        {
            return b == Register.EIP ? (uint)ins.MemoryDisplacement64 : ins.MemoryDisplacement64;
        }

        ulong ea = ins.MemoryDisplacement64;
        if (b != Register.None)
        {
            ea += GetReg(b);
        }

        Register x = ins.MemoryIndex;
        if (x != Register.None)
        {
            ea += GetReg(x) * (ulong)ins.MemoryIndexScale;
        }

        int addrSize = AddrSize(ref ins);
        if (addrSize == 0)
        {
            // Displacement-only: the address size is the default of the code size (with a 67h override, Iced reports
            // the displacement size instead).
            addrSize = ins.MemoryDisplSize switch
            {
                2 => 2,
                4 => 4,
                8 => 8,
                _ => ins.CodeSize switch { CodeSize.Code16 => 2, CodeSize.Code32 => 4, _ => 8 },
            };
        }

        return addrSize switch { 2 => ea & 0xFFFF, 4 => ea & 0xFFFF_FFFF, _ => ea };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int SegIndex(Register segment) => segment - Register.ES;

    /// <summary>The size in bytes of operand <paramref name="n"/>.</summary>
    private static int OpSize(ref Instruction ins, int n)
    {
        OpKind k = ins.GetOpKind(n);
        if (k == OpKind.Register)
        {
            return RegSize(ins.GetOpRegister(n));
        }

        return ins.MemorySize.GetSize();
    }

    private ulong ReadOp(ref Instruction ins, int n, int size)
    {
        switch (ins.GetOpKind(n))
        {
            case OpKind.Register:
                return GetReg(ins.GetOpRegister(n));
            case OpKind.Memory:
                return ReadLockable(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), size);
            default:
                return ins.GetImmediate(n) & SizeMask(size);
        }
    }

    private void WriteOp(ref Instruction ins, int n, int size, ulong value)
    {
        if (ins.GetOpKind(n) == OpKind.Register)
        {
            SetReg(ins.GetOpRegister(n), value);
        }
        else
        {
            WriteLockable(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), size, value);
        }
    }

    /// <summary>Evaluates condition code <paramref name="cc"/> against RFLAGS (SDM Vol. 1, Appendix B).</summary>
    private bool Condition(ConditionCode cc) => Alu.Alu.Condition(S.Rflags, cc);
}
