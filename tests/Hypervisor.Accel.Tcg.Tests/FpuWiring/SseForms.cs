using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>How a form's vector inputs are generated.</summary>
internal enum SseLanes
{
    F32,
    F64,
    Int,

    /// <summary>Bytes from a small alphabet with zeros, so that PCMPxSTRx see matches, ranges and string ends.</summary>
    Text,
}

/// <summary>One instruction form, emitted with XMM0 as destination, XMM1 or [RSI+16] (aligned) as source, RAX/RCX as GPRs.</summary>
internal sealed record SseForm(string Name, SseLanes Lanes, Action<Assembler> Emit);

/// <summary>The SSE/SSE2 forms the interpreter wires (register and memory operands of each).</summary>
internal static partial class SseForms
{
    private static readonly AssemblerMemoryOperand M128 = __xmmword_ptr[rsi + 16];
    private static readonly AssemblerMemoryOperand M64 = __qword_ptr[rsi + 16];
    private static readonly AssemblerMemoryOperand M32 = __dword_ptr[rsi + 16];

    public static readonly List<SseForm> All = Build();

    private static List<SseForm> Build()
    {
        var l = new List<SseForm>();

        void RegMem(string name, SseLanes lanes, Action<Assembler> reg, Action<Assembler> mem)
        {
            l.Add(new SseForm(name + " xmm, xmm", lanes, reg));
            l.Add(new SseForm(name + " xmm, m", lanes, mem));
        }

        // Data movement: loads, stores (aligned at RSI+16, unaligned at RSI+17) and register copies.
        RegMem("movaps", SseLanes.Int, a => a.movaps(xmm0, xmm1), a => a.movaps(xmm0, M128));
        l.Add(new("movaps m, xmm", SseLanes.Int, a => a.movaps(M128, xmm0)));
        RegMem("movapd", SseLanes.Int, a => a.movapd(xmm0, xmm1), a => a.movapd(xmm0, M128));
        l.Add(new("movapd m, xmm", SseLanes.Int, a => a.movapd(M128, xmm0)));
        RegMem("movdqa", SseLanes.Int, a => a.movdqa(xmm0, xmm1), a => a.movdqa(xmm0, M128));
        l.Add(new("movdqa m, xmm", SseLanes.Int, a => a.movdqa(M128, xmm0)));
        RegMem("movups", SseLanes.Int, a => a.movups(xmm0, xmm1), a => a.movups(xmm0, __xmmword_ptr[rsi + 17]));
        l.Add(new("movups m, xmm", SseLanes.Int, a => a.movups(__xmmword_ptr[rsi + 17], xmm0)));
        RegMem("movupd", SseLanes.Int, a => a.movupd(xmm0, xmm1), a => a.movupd(xmm0, __xmmword_ptr[rsi + 19]));
        l.Add(new("movupd m, xmm", SseLanes.Int, a => a.movupd(__xmmword_ptr[rsi + 21], xmm0)));
        RegMem("movdqu", SseLanes.Int, a => a.movdqu(xmm0, xmm1), a => a.movdqu(xmm0, __xmmword_ptr[rsi + 23]));
        l.Add(new("movdqu m, xmm", SseLanes.Int, a => a.movdqu(__xmmword_ptr[rsi + 25], xmm0)));
        l.Add(new("movd xmm, r32", SseLanes.Int, a => a.movd(xmm0, eax)));
        l.Add(new("movd xmm, m32", SseLanes.Int, a => a.movd(xmm0, M32)));
        l.Add(new("movd r32, xmm", SseLanes.Int, a => a.movd(eax, xmm1)));
        l.Add(new("movd m32, xmm", SseLanes.Int, a => a.movd(M32, xmm0)));
        l.Add(new("movq xmm, r64", SseLanes.Int, a => a.movq(xmm0, rax)));
        l.Add(new("movq xmm, m64 (REX.W 6E)", SseLanes.Int, a => a.db(0x66, 0x48, 0x0F, 0x6E, 0x46, 0x10)));
        l.Add(new("movq r64, xmm", SseLanes.Int, a => a.movq(rcx, xmm1)));
        l.Add(new("movq m64, xmm (REX.W 7E)", SseLanes.Int, a => a.db(0x66, 0x48, 0x0F, 0x7E, 0x46, 0x10)));
        RegMem("movq (F3 7E)", SseLanes.Int, a => a.movq(xmm0, xmm1), a => a.movq(xmm0, M64));
        l.Add(new("movq xmm, xmm (66 D6)", SseLanes.Int, a => a.db(0x66, 0x0F, 0xD6, 0xC8)));
        l.Add(new("movq m64, xmm (66 D6)", SseLanes.Int, a => a.movq(M64, xmm0)));
        RegMem("movss", SseLanes.F32, a => a.movss(xmm0, xmm1), a => a.movss(xmm0, M32));
        l.Add(new("movss m32, xmm", SseLanes.F32, a => a.movss(M32, xmm0)));
        RegMem("movsd", SseLanes.F64, a => a.movsd(xmm0, xmm1), a => a.movsd(xmm0, M64));
        l.Add(new("movsd m64, xmm", SseLanes.F64, a => a.movsd(M64, xmm0)));

        l.Add(new("movhps xmm, m64", SseLanes.Int, a => a.movhps(xmm0, M64)));
        l.Add(new("movhps m64, xmm", SseLanes.Int, a => a.movhps(M64, xmm0)));
        l.Add(new("movhpd xmm, m64", SseLanes.Int, a => a.movhpd(xmm0, M64)));
        l.Add(new("movhpd m64, xmm", SseLanes.Int, a => a.movhpd(M64, xmm0)));
        l.Add(new("movlps xmm, m64", SseLanes.Int, a => a.movlps(xmm0, M64)));
        l.Add(new("movlps m64, xmm", SseLanes.Int, a => a.movlps(M64, xmm0)));
        l.Add(new("movlpd xmm, m64", SseLanes.Int, a => a.movlpd(xmm0, M64)));
        l.Add(new("movlpd m64, xmm", SseLanes.Int, a => a.movlpd(M64, xmm0)));
        l.Add(new("movhlps xmm, xmm", SseLanes.Int, a => a.movhlps(xmm0, xmm1)));
        l.Add(new("movlhps xmm, xmm", SseLanes.Int, a => a.movlhps(xmm0, xmm1)));
        l.Add(new("movntdq m128, xmm", SseLanes.Int, a => a.movntdq(M128, xmm0)));
        l.Add(new("movntps m128, xmm", SseLanes.Int, a => a.movntps(M128, xmm0)));
        l.Add(new("movntpd m128, xmm", SseLanes.Int, a => a.movntpd(M128, xmm0)));
        l.Add(new("movnti m32, r32", SseLanes.Int, a => a.movnti(M32, eax)));
        l.Add(new("movnti m64, r64", SseLanes.Int, a => a.movnti(M64, rcx)));
        foreach (byte imm in new byte[] { 0, 3, 7, 0xFE })
        {
            l.Add(new($"pinsrw xmm, r32, {imm}", SseLanes.Int, a => a.pinsrw(xmm0, eax, imm)));
            l.Add(new($"pinsrw xmm, m16, {imm}", SseLanes.Int, a => a.pinsrw(xmm0, __word_ptr[rsi + 16], imm)));
            l.Add(new($"pextrw r32, xmm, {imm}", SseLanes.Int, a => a.pextrw(eax, xmm1, imm)));
            l.Add(new($"pextrw r64, xmm, {imm}", SseLanes.Int, a => a.pextrw(rcx, xmm0, imm)));
        }

        // Bitwise.
        RegMem("pxor", SseLanes.Int, a => a.pxor(xmm0, xmm1), a => a.pxor(xmm0, M128));
        RegMem("xorps", SseLanes.Int, a => a.xorps(xmm0, xmm1), a => a.xorps(xmm0, M128));
        RegMem("xorpd", SseLanes.Int, a => a.xorpd(xmm0, xmm1), a => a.xorpd(xmm0, M128));
        RegMem("pand", SseLanes.Int, a => a.pand(xmm0, xmm1), a => a.pand(xmm0, M128));
        RegMem("andps", SseLanes.Int, a => a.andps(xmm0, xmm1), a => a.andps(xmm0, M128));
        RegMem("andpd", SseLanes.Int, a => a.andpd(xmm0, xmm1), a => a.andpd(xmm0, M128));
        RegMem("pandn", SseLanes.Int, a => a.pandn(xmm0, xmm1), a => a.pandn(xmm0, M128));
        RegMem("andnps", SseLanes.Int, a => a.andnps(xmm0, xmm1), a => a.andnps(xmm0, M128));
        RegMem("andnpd", SseLanes.Int, a => a.andnpd(xmm0, xmm1), a => a.andnpd(xmm0, M128));
        RegMem("por", SseLanes.Int, a => a.por(xmm0, xmm1), a => a.por(xmm0, M128));
        RegMem("orps", SseLanes.Int, a => a.orps(xmm0, xmm1), a => a.orps(xmm0, M128));
        RegMem("orpd", SseLanes.Int, a => a.orpd(xmm0, xmm1), a => a.orpd(xmm0, M128));

        // Integer.
        RegMem("paddb", SseLanes.Int, a => a.paddb(xmm0, xmm1), a => a.paddb(xmm0, M128));
        RegMem("paddw", SseLanes.Int, a => a.paddw(xmm0, xmm1), a => a.paddw(xmm0, M128));
        RegMem("paddd", SseLanes.Int, a => a.paddd(xmm0, xmm1), a => a.paddd(xmm0, M128));
        RegMem("paddq", SseLanes.Int, a => a.paddq(xmm0, xmm1), a => a.paddq(xmm0, M128));
        RegMem("psubb", SseLanes.Int, a => a.psubb(xmm0, xmm1), a => a.psubb(xmm0, M128));
        RegMem("psubw", SseLanes.Int, a => a.psubw(xmm0, xmm1), a => a.psubw(xmm0, M128));
        RegMem("psubd", SseLanes.Int, a => a.psubd(xmm0, xmm1), a => a.psubd(xmm0, M128));
        RegMem("psubq", SseLanes.Int, a => a.psubq(xmm0, xmm1), a => a.psubq(xmm0, M128));
        RegMem("pcmpeqb", SseLanes.Int, a => a.pcmpeqb(xmm0, xmm1), a => a.pcmpeqb(xmm0, M128));
        RegMem("pcmpeqw", SseLanes.Int, a => a.pcmpeqw(xmm0, xmm1), a => a.pcmpeqw(xmm0, M128));
        RegMem("pcmpeqd", SseLanes.Int, a => a.pcmpeqd(xmm0, xmm1), a => a.pcmpeqd(xmm0, M128));
        RegMem("pcmpgtb", SseLanes.Int, a => a.pcmpgtb(xmm0, xmm1), a => a.pcmpgtb(xmm0, M128));
        RegMem("pcmpgtw", SseLanes.Int, a => a.pcmpgtw(xmm0, xmm1), a => a.pcmpgtw(xmm0, M128));
        RegMem("pcmpgtd", SseLanes.Int, a => a.pcmpgtd(xmm0, xmm1), a => a.pcmpgtd(xmm0, M128));
        RegMem("paddsb", SseLanes.Int, a => a.paddsb(xmm0, xmm1), a => a.paddsb(xmm0, M128));
        RegMem("paddsw", SseLanes.Int, a => a.paddsw(xmm0, xmm1), a => a.paddsw(xmm0, M128));
        RegMem("paddusb", SseLanes.Int, a => a.paddusb(xmm0, xmm1), a => a.paddusb(xmm0, M128));
        RegMem("paddusw", SseLanes.Int, a => a.paddusw(xmm0, xmm1), a => a.paddusw(xmm0, M128));
        RegMem("psubsb", SseLanes.Int, a => a.psubsb(xmm0, xmm1), a => a.psubsb(xmm0, M128));
        RegMem("psubsw", SseLanes.Int, a => a.psubsw(xmm0, xmm1), a => a.psubsw(xmm0, M128));
        RegMem("psubusb", SseLanes.Int, a => a.psubusb(xmm0, xmm1), a => a.psubusb(xmm0, M128));
        RegMem("psubusw", SseLanes.Int, a => a.psubusw(xmm0, xmm1), a => a.psubusw(xmm0, M128));
        RegMem("pmullw", SseLanes.Int, a => a.pmullw(xmm0, xmm1), a => a.pmullw(xmm0, M128));
        RegMem("pmulhw", SseLanes.Int, a => a.pmulhw(xmm0, xmm1), a => a.pmulhw(xmm0, M128));
        RegMem("pmulhuw", SseLanes.Int, a => a.pmulhuw(xmm0, xmm1), a => a.pmulhuw(xmm0, M128));
        RegMem("pmuludq", SseLanes.Int, a => a.pmuludq(xmm0, xmm1), a => a.pmuludq(xmm0, M128));
        RegMem("pmaddwd", SseLanes.Int, a => a.pmaddwd(xmm0, xmm1), a => a.pmaddwd(xmm0, M128));
        RegMem("pavgb", SseLanes.Int, a => a.pavgb(xmm0, xmm1), a => a.pavgb(xmm0, M128));
        RegMem("pavgw", SseLanes.Int, a => a.pavgw(xmm0, xmm1), a => a.pavgw(xmm0, M128));
        RegMem("pminub", SseLanes.Int, a => a.pminub(xmm0, xmm1), a => a.pminub(xmm0, M128));
        RegMem("pmaxub", SseLanes.Int, a => a.pmaxub(xmm0, xmm1), a => a.pmaxub(xmm0, M128));
        RegMem("pminsw", SseLanes.Int, a => a.pminsw(xmm0, xmm1), a => a.pminsw(xmm0, M128));
        RegMem("pmaxsw", SseLanes.Int, a => a.pmaxsw(xmm0, xmm1), a => a.pmaxsw(xmm0, M128));
        RegMem("psadbw", SseLanes.Int, a => a.psadbw(xmm0, xmm1), a => a.psadbw(xmm0, M128));
        RegMem("packsswb", SseLanes.Int, a => a.packsswb(xmm0, xmm1), a => a.packsswb(xmm0, M128));
        RegMem("packssdw", SseLanes.Int, a => a.packssdw(xmm0, xmm1), a => a.packssdw(xmm0, M128));
        RegMem("packuswb", SseLanes.Int, a => a.packuswb(xmm0, xmm1), a => a.packuswb(xmm0, M128));
        l.Add(new("pmovmskb r32, xmm", SseLanes.Int, a => a.pmovmskb(eax, xmm0)));
        l.Add(new("pmovmskb r64, xmm", SseLanes.Int, a => a.pmovmskb(rcx, xmm1)));

        // Floating point.
        RegMem("addss", SseLanes.F32, a => a.addss(xmm0, xmm1), a => a.addss(xmm0, M32));
        RegMem("addsd", SseLanes.F64, a => a.addsd(xmm0, xmm1), a => a.addsd(xmm0, M64));
        RegMem("addps", SseLanes.F32, a => a.addps(xmm0, xmm1), a => a.addps(xmm0, M128));
        RegMem("addpd", SseLanes.F64, a => a.addpd(xmm0, xmm1), a => a.addpd(xmm0, M128));
        RegMem("subss", SseLanes.F32, a => a.subss(xmm0, xmm1), a => a.subss(xmm0, M32));
        RegMem("subsd", SseLanes.F64, a => a.subsd(xmm0, xmm1), a => a.subsd(xmm0, M64));
        RegMem("subps", SseLanes.F32, a => a.subps(xmm0, xmm1), a => a.subps(xmm0, M128));
        RegMem("subpd", SseLanes.F64, a => a.subpd(xmm0, xmm1), a => a.subpd(xmm0, M128));
        RegMem("mulss", SseLanes.F32, a => a.mulss(xmm0, xmm1), a => a.mulss(xmm0, M32));
        RegMem("mulsd", SseLanes.F64, a => a.mulsd(xmm0, xmm1), a => a.mulsd(xmm0, M64));
        RegMem("mulps", SseLanes.F32, a => a.mulps(xmm0, xmm1), a => a.mulps(xmm0, M128));
        RegMem("mulpd", SseLanes.F64, a => a.mulpd(xmm0, xmm1), a => a.mulpd(xmm0, M128));
        RegMem("divss", SseLanes.F32, a => a.divss(xmm0, xmm1), a => a.divss(xmm0, M32));
        RegMem("divsd", SseLanes.F64, a => a.divsd(xmm0, xmm1), a => a.divsd(xmm0, M64));
        RegMem("divps", SseLanes.F32, a => a.divps(xmm0, xmm1), a => a.divps(xmm0, M128));
        RegMem("divpd", SseLanes.F64, a => a.divpd(xmm0, xmm1), a => a.divpd(xmm0, M128));
        RegMem("minss", SseLanes.F32, a => a.minss(xmm0, xmm1), a => a.minss(xmm0, M32));
        RegMem("minsd", SseLanes.F64, a => a.minsd(xmm0, xmm1), a => a.minsd(xmm0, M64));
        RegMem("minps", SseLanes.F32, a => a.minps(xmm0, xmm1), a => a.minps(xmm0, M128));
        RegMem("minpd", SseLanes.F64, a => a.minpd(xmm0, xmm1), a => a.minpd(xmm0, M128));
        RegMem("maxss", SseLanes.F32, a => a.maxss(xmm0, xmm1), a => a.maxss(xmm0, M32));
        RegMem("maxsd", SseLanes.F64, a => a.maxsd(xmm0, xmm1), a => a.maxsd(xmm0, M64));
        RegMem("maxps", SseLanes.F32, a => a.maxps(xmm0, xmm1), a => a.maxps(xmm0, M128));
        RegMem("maxpd", SseLanes.F64, a => a.maxpd(xmm0, xmm1), a => a.maxpd(xmm0, M128));
        RegMem("sqrtss", SseLanes.F32, a => a.sqrtss(xmm0, xmm1), a => a.sqrtss(xmm0, M32));
        RegMem("sqrtsd", SseLanes.F64, a => a.sqrtsd(xmm0, xmm1), a => a.sqrtsd(xmm0, M64));
        RegMem("sqrtps", SseLanes.F32, a => a.sqrtps(xmm0, xmm1), a => a.sqrtps(xmm0, M128));
        RegMem("sqrtpd", SseLanes.F64, a => a.sqrtpd(xmm0, xmm1), a => a.sqrtpd(xmm0, M128));

        // Conversions.
        l.Add(new("cvtsi2sd xmm, r32", SseLanes.F64, a => a.cvtsi2sd(xmm0, eax)));
        l.Add(new("cvtsi2sd xmm, r64", SseLanes.F64, a => a.cvtsi2sd(xmm0, rax)));
        l.Add(new("cvtsi2sd xmm, m32", SseLanes.F64, a => a.cvtsi2sd(xmm0, M32)));
        l.Add(new("cvtsi2sd xmm, m64", SseLanes.F64, a => a.cvtsi2sd(xmm0, M64)));
        l.Add(new("cvtsi2ss xmm, r32", SseLanes.F32, a => a.cvtsi2ss(xmm0, eax)));
        l.Add(new("cvtsi2ss xmm, r64", SseLanes.F32, a => a.cvtsi2ss(xmm0, rax)));
        l.Add(new("cvtsi2ss xmm, m32", SseLanes.F32, a => a.cvtsi2ss(xmm0, M32)));
        l.Add(new("cvtsi2ss xmm, m64", SseLanes.F32, a => a.cvtsi2ss(xmm0, M64)));
        foreach ((string name, bool dbl, Action<Assembler, AssemblerRegister32, AssemblerRegisterXMM> r32, Action<Assembler, AssemblerRegister64, AssemblerRegisterXMM> r64, Action<Assembler, AssemblerRegister32, AssemblerMemoryOperand> m) in new (string, bool, Action<Assembler, AssemblerRegister32, AssemblerRegisterXMM>, Action<Assembler, AssemblerRegister64, AssemblerRegisterXMM>, Action<Assembler, AssemblerRegister32, AssemblerMemoryOperand>)[]
        {
            ("cvttsd2si", true, (a, d, s) => a.cvttsd2si(d, s), (a, d, s) => a.cvttsd2si(d, s), (a, d, s) => a.cvttsd2si(d, s)),
            ("cvtsd2si", true, (a, d, s) => a.cvtsd2si(d, s), (a, d, s) => a.cvtsd2si(d, s), (a, d, s) => a.cvtsd2si(d, s)),
            ("cvttss2si", false, (a, d, s) => a.cvttss2si(d, s), (a, d, s) => a.cvttss2si(d, s), (a, d, s) => a.cvttss2si(d, s)),
            ("cvtss2si", false, (a, d, s) => a.cvtss2si(d, s), (a, d, s) => a.cvtss2si(d, s), (a, d, s) => a.cvtss2si(d, s)),
        })
        {
            SseLanes lanes = dbl ? SseLanes.F64 : SseLanes.F32;
            l.Add(new(name + " r32, xmm", lanes, a => r32(a, eax, xmm1)));
            l.Add(new(name + " r64, xmm", lanes, a => r64(a, rcx, xmm0)));
            l.Add(new(name + " r32, m", lanes, a => m(a, ecx, dbl ? M64 : M32)));
        }

        RegMem("cvtss2sd", SseLanes.F32, a => a.cvtss2sd(xmm0, xmm1), a => a.cvtss2sd(xmm0, M32));
        RegMem("cvtsd2ss", SseLanes.F64, a => a.cvtsd2ss(xmm0, xmm1), a => a.cvtsd2ss(xmm0, M64));

        // Comparisons into EFLAGS.
        RegMem("ucomiss", SseLanes.F32, a => a.ucomiss(xmm0, xmm1), a => a.ucomiss(xmm0, M32));
        RegMem("ucomisd", SseLanes.F64, a => a.ucomisd(xmm0, xmm1), a => a.ucomisd(xmm0, M64));
        RegMem("comiss", SseLanes.F32, a => a.comiss(xmm0, xmm1), a => a.comiss(xmm0, M32));
        RegMem("comisd", SseLanes.F64, a => a.comisd(xmm0, xmm1), a => a.comisd(xmm0, M64));

        // Shuffles, unpacks, shifts, masks.
        RegMem("punpcklbw", SseLanes.Int, a => a.punpcklbw(xmm0, xmm1), a => a.punpcklbw(xmm0, M128));
        RegMem("punpcklwd", SseLanes.Int, a => a.punpcklwd(xmm0, xmm1), a => a.punpcklwd(xmm0, M128));
        RegMem("punpckldq", SseLanes.Int, a => a.punpckldq(xmm0, xmm1), a => a.punpckldq(xmm0, M128));
        RegMem("punpcklqdq", SseLanes.Int, a => a.punpcklqdq(xmm0, xmm1), a => a.punpcklqdq(xmm0, M128));
        RegMem("punpckhbw", SseLanes.Int, a => a.punpckhbw(xmm0, xmm1), a => a.punpckhbw(xmm0, M128));
        RegMem("punpckhwd", SseLanes.Int, a => a.punpckhwd(xmm0, xmm1), a => a.punpckhwd(xmm0, M128));
        RegMem("punpckhdq", SseLanes.Int, a => a.punpckhdq(xmm0, xmm1), a => a.punpckhdq(xmm0, M128));
        RegMem("punpckhqdq", SseLanes.Int, a => a.punpckhqdq(xmm0, xmm1), a => a.punpckhqdq(xmm0, M128));
        RegMem("unpcklps", SseLanes.F32, a => a.unpcklps(xmm0, xmm1), a => a.unpcklps(xmm0, M128));
        RegMem("unpckhps", SseLanes.F32, a => a.unpckhps(xmm0, xmm1), a => a.unpckhps(xmm0, M128));
        RegMem("unpcklpd", SseLanes.F64, a => a.unpcklpd(xmm0, xmm1), a => a.unpcklpd(xmm0, M128));
        RegMem("unpckhpd", SseLanes.F64, a => a.unpckhpd(xmm0, xmm1), a => a.unpckhpd(xmm0, M128));
        foreach (byte imm in new byte[] { 0x1B, 0x4E, 0xE4, 0x93 })
        {
            RegMem($"pshufd {imm:X2}", SseLanes.Int, a => a.pshufd(xmm0, xmm1, imm), a => a.pshufd(xmm0, M128, imm));
            RegMem($"pshuflw {imm:X2}", SseLanes.Int, a => a.pshuflw(xmm0, xmm1, imm), a => a.pshuflw(xmm0, M128, imm));
            RegMem($"pshufhw {imm:X2}", SseLanes.Int, a => a.pshufhw(xmm0, xmm1, imm), a => a.pshufhw(xmm0, M128, imm));
            RegMem($"shufps {imm:X2}", SseLanes.F32, a => a.shufps(xmm0, xmm1, imm), a => a.shufps(xmm0, M128, imm));
            byte imm2 = (byte)(imm & 3);
            RegMem($"shufpd {imm2:X2}", SseLanes.F64, a => a.shufpd(xmm0, xmm1, imm2), a => a.shufpd(xmm0, M128, imm2));
        }

        foreach (byte imm in new byte[] { 0, 1, 7, 15, 16, 31, 33, 63, 64, 200 })
        {
            l.Add(new($"psllw xmm, {imm}", SseLanes.Int, a => a.psllw(xmm0, imm)));
            l.Add(new($"pslld xmm, {imm}", SseLanes.Int, a => a.pslld(xmm0, imm)));
            l.Add(new($"psllq xmm, {imm}", SseLanes.Int, a => a.psllq(xmm0, imm)));
            l.Add(new($"psrlw xmm, {imm}", SseLanes.Int, a => a.psrlw(xmm0, imm)));
            l.Add(new($"psrld xmm, {imm}", SseLanes.Int, a => a.psrld(xmm0, imm)));
            l.Add(new($"psrlq xmm, {imm}", SseLanes.Int, a => a.psrlq(xmm0, imm)));
            l.Add(new($"psraw xmm, {imm}", SseLanes.Int, a => a.psraw(xmm0, imm)));
            l.Add(new($"psrad xmm, {imm}", SseLanes.Int, a => a.psrad(xmm0, imm)));
            l.Add(new($"pslldq xmm, {imm}", SseLanes.Int, a => a.pslldq(xmm0, imm)));
            l.Add(new($"psrldq xmm, {imm}", SseLanes.Int, a => a.psrldq(xmm0, imm)));
        }

        // Shift counts from the low quadword of XMM1 or m128 (the integer generator makes some of them small).
        RegMem("psllw by xmm", SseLanes.Int, a => a.psllw(xmm0, xmm1), a => a.psllw(xmm0, M128));
        RegMem("pslld by xmm", SseLanes.Int, a => a.pslld(xmm0, xmm1), a => a.pslld(xmm0, M128));
        RegMem("psllq by xmm", SseLanes.Int, a => a.psllq(xmm0, xmm1), a => a.psllq(xmm0, M128));
        RegMem("psrlw by xmm", SseLanes.Int, a => a.psrlw(xmm0, xmm1), a => a.psrlw(xmm0, M128));
        RegMem("psrld by xmm", SseLanes.Int, a => a.psrld(xmm0, xmm1), a => a.psrld(xmm0, M128));
        RegMem("psrlq by xmm", SseLanes.Int, a => a.psrlq(xmm0, xmm1), a => a.psrlq(xmm0, M128));
        RegMem("psraw by xmm", SseLanes.Int, a => a.psraw(xmm0, xmm1), a => a.psraw(xmm0, M128));
        RegMem("psrad by xmm", SseLanes.Int, a => a.psrad(xmm0, xmm1), a => a.psrad(xmm0, M128));
        l.Add(new("movmskps r32, xmm", SseLanes.F32, a => a.movmskps(eax, xmm0)));
        l.Add(new("movmskpd r32, xmm", SseLanes.F64, a => a.movmskpd(ecx, xmm1)));

        // Packed conversions and compares.
        RegMem("cvtdq2ps", SseLanes.Int, a => a.cvtdq2ps(xmm0, xmm1), a => a.cvtdq2ps(xmm0, M128));
        RegMem("cvtdq2pd", SseLanes.Int, a => a.cvtdq2pd(xmm0, xmm1), a => a.cvtdq2pd(xmm0, M64));
        RegMem("cvtps2dq", SseLanes.F32, a => a.cvtps2dq(xmm0, xmm1), a => a.cvtps2dq(xmm0, M128));
        RegMem("cvttps2dq", SseLanes.F32, a => a.cvttps2dq(xmm0, xmm1), a => a.cvttps2dq(xmm0, M128));
        RegMem("cvtpd2dq", SseLanes.F64, a => a.cvtpd2dq(xmm0, xmm1), a => a.cvtpd2dq(xmm0, M128));
        RegMem("cvttpd2dq", SseLanes.F64, a => a.cvttpd2dq(xmm0, xmm1), a => a.cvttpd2dq(xmm0, M128));
        RegMem("cvtps2pd", SseLanes.F32, a => a.cvtps2pd(xmm0, xmm1), a => a.cvtps2pd(xmm0, M64));
        RegMem("cvtpd2ps", SseLanes.F64, a => a.cvtpd2ps(xmm0, xmm1), a => a.cvtpd2ps(xmm0, M128));
        for (byte p = 0; p < 8; p++)
        {
            byte predicate = p;
            RegMem($"cmpps {p}", SseLanes.F32, a => a.cmpps(xmm0, xmm1, predicate), a => a.cmpps(xmm0, M128, predicate));
            RegMem($"cmppd {p}", SseLanes.F64, a => a.cmppd(xmm0, xmm1, predicate), a => a.cmppd(xmm0, M128, predicate));
            RegMem($"cmpss {p}", SseLanes.F32, a => a.cmpss(xmm0, xmm1, predicate), a => a.cmpss(xmm0, M32, predicate));
            RegMem($"cmpsd {p}", SseLanes.F64, a => a.cmpsd(xmm0, xmm1, predicate), a => a.cmpsd(xmm0, M64, predicate));
        }

        // LDMXCSR/STMXCSR are in every form's wrapper; this one also stores the MXCSR the form ran under.
        l.Add(new("stmxcsr m32", SseLanes.Int, a => a.stmxcsr(__dword_ptr[rsi + 48])));
        AddSse3ToSse42(l);
        return l;
    }
}
