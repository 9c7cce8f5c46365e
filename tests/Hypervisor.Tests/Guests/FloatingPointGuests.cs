using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Tests.Guests;

/// <summary>How the task-switch guest saves and restores a task's FPU/SSE state.</summary>
public enum StateSwitch
{
    /// <summary>FXSAVE64/FXRSTOR64 (CR4.OSFXSR).</summary>
    Fxsave,

    /// <summary>XSAVE64/XRSTOR64 with XCR0 = x87 | SSE and EDX:EAX = 3 (CR4.OSXSAVE).</summary>
    Xsave,

    /// <summary>XSAVEOPT64/XRSTOR64.</summary>
    Xsaveopt,
}

/// <summary>Firmware guests for the x87/SSE state work of issue 7.</summary>
internal static class FloatingPointGuests
{
    public const byte ExitValue = 0x31;
    public const string Done = "done\r\n";

    private const uint AreaA = 0x40000, AreaB = 0x41000, Scratch = 0x42000;
    private const int Rounds = 12;

    private static readonly AssemblerRegisterXMM[] Xmm = [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15];

    /// <summary>
    /// Firmware that enables SSE (CR4.OSFXSR, OSXMMEXCPT), copies <paramref name="flatImage"/> (linked at
    /// <see cref="NumericKernel.LoadAddress"/>) from ROM to RAM, calls it with a 16-byte aligned stack and exits with
    /// <see cref="ExitValue"/> when it returns.
    /// </summary>
    public static byte[] FlatKernel(byte[] flatImage) => PcGuest.Build(GuestMode.Long, g =>
    {
        Assembler a = g.A;
        Label blob = a.CreateLabel();
        a.mov(rax, cr4);
        a.or(eax, (1 << 9) | (1 << 10));
        a.mov(cr4, rax);
        a.lea(rsi, __[blob]);
        a.mov(edi, NumericKernel.LoadAddress);
        a.mov(ecx, flatImage.Length);
        a.rep.movsb();
        a.mov(rsp, 0x1F_0000);
        a.mov(eax, NumericKernel.LoadAddress);
        a.call(rax);
        g.Exit(ExitValue);
        a.Label(ref blob);
        a.db(flatImage);
    });

    /// <summary>
    /// Two tasks, each with its own x87 stack, FCW (precision and rounding), MXCSR (rounding) and XMM0-15, take turns
    /// for <see cref="Rounds"/> rounds: restore own state, compute (ADDPD/MULPD/SQRTPD per register, FDIV/FADD/FMUL on the
    /// stack, all rounding-sensitive), save. Between turns the other task's registers are in the CPU, so a lost or
    /// mixed-up component changes the printed results: at the end each task's XMM registers, x87 values, FCW and MXCSR
    /// are printed in hex on COM1.
    /// </summary>
    public static byte[] TaskSwitch(StateSwitch how) => PcGuest.Build(GuestMode.Long, g =>
    {
        Assembler a = g.A;
        Label printHex = a.CreateLabel(), saveLabel = a.CreateLabel(), restoreLabel = a.CreateLabel(), work = a.CreateLabel();
        Label afterRoutines = a.CreateLabel();
        a.jmp(afterRoutines);

        // printHex: R8 as 16 hex digits and a space (clobbers RAX, RCX, RDX).
        Label digit = a.CreateLabel(), loop = a.CreateLabel();
        a.Label(ref printHex);
        a.mov(ecx, 16);
        a.Label(ref loop);
        a.rol(r8, 4);
        a.mov(eax, r8d);
        a.and(eax, 15);
        a.cmp(al, 10);
        a.jb(digit);
        a.add(al, (byte)('a' - '0' - 10));
        a.Label(ref digit);
        a.add(al, (byte)'0');
        a.push(rcx);
        g.PutCharAl();
        a.pop(rcx);
        a.dec(ecx);
        a.jnz(loop);
        a.mov(al, (byte)' ');
        g.PutCharAl();
        a.ret();

        // save/restore: the task's area at RDI.
        a.Label(ref saveLabel);
        a.mov(eax, 3);
        a.xor(edx, edx);
        switch (how)
        {
            case StateSwitch.Fxsave: a.fxsave64(__[rdi]); break;
            case StateSwitch.Xsave: a.xsave64(__[rdi]); break;
            default: a.xsaveopt64(__[rdi]); break;
        }

        a.ret();
        a.Label(ref restoreLabel);
        a.mov(eax, 3);
        a.xor(edx, edx);
        if (how == StateSwitch.Fxsave)
        {
            a.fxrstor64(__[rdi]);
        }
        else
        {
            a.xrstor64(__[rdi]);
        }

        a.ret();

        // work: one turn of computation on whatever state is loaded.
        a.Label(ref work);
        for (int i = 0; i < 16; i++)
        {
            switch (i % 3)
            {
                case 0: a.addpd(Xmm[i], Xmm[(i + 1) % 16]); break;
                case 1: a.mulpd(Xmm[i], Xmm[(i + 5) % 16]); break;
                default: a.sqrtpd(Xmm[i], Xmm[(i + 7) % 16]); break;
            }
        }

        a.fdiv(st0, st1);
        a.fadd(st1, st0);
        a.fmul(st0, st2);
        a.ret();

        a.Label(ref afterRoutines);
        a.mov(rax, cr4);
        a.or(eax, (1 << 9) | (1 << 10) | (how == StateSwitch.Fxsave ? 0 : 1 << 18)); // OSFXSR, OSXMMEXCPT (, OSXSAVE)
        a.mov(cr4, rax);
        if (how != StateSwitch.Fxsave)
        {
            a.xor(ecx, ecx);
            a.xor(edx, edx);
            a.mov(eax, 3);
            a.xsetbv();
        }

        // Zero both areas (XRSTOR needs a clean header), then give each task its initial state and save it.
        a.mov(edi, AreaA);
        a.mov(ecx, (AreaB - AreaA + 0x1000) / 8);
        a.xor(eax, eax);
        a.rep.stosq();

        void InitialState(ulong seed, ushort fcw, uint mxcsr, double[] x87, uint area)
        {
            a.fninit();
            a.mov(__dword_ptr[Scratch], fcw);
            a.fldcw(__word_ptr[Scratch]);
            a.mov(__dword_ptr[Scratch], mxcsr);
            a.ldmxcsr(__dword_ptr[Scratch]);
            foreach (double v in x87)
            {
                a.mov(rax, BitConverter.DoubleToInt64Bits(v));
                a.mov(__qword_ptr[Scratch], rax);
                a.fld(__qword_ptr[Scratch]);
            }

            for (int i = 0; i < 16; i++)
            {
                // Doubles in [1, 4) with varied mantissas, and no operation can underflow: no operand is ever denormal: QEMU 7.2 does not set MXCSR.DE
                // for SSE operations (hardware does, and so does this CPU; SseDifferentialTests compares that with the host).
                ulong lo = 0x3FF0_0000_0000_0000UL + (((seed * 0x9E37_79B9_7F4A_7C15UL) + ((ulong)i * 0x0001_2345_6789_ABCDUL)) & 0x001F_FFFF_FFFF_FFFFUL);
                ulong hi = 0x3FF0_0000_0000_0000UL + (((seed * 0xC2B2_AE3D_27D4_EB4FUL) + ((ulong)i * 0x0000_F0E1_D2C3_B4A5UL)) & 0x001F_FFFF_FFFF_FFFFUL);
                a.mov(rax, (long)lo);
                a.movq(Xmm[i], rax);
                a.mov(rax, (long)hi);
                a.pinsrq(Xmm[i], rax, 1);
            }

            a.mov(edi, area);
            a.call(saveLabel);
        }

        // Task A: round to nearest, double precision, three x87 values; task B: round toward zero, extended, up.
        InitialState(1, 0x027F, 0x1F80, [3.0, 7.0, 1.0 / 3.0], AreaA);
        InitialState(2, 0x0F7F, 0x5F80, [2.0, 11.0, 13.0], AreaB);

        Label round = a.CreateLabel();
        a.mov(r15d, Rounds);
        a.Label(ref round);
        foreach (uint area in new[] { AreaA, AreaB })
        {
            a.mov(edi, area);
            a.call(restoreLabel);
            a.call(work);
            a.mov(edi, area);
            a.call(saveLabel);
        }

        a.dec(r15d);
        a.jnz(round);

        foreach ((string name, uint area, int depth) in new[] { ("A", AreaA, 3), ("B", AreaB, 3) })
        {
            a.mov(edi, area);
            a.call(restoreLabel);
            g.Print($"task {name} xmm ");
            for (int i = 0; i < 16; i++)
            {
                a.movq(r8, Xmm[i]);
                a.call(printHex);
                a.pextrq(r8, Xmm[i], 1);
                a.call(printHex);
            }

            g.Print("\r\nx87 ");
            a.fnstcw(__word_ptr[Scratch]);
            a.movzx(r8d, __word_ptr[Scratch]);
            a.call(printHex);
            a.stmxcsr(__dword_ptr[Scratch]);
            a.mov(r8d, __dword_ptr[Scratch]);
            a.call(printHex);
            for (int i = 0; i < depth; i++)
            {
                a.fstp(__qword_ptr[Scratch]);
                a.mov(r8, __qword_ptr[Scratch]);
                a.call(printHex);
            }

            g.Print("\r\n");
        }

        g.Print(Done);
        g.Exit(ExitValue);
    });
}
