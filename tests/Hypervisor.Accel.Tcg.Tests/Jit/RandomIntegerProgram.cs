using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Jit;

/// <summary>
/// Random straight-line integer code with forward conditional branches, in a counted loop: the instruction mix the
/// JIT translates natively (ALU with register, immediate and memory operands, INC/DEC/NEG/NOT, shifts and rotates by
/// immediates and CL, IMUL, MOV/MOVZX/MOVSX/LEA, SETcc/CMOVcc, Jcc, PUSH/POP, CALL/RET) plus a few it leaves to the
/// interpreter (XCHG, BSWAP, CDQ, BT), so that translated code and interpreter calls interleave. Memory operands point
/// into a 128-byte scratch block at [RBX]/[EBX]; RBX, RSP and RBP (the loop counter) are never random targets.
/// </summary>
internal static class RandomIntegerProgram
{
    private static readonly AssemblerRegister64[] R64 = [rax, rcx, rdx, rsi, rdi, r8, r9, r10, r11];
    private static readonly AssemblerRegister32[] R32In64 = [eax, ecx, edx, esi, edi, r8d, r9d, r10d, r11d];
    private static readonly AssemblerRegister32[] R32Only = [eax, ecx, edx, esi, edi];
    private static readonly AssemblerRegister16[] R16 = [ax, cx, dx, si, di];
    private static readonly AssemblerRegister8[] R8 = [al, cl, dl, ah, ch, dh];

    /// <summary>Emits the program at the assembler's position: <paramref name="iterations"/> passes of <paramref name="length"/> random instructions, then HLT.</summary>
    public static void Emit(Assembler a, int bitness, Random random, int length, int iterations)
    {
        bool x64 = bitness == 64;
        Label loop = a.CreateLabel(), sub = a.CreateLabel();
        if (x64)
        {
            a.mov(rbp, iterations);
        }
        else
        {
            a.mov(ebp, iterations);
        }

        a.Label(ref loop);
        for (int i = 0; i < length; i++)
        {
            if (random.Next(10) == 0)
            {
                // A forward conditional branch over one instruction (flags from the random code before it).
                Label skip = a.CreateLabel();
                Jcc(a, random.Next(16), skip);
                One(a, x64, random, sub);
                a.Label(ref skip);
            }
            else
            {
                One(a, x64, random, sub);
            }
        }

        if (x64)
        {
            a.dec(rbp);
        }
        else
        {
            a.dec(ebp);
        }

        a.jnz(loop);
        a.hlt();
        a.Label(ref sub);
        if (x64)
        {
            a.add(rax, rcx);
            a.xor(rdx, rax);
            a.ret();
        }
        else
        {
            a.add(eax, ecx);
            a.ret();
        }
    }

    private static AssemblerMemoryOperand Mem(bool x64, Random r, int size)
    {
        int disp = r.Next(0, 120 / size) * size;
        return (x64, size) switch
        {
            (true, 8) => __qword_ptr[rbx + disp],
            (true, 4) => __dword_ptr[rbx + disp],
            (true, 2) => __word_ptr[rbx + disp],
            (true, _) => __byte_ptr[rbx + disp],
            (false, 4) => __dword_ptr[ebx + disp],
            (false, 2) => __word_ptr[ebx + disp],
            (false, _) => __byte_ptr[ebx + disp],
        };
    }

    private static int Imm(Random r) => r.Next(4) switch
    {
        0 => r.Next(-2, 3),
        1 => r.Next(-128, 128),
        2 => int.MinValue + r.Next(3),
        _ => r.Next(),
    };

    private static void One(Assembler a, bool x64, Random r, Label sub)
    {
        AssemblerRegister32[] r32 = x64 ? R32In64 : R32Only;
        int op = r.Next(9);
        switch (r.Next(x64 ? 24 : 21))
        {
            case 0:
            case 1:
            case 2:
                if (x64)
                {
                    Alu64(a, op, R64[r.Next(R64.Length)], R64[r.Next(R64.Length)]);
                }
                else
                {
                    Alu32(a, op, r32[r.Next(r32.Length)], r32[r.Next(r32.Length)]);
                }

                break;
            case 3:
                Alu32(a, op, r32[r.Next(r32.Length)], r32[r.Next(r32.Length)]);
                break;
            case 4:
                AluImm32(a, op, r32[r.Next(r32.Length)], Imm(r));
                break;
            case 5:
                Alu8(a, op, R8[r.Next(R8.Length)], R8[r.Next(R8.Length)]);
                break;
            case 6:
                AluMem(a, op, Mem(x64, r, 4), r32[r.Next(r32.Length)], r.Next(2) == 0);
                break;
            case 7:
                Alu16(a, op, R16[r.Next(R16.Length)], R16[r.Next(R16.Length)]);
                break;
            case 8:
            {
                AssemblerRegister32 d = r32[r.Next(r32.Length)];
                switch (r.Next(4))
                {
                    case 0: a.inc(d); break;
                    case 1: a.dec(d); break;
                    case 2: a.neg(d); break;
                    default: a.not(d); break;
                }

                break;
            }

            case 9:
            {
                AssemblerMemoryOperand m = Mem(x64, r, 4);
                switch (r.Next(4))
                {
                    case 0: a.inc(m); break;
                    case 1: a.dec(m); break;
                    case 2: a.neg(m); break;
                    default: a.not(m); break;
                }

                break;
            }

            case 10:
            {
                AssemblerRegister32 d = r32[r.Next(r32.Length)];
                byte n = (byte)(r.Next(3) == 0 ? r.Next(64) : r.Next(1, 4));
                switch (r.Next(6))
                {
                    case 0: a.shl(d, n); break;
                    case 1: a.shr(d, n); break;
                    case 2: a.sar(d, n); break;
                    case 3: a.rol(d, n); break;
                    case 4: a.ror(d, cl); break;
                    default: a.shl(d, cl); break;
                }

                break;
            }

            case 11:
            {
                AssemblerRegister8 d = R8[r.Next(R8.Length)];
                byte n = (byte)r.Next(1, 9);
                switch (r.Next(3))
                {
                    case 0: a.shl(d, n); break;
                    case 1: a.shr(d, n); break;
                    default: a.sar(d, n); break;
                }

                break;
            }

            case 12:
            {
                AssemblerRegister32 d = r32[r.Next(r32.Length)];
                switch (r.Next(3))
                {
                    case 0: a.imul(d, r32[r.Next(r32.Length)]); break;
                    case 1: a.imul(d, Mem(x64, r, 4)); break;
                    default: a.imul(d, r32[r.Next(r32.Length)], Imm(r)); break;
                }

                break;
            }

            case 13:
            {
                AssemblerRegister32 d = r32[r.Next(r32.Length)];
                switch (r.Next(5))
                {
                    case 0: a.mov(d, Imm(r)); break;
                    case 1: a.mov(d, Mem(x64, r, 4)); break;
                    case 2: a.mov(Mem(x64, r, 4), d); break;
                    case 3: a.movzx(R32Only[r.Next(R32Only.Length)], R8[r.Next(R8.Length)]); break;
                    default: a.movsx(d, Mem(x64, r, 2)); break;
                }

                break;
            }

            case 14:
            {
                AssemblerRegister32 d = r32[r.Next(r32.Length)], s = r32[r.Next(r32.Length)];
                if (x64)
                {
                    a.lea(R64[r.Next(R64.Length)], __[R64[r.Next(R64.Length)] + (R64[r.Next(R64.Length)] * (1 << r.Next(4))) + r.Next(-64, 64)]);
                }
                else
                {
                    a.lea(d, __[s + (r32[r.Next(r32.Length)] * (1 << r.Next(4))) + r.Next(-64, 64)]);
                }

                break;
            }

            case 15:
                Setcc(a, r.Next(16), r.Next(2) == 0 ? null : R8[r.Next(R8.Length)], Mem(x64, r, 1));
                break;
            case 16:
                Cmovcc(a, r.Next(16), r32[r.Next(r32.Length)], r32[r.Next(r32.Length)]);
                break;
            case 17:
            {
                // Interpreter fallbacks between translated instructions.
                AssemblerRegister32 d = r32[r.Next(r32.Length)];
                switch (r.Next(4))
                {
                    case 0: a.xchg(d, r32[r.Next(r32.Length)]); break;
                    case 1: a.bswap(d); break;
                    case 2: a.cdq(); break;
                    default: a.bt(d, r32[r.Next(r32.Length)]); break;
                }

                break;
            }

            case 18:
                a.mov(Mem(x64, r, 1), R8[r.Next(R8.Length)]);
                break;
            case 19:
                a.movzx(r32[r.Next(r32.Length)], Mem(x64, r, 1));
                break;
            case 20:
                AluImm32(a, op, r32[r.Next(r32.Length)], r.Next(-128, 128));
                break;
            case 21:
            {
                AssemblerRegister64 p = R64[r.Next(R64.Length)], q = R64[r.Next(R64.Length)];
                a.push(p);
                One(a, x64, r, sub);
                a.pop(q);
                break;
            }

            case 22:
                a.call(sub);
                break;
            default:
                a.movsxd(R64[r.Next(R64.Length)], r32[r.Next(r32.Length)]);
                break;
        }
    }

    private static void Alu64(Assembler a, int op, AssemblerRegister64 d, AssemblerRegister64 s)
    {
        switch (op)
        {
            case 0: a.add(d, s); break;
            case 1: a.sub(d, s); break;
            case 2: a.adc(d, s); break;
            case 3: a.sbb(d, s); break;
            case 4: a.and(d, s); break;
            case 5: a.or(d, s); break;
            case 6: a.xor(d, s); break;
            case 7: a.cmp(d, s); break;
            default: a.test(d, s); break;
        }
    }

    private static void Alu32(Assembler a, int op, AssemblerRegister32 d, AssemblerRegister32 s)
    {
        switch (op)
        {
            case 0: a.add(d, s); break;
            case 1: a.sub(d, s); break;
            case 2: a.adc(d, s); break;
            case 3: a.sbb(d, s); break;
            case 4: a.and(d, s); break;
            case 5: a.or(d, s); break;
            case 6: a.xor(d, s); break;
            case 7: a.cmp(d, s); break;
            default: a.test(d, s); break;
        }
    }

    private static void Alu16(Assembler a, int op, AssemblerRegister16 d, AssemblerRegister16 s)
    {
        switch (op)
        {
            case 0: a.add(d, s); break;
            case 1: a.sub(d, s); break;
            case 2: a.adc(d, s); break;
            case 3: a.sbb(d, s); break;
            case 4: a.and(d, s); break;
            case 5: a.or(d, s); break;
            case 6: a.xor(d, s); break;
            case 7: a.cmp(d, s); break;
            default: a.test(d, s); break;
        }
    }

    private static void Alu8(Assembler a, int op, AssemblerRegister8 d, AssemblerRegister8 s)
    {
        switch (op)
        {
            case 0: a.add(d, s); break;
            case 1: a.sub(d, s); break;
            case 2: a.adc(d, s); break;
            case 3: a.sbb(d, s); break;
            case 4: a.and(d, s); break;
            case 5: a.or(d, s); break;
            case 6: a.xor(d, s); break;
            case 7: a.cmp(d, s); break;
            default: a.test(d, s); break;
        }
    }

    private static void AluImm32(Assembler a, int op, AssemblerRegister32 d, int imm)
    {
        switch (op)
        {
            case 0: a.add(d, imm); break;
            case 1: a.sub(d, imm); break;
            case 2: a.adc(d, imm); break;
            case 3: a.sbb(d, imm); break;
            case 4: a.and(d, imm); break;
            case 5: a.or(d, imm); break;
            case 6: a.xor(d, imm); break;
            case 7: a.cmp(d, imm); break;
            default: a.test(d, imm); break;
        }
    }

    private static void AluMem(Assembler a, int op, AssemblerMemoryOperand m, AssemblerRegister32 r, bool memoryIsDestination)
    {
        if (memoryIsDestination)
        {
            switch (op)
            {
                case 0: a.add(m, r); break;
                case 1: a.sub(m, r); break;
                case 2: a.adc(m, r); break;
                case 3: a.sbb(m, r); break;
                case 4: a.and(m, r); break;
                case 5: a.or(m, r); break;
                case 6: a.xor(m, r); break;
                case 7: a.cmp(m, r); break;
                default: a.test(m, r); break;
            }
        }
        else
        {
            switch (op)
            {
                case 0: a.add(r, m); break;
                case 1: a.sub(r, m); break;
                case 2: a.adc(r, m); break;
                case 3: a.sbb(r, m); break;
                case 4: a.and(r, m); break;
                case 5: a.or(r, m); break;
                case 6: a.xor(r, m); break;
                case 7: a.cmp(r, m); break;
                default: a.test(m, r); break;
            }
        }
    }

    private static void Jcc(Assembler a, int cc, Label target)
    {
        switch (cc)
        {
            case 0: a.jo(target); break;
            case 1: a.jno(target); break;
            case 2: a.jb(target); break;
            case 3: a.jae(target); break;
            case 4: a.je(target); break;
            case 5: a.jne(target); break;
            case 6: a.jbe(target); break;
            case 7: a.ja(target); break;
            case 8: a.js(target); break;
            case 9: a.jns(target); break;
            case 10: a.jp(target); break;
            case 11: a.jnp(target); break;
            case 12: a.jl(target); break;
            case 13: a.jge(target); break;
            case 14: a.jle(target); break;
            default: a.jg(target); break;
        }
    }

    private static void Setcc(Assembler a, int cc, AssemblerRegister8? r, AssemblerMemoryOperand m)
    {
        if (r is { } d)
        {
            switch (cc)
            {
                case 0: a.seto(d); break;
                case 1: a.setno(d); break;
                case 2: a.setb(d); break;
                case 3: a.setae(d); break;
                case 4: a.sete(d); break;
                case 5: a.setne(d); break;
                case 6: a.setbe(d); break;
                case 7: a.seta(d); break;
                case 8: a.sets(d); break;
                case 9: a.setns(d); break;
                case 10: a.setp(d); break;
                case 11: a.setnp(d); break;
                case 12: a.setl(d); break;
                case 13: a.setge(d); break;
                case 14: a.setle(d); break;
                default: a.setg(d); break;
            }

            return;
        }

        switch (cc)
        {
            case 0: a.seto(m); break;
            case 1: a.setno(m); break;
            case 2: a.setb(m); break;
            case 3: a.setae(m); break;
            case 4: a.sete(m); break;
            case 5: a.setne(m); break;
            case 6: a.setbe(m); break;
            case 7: a.seta(m); break;
            case 8: a.sets(m); break;
            case 9: a.setns(m); break;
            case 10: a.setp(m); break;
            case 11: a.setnp(m); break;
            case 12: a.setl(m); break;
            case 13: a.setge(m); break;
            case 14: a.setle(m); break;
            default: a.setg(m); break;
        }
    }

    private static void Cmovcc(Assembler a, int cc, AssemblerRegister32 d, AssemblerRegister32 s)
    {
        switch (cc)
        {
            case 0: a.cmovo(d, s); break;
            case 1: a.cmovno(d, s); break;
            case 2: a.cmovb(d, s); break;
            case 3: a.cmovae(d, s); break;
            case 4: a.cmove(d, s); break;
            case 5: a.cmovne(d, s); break;
            case 6: a.cmovbe(d, s); break;
            case 7: a.cmova(d, s); break;
            case 8: a.cmovs(d, s); break;
            case 9: a.cmovns(d, s); break;
            case 10: a.cmovp(d, s); break;
            case 11: a.cmovnp(d, s); break;
            case 12: a.cmovl(d, s); break;
            case 13: a.cmovge(d, s); break;
            case 14: a.cmovle(d, s); break;
            default: a.cmovg(d, s); break;
        }
    }
}
