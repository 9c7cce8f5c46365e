using System.Numerics;
using System.Runtime.Intrinsics.X86;
using Hypervisor.Accel.Tcg.Tests.Native;
using Iced.Intel;
using static Hypervisor.Accel.Tcg.Alu.AluFlags;
using AluOps = Hypervisor.Accel.Tcg.Alu.Alu;
using Hypervisor.Accel.Tcg.Alu;

namespace Hypervisor.Accel.Tcg.Tests.Alu;

/// <summary>
/// The catalogue of instruction forms checked against the host CPU. Undefined flags are masked per instruction with
/// the rule from the instruction's "Flags Affected" section in the Intel SDM Vol. 2 (cited next to each mask).
/// </summary>
internal static class AluForms
{
    public const int Rax = 0, Rcx = 1, Rdx = 2, Rbx = 3, Rsi = 6;

    /// <summary>Marks an operand that lives in the scratch block at RSI (offset 0) instead of a register.</summary>
    public const int Memory = -1;

    private static readonly int[] AllSizes = [8, 16, 32, 64];
    private static readonly int[] WideSizes = [16, 32, 64];
    private static readonly int[] VexSizes = [32, 64];

    public static IReadOnlyList<AluForm> All { get; } = Build();

    public static IReadOnlyDictionary<string, AluForm> ByName { get; } = All.ToDictionary(f => f.Name);

    private delegate ulong BinaryOp(ulong a, ulong b, int bits, ref ulong rflags);

    private delegate ulong UnaryOp(ulong a, int bits, ref ulong rflags);

    private delegate ulong ShiftOp(ulong a, ulong count, int bits, ref ulong rflags);

    private static List<AluForm> Build()
    {
        var forms = new List<AluForm>();
        AddArithmeticAndLogic(forms);
        AddShiftsAndRotates(forms);
        AddMultiplyDivide(forms);
        AddBitInstructions(forms);
        AddBmi(forms);
        AddDecimal(forms);
        AddMemoryForms(forms);
        return forms;
    }

    // ---- ADD ADC SUB SBB CMP AND OR XOR TEST XADD CMPXCHG NEG NOT INC DEC ADCX ADOX ----
    private static void AddArithmeticAndLogic(List<AluForm> forms)
    {
        // SDM: ADD/ADC/SUB/SBB/CMP/NEG/INC/DEC/XADD/CMPXCHG define all the flags they change (INC/DEC keep CF).
        // AND/OR/XOR/TEST: "The OF and CF flags are cleared; the SF, ZF, and PF flags are set according to the result.
        // The state of the AF flag is undefined."
        foreach (int b in AllSizes)
        {
            Binary(forms, "ADD", b, AluOps.Add, true, 0, 0);
            Binary(forms, "ADC", b, AluOps.Adc, true, CF, 0);
            Binary(forms, "SUB", b, AluOps.Sub, true, 0, 0);
            Binary(forms, "SBB", b, AluOps.Sbb, true, CF, 0);
            Binary(forms, "CMP", b, static (ulong a, ulong x, int n, ref ulong f) => { AluOps.Cmp(a, x, n, ref f); return a; }, false, 0, 0);
            Binary(forms, "AND", b, AluOps.And, true, 0, AF);
            Binary(forms, "OR", b, AluOps.Or, true, 0, AF);
            Binary(forms, "XOR", b, AluOps.Xor, true, 0, AF);
            Binary(forms, "TEST", b, static (ulong a, ulong x, int n, ref ulong f) => { AluOps.Test(a, x, n, ref f); return a; }, false, 0, AF);
            Unary(forms, "NEG", b, AluOps.Neg, 0);
            Unary(forms, "NOT", b, static (ulong a, int n, ref ulong f) => AluOps.Not(a, n), 0);
            Unary(forms, "INC", b, AluOps.Inc, CF);
            Unary(forms, "DEC", b, AluOps.Dec, CF);

            int bits = b;
            forms.Add(new AluForm
            {
                Name = $"XADD r/m{b}, r{b}",
                Emit = a => a.AddInstruction(Instruction.Create(Code($"Xadd_rm{bits}_r{bits}"), R(Rax, bits), R(Rcx, bits))),
                Operands = [new(Rax, b), new(Rcx, b)],
                Emulate = (ref RegisterFile r) =>
                {
                    ulong dest = Get(r, Rax, bits), src = Get(r, Rcx, bits);
                    ulong sum = AluOps.Add(dest, src, bits, ref r.Rflags);
                    Set(ref r, Rcx, bits, dest);
                    Set(ref r, Rax, bits, sum);
                    return true;
                },
            });
            forms.Add(new AluForm
            {
                Name = $"CMPXCHG r/m{b}, r{b}",
                Emit = a => a.AddInstruction(Instruction.Create(Code($"Cmpxchg_rm{bits}_r{bits}"), R(Rbx, bits), R(Rcx, bits))),
                Operands = [new(Rax, b), new(Rbx, b)],
                // SDM CMPXCHG: on a mismatch "DEST := TEMP" writes the destination back, which for a 32-bit register
                // would clear its upper half; AMD processors leave the register untouched instead. Not compared.
                UnspecifiedBits = bits == 32
                    ? r => (r[Rax] & 0xFFFF_FFFF) != (r[Rbx] & 0xFFFF_FFFF) ? (Rbx, 0xFFFF_FFFF_0000_0000) : (Rbx, 0)
                    : null,
                // Equal operands are rare at random: make half of the random inputs take the "store" path.
                ShapeRandom = (Random random, ref RegisterFile r, ulong _) =>
                {
                    if (random.Next(2) == 0)
                    {
                        Set(ref r, Rbx, bits, r[Rax]);
                    }
                },
                Emulate = (ref RegisterFile r) =>
                {
                    if (AluOps.CmpXchg(Get(r, Rax, bits), Get(r, Rbx, bits), bits, ref r.Rflags))
                    {
                        Set(ref r, Rbx, bits, Get(r, Rcx, bits));
                    }
                    else
                    {
                        Set(ref r, Rax, bits, Get(r, Rbx, bits));
                    }

                    return true;
                },
            });
        }

        // The same operations with the destination in memory (scratch block at RSI).
        foreach (int b in AllSizes)
        {
            BinaryMemory(forms, "ADD", b, AluOps.Add, 0, 0);
            BinaryMemory(forms, "ADC", b, AluOps.Adc, CF, 0);
            BinaryMemory(forms, "SBB", b, AluOps.Sbb, CF, 0);
            BinaryMemory(forms, "XOR", b, AluOps.Xor, 0, AF);
        }

        // ADCX/ADOX: "CF is updated based on the result. OF, SF, ZF, AF, and PF flags are unmodified" (and symmetrically
        // for ADOX with OF). Nothing is undefined.
        foreach (int b in VexSizes)
        {
            int bits = b;
            foreach ((string name, BinaryOp op, ulong flag) in new (string, BinaryOp, ulong)[] { ("ADCX", AluOps.Adcx, CF), ("ADOX", AluOps.Adox, OF) })
            {
                forms.Add(new AluForm
                {
                    Name = $"{name} r{b}, r/m{b}",
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"{name[0]}{name[1..].ToLowerInvariant()}_r{bits}_rm{bits}"), R(Rax, bits), R(Rcx, bits))),
                    Operands = [new(Rax, b), new(Rcx, b)],
                    FlagsIn = flag,
                    MissingFeature = static () => HasAdx() ? null : "the host CPU has no ADX (CPUID.7.0:EBX[19])",
                    Emulate = (ref RegisterFile r) =>
                    {
                        Set(ref r, Rax, bits, op(r[Rax], r[Rcx], bits, ref r.Rflags));
                        return true;
                    },
                });
            }
        }
    }

    // ---- Memory operands: the same semantics, but through the interpreter's load/store paths (scratch block at RSI) ----
    private static void AddMemoryForms(List<AluForm> forms)
    {
        foreach (int b in AllSizes)
        {
            int bits = b;
            foreach ((string name, UnaryOp op) in new (string, UnaryOp)[]
            {
                ("NEG", AluOps.Neg), ("NOT", static (ulong a, int n, ref ulong f) => AluOps.Not(a, n)), ("INC", AluOps.Inc), ("DEC", AluOps.Dec),
            })
            {
                forms.Add(MemoryForm($"{name} m{b}", $"{Title(name)}_rm{b}", b, [new(Memory, b)], name is "INC" or "DEC" ? CF : 0,
                    _ => 0, (ulong m, ref RegisterFile r) => op(m, bits, ref r.Rflags)));
            }

            foreach ((string name, ShiftOp op) in new (string, ShiftOp)[] { ("SHL", AluOps.Shl), ("SAR", AluOps.Sar), ("ROL", AluOps.Rol), ("RCR", AluOps.Rcr) })
            {
                forms.Add(MemoryForm($"{name} m{b}, CL", $"{Title(name)}_rm{b}_CL", b, [new(Memory, b), new(Rcx, 8)], name == "RCR" ? CF : 0,
                    r => ShiftUndefined(name, bits, r[Rcx]), (ulong m, ref RegisterFile r) => op(m, r[Rcx] & 0xFF, bits, ref r.Rflags)));
            }

            forms.Add(MemoryForm($"XADD m{b}, r{b}", $"Xadd_rm{b}_r{b}", b, [new(Memory, b), new(Rcx, b)], 0, _ => 0, (ulong m, ref RegisterFile r) =>
            {
                ulong sum = AluOps.Add(m, r[Rcx], bits, ref r.Rflags);
                Set(ref r, Rcx, bits, m);
                return sum;
            }));
            forms.Add(MemoryForm($"CMPXCHG m{b}, r{b}", $"Cmpxchg_rm{b}_r{b}", b, [new(Memory, b), new(Rax, b)], 0, _ => 0, (ulong m, ref RegisterFile r) =>
            {
                if (AluOps.CmpXchg(r[Rax], m, bits, ref r.Rflags))
                {
                    return Get(r, Rcx, bits);
                }

                Set(ref r, Rax, bits, m);
                return m;
            }));
            forms.Add(MemoryForm($"MUL m{b}", $"Mul_rm{b}", b, [new(Memory, b), new(Rax, b)], 0, _ => SF | ZF | AF | PF, (ulong m, ref RegisterFile r) =>
            {
                ulong low = AluOps.Mul(r[Rax], m, bits, out ulong high, ref r.Rflags);
                if (bits == 8)
                {
                    Set(ref r, Rax, 16, (high << 8) | low);
                }
                else
                {
                    Set(ref r, Rax, bits, low);
                    Set(ref r, Rdx, bits, high);
                }

                return m;
            }));

            // Source in memory, destination a register.
            forms.Add(new AluForm
            {
                Name = $"SUB r{b}, m{b}",
                Emit = a => a.AddInstruction(Instruction.Create(Code($"Sub_r{bits}_rm{bits}"), R(Rax, bits), new MemoryOperand(Register.RSI))),
                Operands = [new(Rax, b), new(Memory, b)],
                Shape = (Random _, ref RegisterFile r, ulong scratch) => r.Rsi = scratch,
                Emulate = (ref RegisterFile r) =>
                {
                    Set(ref r, Rax, bits, AluOps.Sub(r[Rax], ReadLittleEndian(r.Scratch[..(bits / 8)]), bits, ref r.Rflags));
                    return true;
                },
            });

            if (bits >= 16)
            {
                forms.Add(MemoryForm($"SHLD m{b}, r{b}, CL", $"Shld_rm{b}_r{b}_CL", b, [new(Memory, b), new(Rbx, b), new(Rcx, 8)], 0,
                    r => DoubleShiftUndefined(bits, r[Rcx]), (ulong m, ref RegisterFile r) => AluOps.Shld(m, r[Rbx], r[Rcx] & 0xFF, bits, ref r.Rflags),
                    r => ((int)r[Rcx] & AluOps.CountMask(bits)) > bits));
            }
        }
    }

    private delegate ulong MemoryEmulator(ulong memoryValue, ref RegisterFile registers);

    /// <summary>A form whose first operand is <paramref name="bits"/> wide at [RSI] (the scratch block); the emulator returns the value stored back.</summary>
    private static AluForm MemoryForm(string name, string code, int bits, Operand[] operands, ulong flagsIn, Func<RegisterFile, ulong> undefined,
        MemoryEmulator emulate, Func<RegisterFile, bool>? resultUndefined = null) => new()
    {
        Name = name,
        Emit = a =>
        {
            // The operands after [RSI] follow from the encoding's name: "_r" takes RCX (or RBX before CL), "_CL" takes CL.
            Code c = Code(code);
            var memory = new MemoryOperand(Register.RSI);
            bool withCl = code.EndsWith("_CL", StringComparison.Ordinal);
            bool withRegister = code.Split('_').Skip(2).Any(part => part.StartsWith('r'));
            Instruction instruction = (withRegister, withCl) switch
            {
                (true, true) => Instruction.Create(c, memory, R(Rbx, bits), Register.CL),
                (false, true) => Instruction.Create(c, memory, Register.CL),
                (true, false) => Instruction.Create(c, memory, R(Rcx, bits)),
                _ => Instruction.Create(c, memory),
            };
            a.AddInstruction(instruction);
        },
        Operands = operands,
        FlagsIn = flagsIn,
        UndefinedFlags = undefined,
        ResultUndefined = resultUndefined,
        Shape = (Random _, ref RegisterFile r, ulong scratch) => r.Rsi = scratch,
        Emulate = (ref RegisterFile r) =>
        {
            Span<byte> bytes = r.Scratch[..(bits / 8)];
            ulong stored = emulate(ReadLittleEndian(bytes), ref r);
            WriteLittleEndian(r.Scratch[..(bits / 8)], stored);
            return true;
        },
    };

    private static string Title(string mnemonic) => mnemonic[0] + mnemonic[1..].ToLowerInvariant();

    // ---- SHL SHR SAR ROL ROR RCL RCR SHLD SHRD ----
    private static void AddShiftsAndRotates(List<AluForm> forms)
    {
        (string Name, ShiftOp Op)[] ops =
        [
            ("SHL", AluOps.Shl), ("SHR", AluOps.Shr), ("SAR", AluOps.Sar),
            ("ROL", AluOps.Rol), ("ROR", AluOps.Ror), ("RCL", AluOps.Rcl), ("RCR", AluOps.Rcr),
        ];
        foreach (int b in AllSizes)
        {
            int bits = b;
            foreach ((string name, ShiftOp op) in ops)
            {
                string code = name[0] + name[1..].ToLowerInvariant();
                ulong flagsIn = name is "RCL" or "RCR" ? CF : 0;
                forms.Add(new AluForm
                {
                    Name = $"{name} r/m{b}, CL",
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"{code}_rm{bits}_CL"), R(Rax, bits), Register.CL)),
                    Operands = [new(Rax, b), new(Rcx, 8)],
                    FlagsIn = flagsIn,
                    UndefinedFlags = r => ShiftUndefined(name, bits, r[Rcx]),
                    Emulate = (ref RegisterFile r) =>
                    {
                        Set(ref r, Rax, bits, op(r[Rax], r[Rcx] & 0xFF, bits, ref r.Rflags));
                        return true;
                    },
                });
                forms.Add(new AluForm
                {
                    Name = $"{name} r/m{b}, 1",
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"{code}_rm{bits}_1"), R(Rax, bits), 1)),
                    Operands = [new(Rax, b)],
                    FlagsIn = flagsIn,
                    UndefinedFlags = _ => ShiftUndefined(name, bits, 1),
                    Emulate = (ref RegisterFile r) =>
                    {
                        Set(ref r, Rax, bits, op(r[Rax], 1, bits, ref r.Rflags));
                        return true;
                    },
                });
                foreach (int count in new[] { 0, 1, 8, 17, 33, 255 })
                {
                    forms.Add(new AluForm
                    {
                        Name = $"{name} r/m{b}, imm8 {count}",
                        Emit = a => a.AddInstruction(Instruction.Create(Code($"{code}_rm{bits}_imm8"), R(Rax, bits), count)),
                        Operands = [new(Rax, b)],
                        FlagsIn = flagsIn,
                        UndefinedFlags = _ => ShiftUndefined(name, bits, (ulong)count),
                        Emulate = (ref RegisterFile r) =>
                        {
                            Set(ref r, Rax, bits, op(r[Rax], (ulong)count, bits, ref r.Rflags));
                            return true;
                        },
                    });
                }
            }
        }

        foreach (int b in WideSizes)
        {
            int bits = b;
            foreach (string name in new[] { "SHLD", "SHRD" })
            {
                forms.Add(new AluForm
                {
                    Name = $"{name} r/m{b}, r{b}, CL",
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"{name[0]}{name[1..].ToLowerInvariant()}_rm{bits}_r{bits}_CL"), R(Rax, bits), R(Rbx, bits), Register.CL)),
                    Operands = [new(Rax, b), new(Rbx, b), new(Rcx, 8)],
                    UndefinedFlags = r => DoubleShiftUndefined(bits, r[Rcx]),
                    // SDM SHLD/SHRD: "If the count is greater than the operand size, the result is undefined."
                    ResultUndefined = r => ((int)r[Rcx] & AluOps.CountMask(bits)) > bits,
                    Emulate = (ref RegisterFile r) =>
                    {
                        ulong v = name == "SHLD"
                            ? AluOps.Shld(r[Rax], r[Rbx], r[Rcx] & 0xFF, bits, ref r.Rflags)
                            : AluOps.Shrd(r[Rax], r[Rbx], r[Rcx] & 0xFF, bits, ref r.Rflags);
                        Set(ref r, Rax, bits, v);
                        return true;
                    },
                });
            }
        }
    }

    // SDM SAL/SAR/SHL/SHR: "The CF flag contains the value of the last bit shifted out ... it is undefined for SHL and SHR
    // instructions where the count is greater than or equal to the size (in bits) of the destination operand. The OF flag
    // is affected only for 1-bit shifts; otherwise it is undefined. ... If the count is 0, the flags are not affected.
    // For a non-zero count, the AF flag is undefined."
    // SDM RCL/RCR/ROL/ROR: "If the masked count is 0, the flags are not affected. If the masked count is 1, then the OF flag
    // is affected, otherwise (masked count is greater than 1) the OF flag is undefined."
    private static ulong ShiftUndefined(string name, int bits, ulong count)
    {
        int n = (int)count & AluOps.CountMask(bits);
        if (n == 0)
        {
            return 0;
        }

        ulong undefined = n == 1 ? 0 : OF;
        if (name is "SHL" or "SHR" or "SAR")
        {
            undefined |= AF;
        }

        if (name is "SHL" or "SHR" && n >= bits)
        {
            undefined |= CF;
        }

        return undefined;
    }

    // SDM SHLD/SHRD: "If the count is 1 or greater, the CF flag is filled with the last bit shifted out ... For a 1-bit
    // shift, the OF flag is set if a sign change occurred; otherwise, it is cleared. For shifts greater than 1 bit, the OF
    // flag is undefined. If a shift occurs, the AF flag is undefined. If the count operand is 0, the flags are not affected.
    // If the count is greater than the operand size, the flags are undefined."
    private static ulong DoubleShiftUndefined(int bits, ulong count)
    {
        int n = (int)count & AluOps.CountMask(bits);
        return n == 0 ? 0 : n > bits ? Status : n == 1 ? AF : AF | OF;
    }

    // ---- MUL IMUL DIV IDIV ----
    private static void AddMultiplyDivide(List<AluForm> forms)
    {
        // SDM MUL/IMUL: "The OF and CF flags are set to 0 if the upper half of the result is 0 [MUL] / the signed result fits
        // [IMUL]; otherwise, they are set to 1. The SF, ZF, AF, and PF flags are undefined."
        const ulong mulUndefined = SF | ZF | AF | PF;
        // SDM DIV/IDIV: "The CF, OF, SF, ZF, AF, and PF flags are undefined."
        foreach (int b in AllSizes)
        {
            int bits = b;
            foreach (string name in new[] { "MUL", "IMUL" })
            {
                bool signed = name == "IMUL";
                forms.Add(new AluForm
                {
                    Name = $"{name} r/m{b}",
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"{name[0]}{name[1..].ToLowerInvariant()}_rm{bits}"), R(Rbx, bits))),
                    Operands = [new(Rax, b), new(Rbx, b)],
                    UndefinedFlags = _ => mulUndefined,
                    Emulate = (ref RegisterFile r) =>
                    {
                        ulong high;
                        ulong low = signed
                            ? AluOps.Imul(r[Rax], r[Rbx], bits, out high, ref r.Rflags)
                            : AluOps.Mul(r[Rax], r[Rbx], bits, out high, ref r.Rflags);
                        if (bits == 8)
                        {
                            Set(ref r, Rax, 16, (high << 8) | low);
                        }
                        else
                        {
                            Set(ref r, Rax, bits, low);
                            Set(ref r, Rdx, bits, high);
                        }

                        return true;
                    },
                });

                forms.Add(new AluForm
                {
                    Name = $"{(signed ? "IDIV" : "DIV")} r/m{b}",
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"{(signed ? "Idiv" : "Div")}_rm{bits}"), R(Rbx, bits))),
                    Operands = bits == 8 ? [new(Rax, 16), new(Rbx, 8)] : [new(Rdx, b), new(Rax, b), new(Rbx, b)],
                    UndefinedFlags = _ => Status,
                    Faults = r => DivideFaults(r, bits, signed),
                    ShapeRandom = (Random random, ref RegisterFile r, ulong _) => ShapeDividend(random, ref r, bits, signed),
                    Emulate = (ref RegisterFile r) =>
                    {
                        ulong high = bits == 8 ? r[Rax] >> 8 : r[Rdx];
                        ulong low = r[Rax];
                        bool ok = signed
                            ? AluOps.Idiv(high, low, r[Rbx], bits, out ulong q, out ulong rem)
                            : AluOps.Div(high, low, r[Rbx], bits, out q, out rem);
                        if (!ok)
                        {
                            return false;
                        }

                        if (bits == 8)
                        {
                            Set(ref r, Rax, 16, (rem << 8) | q);
                        }
                        else
                        {
                            Set(ref r, Rax, bits, q);
                            Set(ref r, Rdx, bits, rem);
                        }

                        return true;
                    },
                });
            }
        }

        foreach (int b in WideSizes)
        {
            int bits = b;
            forms.Add(new AluForm
            {
                Name = $"IMUL r{b}, r/m{b}",
                Emit = a => a.AddInstruction(Instruction.Create(Code($"Imul_r{bits}_rm{bits}"), R(Rax, bits), R(Rbx, bits))),
                Operands = [new(Rax, b), new(Rbx, b)],
                UndefinedFlags = _ => mulUndefined,
                Emulate = (ref RegisterFile r) =>
                {
                    Set(ref r, Rax, bits, AluOps.Imul(r[Rax], r[Rbx], bits, out _, ref r.Rflags));
                    return true;
                },
            });
            foreach (int imm in new[] { 0, 1, -1, 3, 0x7F, -0x80, 0x7FFF, -0x8000, 0x12345678, int.MinValue })
            {
                bool isImm8 = imm is >= -0x80 and <= 0x7F;
                if (!isImm8 && bits == 16 && imm is < -0x8000 or > 0x7FFF)
                {
                    continue;
                }

                string immKind = isImm8 ? "imm8" : bits == 16 ? "imm16" : "imm32";
                forms.Add(new AluForm
                {
                    Name = $"IMUL r{b}, r/m{b}, {immKind} {imm}",
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"Imul_r{bits}_rm{bits}_{immKind}"), R(Rax, bits), R(Rbx, bits), imm)),
                    Operands = [new(Rbx, b)],
                    UndefinedFlags = _ => mulUndefined,
                    Emulate = (ref RegisterFile r) =>
                    {
                        Set(ref r, Rax, bits, AluOps.Imul(r[Rbx], (ulong)(long)imm, bits, out _, ref r.Rflags));
                        return true;
                    },
                });
            }
        }
    }

    /// <summary>The SDM's #DE rule for DIV/IDIV, computed with BigInteger: divisor 0 or a quotient too large for the destination.</summary>
    private static bool DivideFaults(RegisterFile r, int bits, bool signed)
    {
        BigInteger high = bits == 8 ? (r[Rax] >> 8) & 0xFF : r[Rdx] & AluOps.Mask(bits);
        BigInteger low = bits == 8 ? r[Rax] & 0xFF : r[Rax] & AluOps.Mask(bits);
        BigInteger divisor = r[Rbx] & AluOps.Mask(bits);
        BigInteger dividend = (high << bits) + low;
        if (signed)
        {
            if (dividend >= BigInteger.One << (2 * bits - 1))
            {
                dividend -= BigInteger.One << (2 * bits);
            }

            if (divisor >= BigInteger.One << (bits - 1))
            {
                divisor -= BigInteger.One << bits;
            }
        }

        if (divisor.IsZero)
        {
            return true;
        }

        BigInteger quotient = BigInteger.Divide(dividend, divisor); // truncates toward zero, as IDIV does
        BigInteger min = signed ? -(BigInteger.One << (bits - 1)) : BigInteger.Zero;
        BigInteger max = signed ? (BigInteger.One << (bits - 1)) - 1 : (BigInteger.One << bits) - 1;
        return quotient < min || quotient > max;
    }

    /// <summary>Random dividends mostly overflow; make three quarters of them fit so the native path is exercised.</summary>
    private static void ShapeDividend(Random random, ref RegisterFile r, int bits, bool signed)
    {
        if (random.Next(4) == 0)
        {
            return;
        }

        ulong m = AluOps.Mask(bits);
        ulong divisor = r[Rbx] & m;
        int highRegister = bits == 8 ? Rax : Rdx;
        ulong high;
        if (signed)
        {
            // A dividend that is the sign extension of its low half always fits unless it is MIN / -1.
            high = (ulong)(AluOps.SignExtend(r[Rax], bits) >> 63) & m;
        }
        else
        {
            high = divisor == 0 ? 0 : (ulong)random.NextInt64() % divisor;
        }

        if (bits == 8)
        {
            r[Rax] = (r[Rax] & ~0xFF00UL) | (high << 8);
        }
        else
        {
            Set(ref r, highRegister, bits, high);
        }
    }

    // ---- BT BTS BTR BTC BSF BSR POPCNT LZCNT TZCNT BSWAP ----
    private static void AddBitInstructions(List<AluForm> forms)
    {
        // SDM BT/BTS/BTR/BTC: "The CF flag contains the value of the selected bit before it is changed. The ZF flag is
        // unaffected. The OF, SF, AF, and PF flags are undefined."
        const ulong btUndefined = OF | SF | AF | PF;
        (string Name, BinaryOp? Op)[] bitOps =
        [
            ("BT", null), ("BTS", AluOps.Bts), ("BTR", AluOps.Btr), ("BTC", AluOps.Btc),
        ];
        foreach (int b in WideSizes)
        {
            int bits = b;
            foreach ((string name, BinaryOp? op) in bitOps)
            {
                string code = name[0] + name[1..].ToLowerInvariant();
                forms.Add(new AluForm
                {
                    Name = $"{name} r/m{b}, r{b}",
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"{code}_rm{bits}_r{bits}"), R(Rax, bits), R(Rcx, bits))),
                    Operands = [new(Rax, b), new(Rcx, b)],
                    UndefinedFlags = _ => btUndefined,
                    Emulate = (ref RegisterFile r) =>
                    {
                        if (op is null)
                        {
                            AluOps.Bt(r[Rax], r[Rcx], bits, ref r.Rflags);
                        }
                        else
                        {
                            Set(ref r, Rax, bits, op(r[Rax], r[Rcx], bits, ref r.Rflags));
                        }

                        return true;
                    },
                });

                // Memory form with a register offset: the offset is a signed index into a bit string that may lie
                // before or after the operand's address (RSI points to the middle of the scratch block).
                forms.Add(new AluForm
                {
                    Name = $"{name} m{b}, r{b}",
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"{code}_rm{bits}_r{bits}"), new MemoryOperand(Register.RSI), R(Rcx, bits))),
                    Operands = [new(Rcx, b)],
                    UndefinedFlags = _ => btUndefined,
                    Shape = (Random random, ref RegisterFile r, ulong scratch) =>
                    {
                        r.Rsi = scratch + 32;
                        // Keep |offset| < 256 bits so the addressed operand stays within the 64-byte scratch block.
                        Set(ref r, Rcx, bits, (ulong)(AluOps.SignExtend(r[Rcx], bits) % 256));
                    },
                    Emulate = (ref RegisterFile r) =>
                    {
                        int at = 32 + (int)AluOps.BitStringByteOffset(r[Rcx], bits);
                        Span<byte> bytes = r.Scratch[at..(at + (bits / 8))];
                        ulong value = ReadLittleEndian(bytes);
                        if (op is null)
                        {
                            AluOps.Bt(value, r[Rcx], bits, ref r.Rflags);
                        }
                        else
                        {
                            WriteLittleEndian(bytes, op(value, r[Rcx], bits, ref r.Rflags));
                        }

                        return true;
                    },
                });

                foreach (int imm in new[] { 0, 5, 15, 31, 63, 67, 255 })
                {
                    forms.Add(new AluForm
                    {
                        Name = $"{name} r/m{b}, imm8 {imm}",
                        Emit = a => a.AddInstruction(Instruction.Create(Code($"{code}_rm{bits}_imm8"), R(Rax, bits), imm)),
                        Operands = [new(Rax, b)],
                        UndefinedFlags = _ => btUndefined,
                        Emulate = (ref RegisterFile r) =>
                        {
                            if (op is null)
                            {
                                AluOps.Bt(r[Rax], (ulong)imm, bits, ref r.Rflags);
                            }
                            else
                            {
                                Set(ref r, Rax, bits, op(r[Rax], (ulong)imm, bits, ref r.Rflags));
                            }

                            return true;
                        },
                    });
                }
            }

            // SDM BSF/BSR: "The ZF flag is set to 1 if the source operand is 0; otherwise, the ZF flag is cleared. The CF, OF,
            // SF, AF, and PF flags are undefined." (The destination for a zero source is "undefined" in Intel's text and
            // "unchanged" in AMD's; we check that the low half is unchanged.)
            foreach (string name in new[] { "BSF", "BSR" })
            {
                forms.Add(new AluForm
                {
                    Name = $"{name} r{b}, r/m{b}",
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"{name[0]}{name[1..].ToLowerInvariant()}_r{bits}_rm{bits}"), R(Rax, bits), R(Rcx, bits))),
                    Operands = [new(Rax, b), new(Rcx, b)],
                    UndefinedFlags = _ => CF | OF | SF | AF | PF,
                    // Whether a 32-bit destination that is left alone has its upper half cleared differs between
                    // vendors (AMD: untouched); the low half must stay.
                    UnspecifiedBits = bits == 32
                        ? r => (r[Rcx] & 0xFFFF_FFFF) == 0 ? (Rax, 0xFFFF_FFFF_0000_0000) : (Rax, 0)
                        : null,
                    Emulate = (ref RegisterFile r) =>
                    {
                        bool found = name == "BSF"
                            ? AluOps.Bsf(r[Rcx], bits, out ulong index, ref r.Rflags)
                            : AluOps.Bsr(r[Rcx], bits, out index, ref r.Rflags);
                        if (found)
                        {
                            Set(ref r, Rax, bits, index);
                        }

                        return true;
                    },
                });
            }

            // SDM POPCNT: "OF, SF, ZF, AF, CF, PF are all cleared. ZF is set if SRC = 0". LZCNT/TZCNT: "ZF is set to 1 in case
            // of zero output ... CF flag is set to 1 if input was zero and cleared otherwise. OF, SF, PF and AF flags are
            // undefined."
            (string Name, UnaryOp Op, ulong Undefined, Func<string?> Missing)[] counts =
            [
                ("POPCNT", AluOps.Popcnt, 0, static () => Popcnt.IsSupported ? null : "the host CPU has no POPCNT"),
                ("LZCNT", AluOps.Lzcnt, OF | SF | PF | AF, static () => Lzcnt.IsSupported ? null : "the host CPU has no LZCNT (ABM)"),
                ("TZCNT", AluOps.Tzcnt, OF | SF | PF | AF, static () => Bmi1.IsSupported ? null : "the host CPU has no BMI1 (TZCNT)"),
            ];
            foreach ((string name, UnaryOp op, ulong undefined, Func<string?> missing) in counts)
            {
                forms.Add(new AluForm
                {
                    Name = $"{name} r{b}, r/m{b}",
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"{name[0]}{name[1..].ToLowerInvariant()}_r{bits}_rm{bits}"), R(Rax, bits), R(Rcx, bits))),
                    Operands = [new(Rcx, b)],
                    UndefinedFlags = _ => undefined,
                    MissingFeature = missing,
                    Emulate = (ref RegisterFile r) =>
                    {
                        Set(ref r, Rax, bits, op(r[Rcx], bits, ref r.Rflags));
                        return true;
                    },
                });
            }
        }

        // SDM BSWAP: flags unaffected. With a 16-bit operand the SDM calls the result undefined; the processors we know of
        // write 0 to the low 16 bits, which AluOps.Bswap returns, and running the form on the host checks that claim.
        foreach (int b in WideSizes)
        {
            int bits = b;
            forms.Add(new AluForm
            {
                Name = $"BSWAP r{b}",
                Emit = a => a.AddInstruction(Instruction.Create(Code($"Bswap_r{bits}"), R(Rax, bits))),
                Operands = [new(Rax, b)],
                Emulate = (ref RegisterFile r) =>
                {
                    Set(ref r, Rax, bits, AluOps.Bswap(r[Rax], bits));
                    return true;
                },
            });
        }
    }

    // ---- BMI1, BMI2 ----
    private static void AddBmi(List<AluForm> forms)
    {
        static string? NoBmi1() => Bmi1.IsSupported ? null : "the host CPU has no BMI1";
        static string? NoBmi2() => Bmi2.IsSupported ? null : "the host CPU has no BMI2";

        foreach (int b in VexSizes)
        {
            int bits = b;

            // ANDN (dest, vvvv, r/m): "SF and ZF are updated based on result. OF and CF flags are cleared. AF and PF flags
            // are undefined."
            forms.Add(new AluForm
            {
                Name = $"ANDN r{b}",
                Emit = a => a.AddInstruction(Instruction.Create(Code($"VEX_Andn_r{bits}_r{bits}_rm{bits}"), R(Rax, bits), R(Rbx, bits), R(Rcx, bits))),
                Operands = [new(Rbx, b), new(Rcx, b)],
                UndefinedFlags = _ => AF | PF,
                MissingFeature = NoBmi1,
                Emulate = (ref RegisterFile r) =>
                {
                    Set(ref r, Rax, bits, AluOps.Andn(r[Rbx], r[Rcx], bits, ref r.Rflags));
                    return true;
                },
            });

            // BEXTR (dest, r/m source, vvvv control): "ZF is updated based on the result. AF, SF, and PF are undefined. All
            // other flags are cleared."
            forms.Add(new AluForm
            {
                Name = $"BEXTR r{b}",
                Emit = a => a.AddInstruction(Instruction.Create(Code($"VEX_Bextr_r{bits}_rm{bits}_r{bits}"), R(Rax, bits), R(Rbx, bits), R(Rcx, bits))),
                Operands = [new(Rbx, b), new(Rcx, 16)],
                UndefinedFlags = _ => AF | SF | PF,
                MissingFeature = NoBmi1,
                ShapeRandom = (Random random, ref RegisterFile r, ulong _) =>
                {
                    if (random.Next(2) == 0)
                    {
                        r.Rcx = (r.Rcx & ~0xFFFFUL) | (uint)((random.Next(0, 72) << 8) | random.Next(0, 72));
                    }
                },
                Emulate = (ref RegisterFile r) =>
                {
                    Set(ref r, Rax, bits, AluOps.Bextr(r[Rbx], r[Rcx], bits, ref r.Rflags));
                    return true;
                },
            });
            // BLSI: "ZF and SF are updated based on the result. CF is set if the source is not zero. OF flags are cleared. AF
            // and PF flags are undefined." BLSMSK: "SF is updated based on the result. CF is set if the source if zero. ZF
            // and OF flags are cleared. AF and PF flag are undefined." BLSR: "ZF and SF flags are updated based on the
            // result. CF is set if the source is zero. OF flag is cleared. AF and PF flags are undefined."
            foreach ((string name, UnaryOp op) in new (string, UnaryOp)[] { ("BLSI", AluOps.Blsi), ("BLSMSK", AluOps.Blsmsk), ("BLSR", AluOps.Blsr) })
            {
                forms.Add(new AluForm
                {
                    Name = $"{name} r{b}",
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"VEX_{name[0]}{name[1..].ToLowerInvariant()}_r{bits}_rm{bits}"), R(Rax, bits), R(Rbx, bits))),
                    Operands = [new(Rbx, b)],
                    UndefinedFlags = _ => AF | PF,
                    MissingFeature = NoBmi1,
                    Emulate = (ref RegisterFile r) =>
                    {
                        Set(ref r, Rax, bits, op(r[Rbx], bits, ref r.Rflags));
                        return true;
                    },
                });
            }

            // BZHI (dest, r/m source, vvvv index): "ZF and SF flags are updated based on the result. CF flag is set as
            // specified in the Operation section. OF flag is cleared. AF and PF flags are undefined."
            forms.Add(new AluForm
            {
                Name = $"BZHI r{b}",
                Emit = a => a.AddInstruction(Instruction.Create(Code($"VEX_Bzhi_r{bits}_rm{bits}_r{bits}"), R(Rax, bits), R(Rbx, bits), R(Rcx, bits))),
                Operands = [new(Rbx, b), new(Rcx, 8)],
                UndefinedFlags = _ => AF | PF,
                MissingFeature = NoBmi2,
                Emulate = (ref RegisterFile r) =>
                {
                    Set(ref r, Rax, bits, AluOps.Bzhi(r[Rbx], r[Rcx], bits, ref r.Rflags));
                    return true;
                },
            });

            // MULX, PDEP, PEXT, RORX, SARX, SHLX, SHRX: "None" flags affected, so every flag is compared.
            forms.Add(new AluForm
            {
                Name = $"MULX r{b}",
                // mulx rax, rbx, rcx: RAX = high, RBX = low of RDX * RCX.
                Emit = a => a.AddInstruction(Instruction.Create(Code($"VEX_Mulx_r{bits}_r{bits}_rm{bits}"), R(Rax, bits), R(Rbx, bits), R(Rcx, bits))),
                Operands = [new(Rdx, b), new(Rcx, b)],
                MissingFeature = NoBmi2,
                Emulate = (ref RegisterFile r) =>
                {
                    ulong low = AluOps.Mulx(r[Rdx], r[Rcx], bits, out ulong high);
                    Set(ref r, Rbx, bits, low);
                    Set(ref r, Rax, bits, high);
                    return true;
                },
            });
            foreach (string name in new[] { "PDEP", "PEXT" })
            {
                forms.Add(new AluForm
                {
                    Name = $"{name} r{b}",
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"VEX_{name[0]}{name[1..].ToLowerInvariant()}_r{bits}_r{bits}_rm{bits}"), R(Rax, bits), R(Rbx, bits), R(Rcx, bits))),
                    Operands = [new(Rbx, b), new(Rcx, b)],
                    MissingFeature = NoBmi2,
                    Emulate = (ref RegisterFile r) =>
                    {
                        Set(ref r, Rax, bits, name == "PDEP" ? AluOps.Pdep(r[Rbx], r[Rcx], bits) : AluOps.Pext(r[Rbx], r[Rcx], bits));
                        return true;
                    },
                });
            }

            foreach (int imm in new[] { 0, 1, 7, 31, 32, 33, 63, 200 })
            {
                forms.Add(new AluForm
                {
                    Name = $"RORX r{b}, imm8 {imm}",
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"VEX_Rorx_r{bits}_rm{bits}_imm8"), R(Rax, bits), R(Rbx, bits), imm)),
                    Operands = [new(Rbx, b)],
                    MissingFeature = NoBmi2,
                    Emulate = (ref RegisterFile r) =>
                    {
                        Set(ref r, Rax, bits, AluOps.Rorx(r[Rbx], (ulong)imm, bits));
                        return true;
                    },
                });
            }

            foreach (string name in new[] { "SARX", "SHLX", "SHRX" })
            {
                forms.Add(new AluForm
                {
                    Name = $"{name} r{b}",
                    // dest, r/m source, vvvv count.
                    Emit = a => a.AddInstruction(Instruction.Create(Code($"VEX_{name[0]}{name[1..].ToLowerInvariant()}_r{bits}_rm{bits}_r{bits}"), R(Rax, bits), R(Rbx, bits), R(Rcx, bits))),
                    Operands = [new(Rbx, b), new(Rcx, 8)],
                    MissingFeature = NoBmi2,
                    Emulate = (ref RegisterFile r) =>
                    {
                        ulong v = name switch
                        {
                            "SARX" => AluOps.Sarx(r[Rbx], r[Rcx], bits),
                            "SHLX" => AluOps.Shlx(r[Rbx], r[Rcx], bits),
                            _ => AluOps.Shrx(r[Rbx], r[Rcx], bits),
                        };
                        Set(ref r, Rax, bits, v);
                        return true;
                    },
                });
            }
        }
    }

    // ---- DAA DAS AAA AAS AAM AAD (compatibility mode: #UD in 64-bit mode) ----
    private static void AddDecimal(List<AluForm> forms)
    {
        // SDM DAA/DAS: "The CF and AF flags are set if the adjustment of the value results in a decimal carry [borrow] in
        // either digit of the result. The SF, ZF, and PF flags are set according to the result. The OF flag is undefined."
        forms.Add(Decimal("DAA", Instruction.Create(Iced.Intel.Code.Daa), new(Rax, 8), OF, (ref RegisterFile r) => Set(ref r, Rax, 8, AluOps.Daa((byte)r.Rax, ref r.Rflags))));
        forms.Add(Decimal("DAS", Instruction.Create(Iced.Intel.Code.Das), new(Rax, 8), OF, (ref RegisterFile r) => Set(ref r, Rax, 8, AluOps.Das((byte)r.Rax, ref r.Rflags))));
        // SDM AAA/AAS: "The AF and CF flags are set to 1 if there is a decimal carry [borrow]; otherwise, they are set to 0.
        // The OF, SF, ZF, and PF flags are undefined."
        forms.Add(Decimal("AAA", Instruction.Create(Iced.Intel.Code.Aaa), new(Rax, 16), OF | SF | ZF | PF, (ref RegisterFile r) => Set(ref r, Rax, 16, AluOps.Aaa((ushort)r.Rax, ref r.Rflags))));
        forms.Add(Decimal("AAS", Instruction.Create(Iced.Intel.Code.Aas), new(Rax, 16), OF | SF | ZF | PF, (ref RegisterFile r) => Set(ref r, Rax, 16, AluOps.Aas((ushort)r.Rax, ref r.Rflags))));
        // SDM AAM/AAD: "The SF, ZF, and PF flags are set according to the resulting binary value in the AL register. The OF,
        // AF, and CF flags are undefined." No input flag matters. AAM 0 raises #DE: never run natively, checked in
        // AluRuleTests.
        foreach (int imm in new[] { 10, 1, 7, 16, 255 })
        {
            forms.Add(Decimal($"AAM {imm}", Instruction.Create(Iced.Intel.Code.Aam_imm8, imm), new(Rax, 8), OF | AF | CF, (ref RegisterFile r) =>
            {
                Assert.That(AluOps.Aam((byte)r.Rax, (byte)imm, out ushort ax, ref r.Rflags), Is.True);
                Set(ref r, Rax, 16, ax);
            }, flagsIn: 0));
            forms.Add(Decimal($"AAD {imm}", Instruction.Create(Iced.Intel.Code.Aad_imm8, imm), new(Rax, 16), OF | AF | CF, (ref RegisterFile r) => Set(ref r, Rax, 16, AluOps.Aad((ushort)r.Rax, (byte)imm, ref r.Rflags)), flagsIn: 0));
        }
    }

    private delegate void DecimalEmulator(ref RegisterFile r);

    private static AluForm Decimal(string name, Instruction instruction, Operand operand, ulong undefined, DecimalEmulator emulate, ulong flagsIn = CF | AF) => new()
    {
        Name = name,
        Compat32 = true,
        Exhaustive = true,
        Emit = a => a.AddInstruction(instruction),
        Operands = [operand],
        FlagsIn = flagsIn,
        UndefinedFlags = _ => undefined,
        Emulate = (ref RegisterFile r) =>
        {
            emulate(ref r);
            return true;
        },
    };

    private static void Binary(List<AluForm> forms, string name, int bits, BinaryOp op, bool writes, ulong flagsIn, ulong undefined)
    {
        string code = name[0] + name[1..].ToLowerInvariant();
        forms.Add(new AluForm
        {
            Name = $"{name} r/m{bits}, r{bits}",
            Emit = a => a.AddInstruction(Instruction.Create(Code($"{code}_rm{bits}_r{bits}"), R(Rax, bits), R(Rcx, bits))),
            Operands = [new(Rax, bits), new(Rcx, bits)],
            FlagsIn = flagsIn,
            UndefinedFlags = _ => undefined,
            Emulate = (ref RegisterFile r) =>
            {
                ulong v = op(r[Rax], r[Rcx], bits, ref r.Rflags);
                if (writes)
                {
                    Set(ref r, Rax, bits, v);
                }

                return true;
            },
        });
    }

    private static void BinaryMemory(List<AluForm> forms, string name, int bits, BinaryOp op, ulong flagsIn, ulong undefined)
    {
        string code = name[0] + name[1..].ToLowerInvariant();
        forms.Add(new AluForm
        {
            Name = $"{name} m{bits}, r{bits}",
            Emit = a => a.AddInstruction(Instruction.Create(Code($"{code}_rm{bits}_r{bits}"), new MemoryOperand(Register.RSI), R(Rcx, bits))),
            Operands = [new(Memory, bits), new(Rcx, bits)],
            FlagsIn = flagsIn,
            UndefinedFlags = _ => undefined,
            Shape = (Random _, ref RegisterFile r, ulong scratch) => r.Rsi = scratch,
            Emulate = (ref RegisterFile r) =>
            {
                Span<byte> bytes = r.Scratch[..(bits / 8)];
                WriteLittleEndian(bytes, op(ReadLittleEndian(bytes), r[Rcx], bits, ref r.Rflags));
                return true;
            },
        });
    }

    private static void Unary(List<AluForm> forms, string name, int bits, UnaryOp op, ulong flagsIn) =>
        forms.Add(new AluForm
        {
            Name = $"{name} r/m{bits}",
            Emit = a => a.AddInstruction(Instruction.Create(Code($"{name[0]}{name[1..].ToLowerInvariant()}_rm{bits}"), R(Rax, bits))),
            Operands = [new(Rax, bits)],
            FlagsIn = flagsIn,
            Emulate = (ref RegisterFile r) =>
            {
                Set(ref r, Rax, bits, op(r[Rax], bits, ref r.Rflags));
                return true;
            },
        });

    public static ulong ReadLittleEndian(ReadOnlySpan<byte> bytes)
    {
        ulong v = 0;
        for (int i = bytes.Length - 1; i >= 0; i--)
        {
            v = (v << 8) | bytes[i];
        }

        return v;
    }

    public static void WriteLittleEndian(Span<byte> bytes, ulong value)
    {
        for (int i = 0; i < bytes.Length; i++)
        {
            bytes[i] = (byte)(value >> (8 * i));
        }
    }

    /// <summary>The register of encoding number <paramref name="index"/> (0..3 for 8-bit) at an operand size.</summary>
    public static Register R(int index, int bits) => bits switch
    {
        8 => Register.AL + index,
        16 => Register.AX + index,
        32 => Register.EAX + index,
        _ => Register.RAX + index,
    };

    private static Code Code(string name) => Enum.Parse<Code>(name);

    /// <summary>Reads an operand: a register's low <paramref name="bits"/> bits.</summary>
    public static ulong Get(in RegisterFile r, int register, int bits) => r[register] & AluOps.Mask(bits);

    /// <summary>Writes a register as x86-64 does: 8/16-bit writes merge, 32-bit writes zero-extend, 64-bit writes replace.</summary>
    public static void Set(ref RegisterFile r, int register, int bits, ulong value) => r[register] = bits switch
    {
        8 => (r[register] & ~0xFFUL) | (value & 0xFF),
        16 => (r[register] & ~0xFFFFUL) | (value & 0xFFFF),
        32 => value & 0xFFFF_FFFF,
        _ => value,
    };

    private static bool HasAdx() => X86Base.IsSupported && (X86Base.CpuId(7, 0).Ebx & (1 << 19)) != 0;
}
