using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>The SSE3, SSSE3, SSE4.1 and SSE4.2 forms (and CRC32), register and memory operands, immediates spread over their fields.</summary>
internal static partial class SseForms
{
    private static void AddSse3ToSse42(List<SseForm> l)
    {
        AssemblerMemoryOperand m128 = __xmmword_ptr[rsi + 16], m64 = __qword_ptr[rsi + 16], m32 = __dword_ptr[rsi + 16],
            m16 = __word_ptr[rsi + 16], m8 = __byte_ptr[rsi + 16];

        void RegMem(string name, SseLanes lanes, Action<Assembler> reg, Action<Assembler> mem)
        {
            l.Add(new SseForm(name + " xmm, xmm", lanes, reg));
            l.Add(new SseForm(name + " xmm, m", lanes, mem));
        }

        // MASKMOVDQU stores through DS:RDI; the mask (XMM1) comes from the integer generator.
        l.Add(new("maskmovdqu xmm, xmm (rdi = m)", SseLanes.Int, a => { a.lea(rdi, m128); a.maskmovdqu(xmm0, xmm1); }));
        l.Add(new("maskmovdqu xmm, xmm (rdi = m+5)", SseLanes.Int, a => { a.lea(rdi, __[rsi + 21]); a.maskmovdqu(xmm0, xmm1); }));

        // SSE3.
        RegMem("addsubps", SseLanes.F32, a => a.addsubps(xmm0, xmm1), a => a.addsubps(xmm0, m128));
        RegMem("addsubpd", SseLanes.F64, a => a.addsubpd(xmm0, xmm1), a => a.addsubpd(xmm0, m128));
        RegMem("haddps", SseLanes.F32, a => a.haddps(xmm0, xmm1), a => a.haddps(xmm0, m128));
        RegMem("haddpd", SseLanes.F64, a => a.haddpd(xmm0, xmm1), a => a.haddpd(xmm0, m128));
        RegMem("hsubps", SseLanes.F32, a => a.hsubps(xmm0, xmm1), a => a.hsubps(xmm0, m128));
        RegMem("hsubpd", SseLanes.F64, a => a.hsubpd(xmm0, xmm1), a => a.hsubpd(xmm0, m128));
        RegMem("movshdup", SseLanes.Int, a => a.movshdup(xmm0, xmm1), a => a.movshdup(xmm0, m128));
        RegMem("movsldup", SseLanes.Int, a => a.movsldup(xmm0, xmm1), a => a.movsldup(xmm0, m128));
        RegMem("movddup", SseLanes.Int, a => a.movddup(xmm0, xmm1), a => a.movddup(xmm0, m64));
        l.Add(new("lddqu xmm, m (unaligned)", SseLanes.Int, a => a.lddqu(xmm0, __xmmword_ptr[rsi + 19])));

        // SSSE3 (XMM forms).
        RegMem("pshufb", SseLanes.Int, a => a.pshufb(xmm0, xmm1), a => a.pshufb(xmm0, m128));
        RegMem("phaddw", SseLanes.Int, a => a.phaddw(xmm0, xmm1), a => a.phaddw(xmm0, m128));
        RegMem("phaddd", SseLanes.Int, a => a.phaddd(xmm0, xmm1), a => a.phaddd(xmm0, m128));
        RegMem("phaddsw", SseLanes.Int, a => a.phaddsw(xmm0, xmm1), a => a.phaddsw(xmm0, m128));
        RegMem("phsubw", SseLanes.Int, a => a.phsubw(xmm0, xmm1), a => a.phsubw(xmm0, m128));
        RegMem("phsubd", SseLanes.Int, a => a.phsubd(xmm0, xmm1), a => a.phsubd(xmm0, m128));
        RegMem("phsubsw", SseLanes.Int, a => a.phsubsw(xmm0, xmm1), a => a.phsubsw(xmm0, m128));
        RegMem("pmaddubsw", SseLanes.Int, a => a.pmaddubsw(xmm0, xmm1), a => a.pmaddubsw(xmm0, m128));
        RegMem("pmulhrsw", SseLanes.Int, a => a.pmulhrsw(xmm0, xmm1), a => a.pmulhrsw(xmm0, m128));
        RegMem("psignb", SseLanes.Int, a => a.psignb(xmm0, xmm1), a => a.psignb(xmm0, m128));
        RegMem("psignw", SseLanes.Int, a => a.psignw(xmm0, xmm1), a => a.psignw(xmm0, m128));
        RegMem("psignd", SseLanes.Int, a => a.psignd(xmm0, xmm1), a => a.psignd(xmm0, m128));
        RegMem("pabsb", SseLanes.Int, a => a.pabsb(xmm0, xmm1), a => a.pabsb(xmm0, m128));
        RegMem("pabsw", SseLanes.Int, a => a.pabsw(xmm0, xmm1), a => a.pabsw(xmm0, m128));
        RegMem("pabsd", SseLanes.Int, a => a.pabsd(xmm0, xmm1), a => a.pabsd(xmm0, m128));
        foreach (byte imm in new byte[] { 0, 1, 7, 15, 16, 17, 24, 31, 32, 200 })
        {
            RegMem($"palignr {imm}", SseLanes.Int, a => a.palignr(xmm0, xmm1, imm), a => a.palignr(xmm0, m128, imm));
        }

        // SSE4.1 integer.
        foreach (byte imm in new byte[] { 0x00, 0xFF, 0xA5, 0x3C, 0x81 })
        {
            RegMem($"pblendw {imm:X2}", SseLanes.Int, a => a.pblendw(xmm0, xmm1, imm), a => a.pblendw(xmm0, m128, imm));
        }

        foreach (byte imm in new byte[] { 0, 5, 10, 15, 0xF6 })
        {
            RegMem($"blendps {imm:X2}", SseLanes.F32, a => a.blendps(xmm0, xmm1, imm), a => a.blendps(xmm0, m128, imm));
            byte imm2 = (byte)(imm & 3);
            RegMem($"blendpd {imm2:X2} ({imm:X2})", SseLanes.F64, a => a.blendpd(xmm0, xmm1, imm), a => a.blendpd(xmm0, m128, imm));
        }

        // Variable blends take their mask from XMM0 implicitly, so XMM1 is the destination here.
        l.Add(new("pblendvb xmm1, xmm2, <xmm0>", SseLanes.Int, a => { a.movdqa(xmm2, m128); a.pblendvb(xmm1, xmm2); }));
        l.Add(new("pblendvb xmm1, m, <xmm0>", SseLanes.Int, a => a.pblendvb(xmm1, m128)));
        l.Add(new("blendvps xmm1, xmm2, <xmm0>", SseLanes.F32, a => { a.movdqa(xmm2, m128); a.blendvps(xmm1, xmm2); }));
        l.Add(new("blendvps xmm1, m, <xmm0>", SseLanes.F32, a => a.blendvps(xmm1, m128)));
        l.Add(new("blendvpd xmm1, xmm2, <xmm0>", SseLanes.F64, a => { a.movdqa(xmm2, m128); a.blendvpd(xmm1, xmm2); }));
        l.Add(new("blendvpd xmm1, m, <xmm0>", SseLanes.F64, a => a.blendvpd(xmm1, m128)));

        RegMem("pminsb", SseLanes.Int, a => a.pminsb(xmm0, xmm1), a => a.pminsb(xmm0, m128));
        RegMem("pmaxsb", SseLanes.Int, a => a.pmaxsb(xmm0, xmm1), a => a.pmaxsb(xmm0, m128));
        RegMem("pminsd", SseLanes.Int, a => a.pminsd(xmm0, xmm1), a => a.pminsd(xmm0, m128));
        RegMem("pmaxsd", SseLanes.Int, a => a.pmaxsd(xmm0, xmm1), a => a.pmaxsd(xmm0, m128));
        RegMem("pminuw", SseLanes.Int, a => a.pminuw(xmm0, xmm1), a => a.pminuw(xmm0, m128));
        RegMem("pmaxuw", SseLanes.Int, a => a.pmaxuw(xmm0, xmm1), a => a.pmaxuw(xmm0, m128));
        RegMem("pminud", SseLanes.Int, a => a.pminud(xmm0, xmm1), a => a.pminud(xmm0, m128));
        RegMem("pmaxud", SseLanes.Int, a => a.pmaxud(xmm0, xmm1), a => a.pmaxud(xmm0, m128));
        RegMem("pmulld", SseLanes.Int, a => a.pmulld(xmm0, xmm1), a => a.pmulld(xmm0, m128));
        RegMem("pmuldq", SseLanes.Int, a => a.pmuldq(xmm0, xmm1), a => a.pmuldq(xmm0, m128));
        RegMem("pcmpeqq", SseLanes.Int, a => a.pcmpeqq(xmm0, xmm1), a => a.pcmpeqq(xmm0, m128));
        RegMem("packusdw", SseLanes.Int, a => a.packusdw(xmm0, xmm1), a => a.packusdw(xmm0, m128));
        RegMem("phminposuw", SseLanes.Int, a => a.phminposuw(xmm0, xmm1), a => a.phminposuw(xmm0, m128));
        for (byte i = 0; i < 8; i++)
        {
            byte imm = i == 7 ? (byte)0xFF : i;
            RegMem($"mpsadbw {imm:X2}", SseLanes.Int, a => a.mpsadbw(xmm0, xmm1, imm), a => a.mpsadbw(xmm0, m128, imm));
        }

        RegMem("pmovsxbw", SseLanes.Int, a => a.pmovsxbw(xmm0, xmm1), a => a.pmovsxbw(xmm0, m64));
        RegMem("pmovsxbd", SseLanes.Int, a => a.pmovsxbd(xmm0, xmm1), a => a.pmovsxbd(xmm0, m32));
        RegMem("pmovsxbq", SseLanes.Int, a => a.pmovsxbq(xmm0, xmm1), a => a.pmovsxbq(xmm0, m16));
        RegMem("pmovsxwd", SseLanes.Int, a => a.pmovsxwd(xmm0, xmm1), a => a.pmovsxwd(xmm0, m64));
        RegMem("pmovsxwq", SseLanes.Int, a => a.pmovsxwq(xmm0, xmm1), a => a.pmovsxwq(xmm0, m32));
        RegMem("pmovsxdq", SseLanes.Int, a => a.pmovsxdq(xmm0, xmm1), a => a.pmovsxdq(xmm0, m64));
        RegMem("pmovzxbw", SseLanes.Int, a => a.pmovzxbw(xmm0, xmm1), a => a.pmovzxbw(xmm0, m64));
        RegMem("pmovzxbd", SseLanes.Int, a => a.pmovzxbd(xmm0, xmm1), a => a.pmovzxbd(xmm0, m32));
        RegMem("pmovzxbq", SseLanes.Int, a => a.pmovzxbq(xmm0, xmm1), a => a.pmovzxbq(xmm0, m16));
        RegMem("pmovzxwd", SseLanes.Int, a => a.pmovzxwd(xmm0, xmm1), a => a.pmovzxwd(xmm0, m64));
        RegMem("pmovzxwq", SseLanes.Int, a => a.pmovzxwq(xmm0, xmm1), a => a.pmovzxwq(xmm0, m32));
        RegMem("pmovzxdq", SseLanes.Int, a => a.pmovzxdq(xmm0, xmm1), a => a.pmovzxdq(xmm0, m64));
        l.Add(new("pmovzxbw xmm, m64 (unaligned)", SseLanes.Int, a => a.pmovzxbw(xmm0, __qword_ptr[rsi + 21])));
        RegMem("ptest", SseLanes.Int, a => a.ptest(xmm0, xmm1), a => a.ptest(xmm0, m128));
        l.Add(new("ptest xmm, xmm (same)", SseLanes.Int, a => a.ptest(xmm0, xmm0)));
        l.Add(new("movntdqa xmm, m128", SseLanes.Int, a => a.movntdqa(xmm0, m128)));

        foreach (byte imm in new byte[] { 0, 1, 3, 6, 9, 15, 0x7F, 0xF2 })
        {
            l.Add(new($"pinsrb xmm, r32, {imm:X2}", SseLanes.Int, a => a.pinsrb(xmm0, eax, imm)));
            l.Add(new($"pinsrb xmm, m8, {imm:X2}", SseLanes.Int, a => a.pinsrb(xmm0, m8, imm)));
            l.Add(new($"pinsrd xmm, r32, {imm:X2}", SseLanes.Int, a => a.pinsrd(xmm0, ecx, imm)));
            l.Add(new($"pinsrd xmm, m32, {imm:X2}", SseLanes.Int, a => a.pinsrd(xmm0, m32, imm)));
            l.Add(new($"pinsrq xmm, r64, {imm:X2}", SseLanes.Int, a => a.pinsrq(xmm0, rax, imm)));
            l.Add(new($"pinsrq xmm, m64, {imm:X2}", SseLanes.Int, a => a.pinsrq(xmm0, m64, imm)));
            l.Add(new($"pextrb r32, xmm, {imm:X2}", SseLanes.Int, a => a.pextrb(eax, xmm1, imm)));
            l.Add(new($"pextrb r64, xmm, {imm:X2}", SseLanes.Int, a => a.pextrb(rcx, xmm0, imm)));
            l.Add(new($"pextrb m8, xmm, {imm:X2}", SseLanes.Int, a => a.pextrb(m8, xmm0, imm)));
            l.Add(new($"pextrw r32, xmm, {imm:X2} (0F 3A 15)", SseLanes.Int, a => a.db(0x66, 0x0F, 0x3A, 0x15, 0xC8, imm)));
            l.Add(new($"pextrw m16, xmm, {imm:X2}", SseLanes.Int, a => a.pextrw(m16, xmm0, imm)));
            l.Add(new($"pextrd r32, xmm, {imm:X2}", SseLanes.Int, a => a.pextrd(eax, xmm1, imm)));
            l.Add(new($"pextrd m32, xmm, {imm:X2}", SseLanes.Int, a => a.pextrd(m32, xmm0, imm)));
            l.Add(new($"pextrq r64, xmm, {imm:X2}", SseLanes.Int, a => a.pextrq(rcx, xmm0, imm)));
            l.Add(new($"pextrq m64, xmm, {imm:X2}", SseLanes.Int, a => a.pextrq(m64, xmm0, imm)));
            l.Add(new($"extractps r32, xmm, {imm:X2}", SseLanes.F32, a => a.extractps(eax, xmm1, imm)));
            l.Add(new($"extractps r64, xmm, {imm:X2}", SseLanes.F32, a => a.extractps(rcx, xmm0, imm)));
            l.Add(new($"extractps m32, xmm, {imm:X2}", SseLanes.F32, a => a.extractps(m32, xmm0, imm)));
        }

        foreach (byte imm in new byte[] { 0x00, 0x1C, 0x4A, 0xB0, 0xE5, 0x3F, 0xC9, 0x70 })
        {
            RegMem($"insertps {imm:X2}", SseLanes.F32, a => a.insertps(xmm0, xmm1, imm), a => a.insertps(xmm0, m32, imm));
        }

        // SSE4.1 floating point: every rounding-control immediate (bit 2 MXCSR.RC, bit 3 suppress PE).
        for (byte imm = 0; imm < 16; imm++)
        {
            byte i = imm;
            RegMem($"roundps {i:X2}", SseLanes.F32, a => a.roundps(xmm0, xmm1, i), a => a.roundps(xmm0, m128, i));
            RegMem($"roundpd {i:X2}", SseLanes.F64, a => a.roundpd(xmm0, xmm1, i), a => a.roundpd(xmm0, m128, i));
            RegMem($"roundss {i:X2}", SseLanes.F32, a => a.roundss(xmm0, xmm1, i), a => a.roundss(xmm0, m32, i));
            RegMem($"roundsd {i:X2}", SseLanes.F64, a => a.roundsd(xmm0, xmm1, i), a => a.roundsd(xmm0, m64, i));
        }

        foreach (byte imm in new byte[] { 0xFF, 0xF1, 0x31, 0x7A, 0xA5, 0x0F, 0xF0, 0x93 })
        {
            RegMem($"dpps {imm:X2}", SseLanes.F32, a => a.dpps(xmm0, xmm1, imm), a => a.dpps(xmm0, m128, imm));
        }

        foreach (byte imm in new byte[] { 0x33, 0x31, 0x12, 0x21, 0xF3, 0x03, 0x30 })
        {
            RegMem($"dppd {imm:X2}", SseLanes.F64, a => a.dppd(xmm0, xmm1, imm), a => a.dppd(xmm0, m128, imm));
        }

        // SSE4.2.
        RegMem("pcmpgtq", SseLanes.Int, a => a.pcmpgtq(xmm0, xmm1), a => a.pcmpgtq(xmm0, m128));

        // Explicit lengths: small signed values derived from RAX (bits 7:0) and RAX (bits 15:8), or the raw registers.
        static void SmallLengths32(Assembler a)
        {
            a.mov(edx, eax);
            a.shr(edx, 8);
            a.movsx(edx, dl);
            a.sar(edx, 3);
            a.movsx(eax, al);
            a.sar(eax, 3);
        }

        static void SmallLengths64(Assembler a)
        {
            a.mov(rdx, rax);
            a.shr(rdx, 8);
            a.movsx(rdx, dl);
            a.sar(rdx, 3);
            a.movsx(rax, al);
            a.sar(rax, 3);
        }

        byte[] few = [0x00, 0x01, 0x06, 0x0B, 0x0C, 0x0D, 0x14, 0x18, 0x1A, 0x34, 0x38, 0x3A, 0x40, 0x44, 0x4E, 0x7D];
        for (int i = 0; i < 128; i++)
        {
            byte imm = (byte)i;
            bool everyForm = Array.IndexOf(few, imm) >= 0;
            l.Add(new($"pcmpistri xmm, xmm, {imm:X2}", SseLanes.Text, a => a.pcmpistri(xmm0, xmm1, imm)));
            l.Add(new($"pcmpestri xmm, xmm, {imm:X2}", SseLanes.Text, a => { SmallLengths32(a); a.pcmpestri(xmm0, xmm1, imm); }));
            if (!everyForm)
            {
                continue;
            }

            l.Add(new($"pcmpistri xmm, m (unaligned), {imm:X2}", SseLanes.Text, a => a.pcmpistri(xmm0, __xmmword_ptr[rsi + 17], imm)));
            l.Add(new($"pcmpistrm xmm, xmm, {imm:X2}", SseLanes.Text, a => a.pcmpistrm(xmm0, xmm1, imm)));
            l.Add(new($"pcmpistrm xmm, m, {imm:X2}", SseLanes.Text, a => a.pcmpistrm(xmm0, m128, imm)));
            l.Add(new($"pcmpestri xmm, m, {imm:X2}", SseLanes.Text, a => { SmallLengths32(a); a.pcmpestri(xmm0, m128, imm); }));
            l.Add(new($"pcmpestri64 xmm, xmm, {imm:X2}", SseLanes.Text, a => { SmallLengths64(a); a.pcmpestri64(xmm0, xmm1, imm); }));
            l.Add(new($"pcmpestri64 xmm, xmm, {imm:X2} (raw RAX/RDX)", SseLanes.Text, a => { a.mov(rdx, rcx); a.pcmpestri64(xmm0, xmm1, imm); }));
            l.Add(new($"pcmpestri xmm, xmm, {imm:X2} (raw EAX/EDX)", SseLanes.Text, a => { a.mov(rdx, rcx); a.pcmpestri(xmm0, xmm1, imm); }));
            l.Add(new($"pcmpestrm xmm, xmm, {imm:X2}", SseLanes.Text, a => { SmallLengths32(a); a.pcmpestrm(xmm0, xmm1, imm); }));
            l.Add(new($"pcmpestrm xmm, m (unaligned), {imm:X2}", SseLanes.Text, a => { SmallLengths32(a); a.pcmpestrm(xmm0, __xmmword_ptr[rsi + 23], imm); }));
            l.Add(new($"pcmpestrm64 xmm, xmm, {imm:X2}", SseLanes.Text, a => { SmallLengths64(a); a.pcmpestrm64(xmm0, xmm1, imm); }));
        }

        l.Add(new("crc32 r32, r8", SseLanes.Int, a => a.crc32(eax, cl)));
        l.Add(new("crc32 r32, r8 (high)", SseLanes.Int, a => a.crc32(eax, ch)));
        l.Add(new("crc32 r32, r16", SseLanes.Int, a => a.crc32(eax, cx)));
        l.Add(new("crc32 r32, r32", SseLanes.Int, a => a.crc32(eax, ecx)));
        l.Add(new("crc32 r64, r8", SseLanes.Int, a => a.crc32(rax, cl)));
        l.Add(new("crc32 r64, r64", SseLanes.Int, a => a.crc32(rax, rcx)));
        l.Add(new("crc32 r32, m8", SseLanes.Int, a => a.crc32(ecx, m8)));
        l.Add(new("crc32 r32, m16", SseLanes.Int, a => a.crc32(ecx, m16)));
        l.Add(new("crc32 r32, m32", SseLanes.Int, a => a.crc32(ecx, m32)));
        l.Add(new("crc32 r64, m64", SseLanes.Int, a => a.crc32(rcx, m64)));
    }
}
