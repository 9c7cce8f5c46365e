namespace Hypervisor.Accel.Kvm.Interop;

/// <summary>
/// Converts between <c>kvm_fpu</c> and the legacy region of an XSAVE area (FXSAVE layout, Intel SDM vol. 1,
/// table 10-2) plus the XSAVE header's XSTATE_BV (vol. 1, 13.4.2).
/// </summary>
internal static unsafe class XsaveLayout
{
    private const int Fcw = 0, Fsw = 2, Ftw = 4, Fop = 6, Fip = 8, Fdp = 16, Mxcsr = 24, St = 32, Xmm = 160;
    private const int XstateBv = 512;
    private const ulong X87 = 1, Sse = 2;

    internal static kvm_fpu ToFpu(byte* area)
    {
        ulong present = *(ulong*)(area + XstateBv);
        var fpu = default(kvm_fpu);
        if ((present & X87) != 0)
        {
            fpu.fcw = *(ushort*)(area + Fcw);
            fpu.fsw = *(ushort*)(area + Fsw);
            fpu.ftwx = area[Ftw];
            fpu.last_opcode = *(ushort*)(area + Fop);
            fpu.last_ip = *(ulong*)(area + Fip);
            fpu.last_dp = *(ulong*)(area + Fdp);
            new ReadOnlySpan<byte>(area + St, 128).CopyTo(new Span<byte>(fpu.fpr, 128));
        }
        else
        {
            fpu.fcw = 0x037F; // x87 init state (FNINIT): all exceptions masked, 64-bit precision, round to nearest
        }

        if ((present & Sse) != 0)
        {
            new ReadOnlySpan<byte>(area + Xmm, 256).CopyTo(new Span<byte>(fpu.xmm, 256));
        }

        fpu.mxcsr = *(uint*)(area + Mxcsr); // XSAVE stores MXCSR whenever SSE or AVX is requested
        return fpu;
    }

    internal static void FromFpu(in kvm_fpu fpu, byte* area)
    {
        *(ushort*)(area + Fcw) = fpu.fcw;
        *(ushort*)(area + Fsw) = fpu.fsw;
        area[Ftw] = fpu.ftwx;
        *(ushort*)(area + Fop) = fpu.last_opcode;
        *(ulong*)(area + Fip) = fpu.last_ip;
        *(ulong*)(area + Fdp) = fpu.last_dp;
        *(uint*)(area + Mxcsr) = fpu.mxcsr;
        fixed (byte* fpr = fpu.fpr)
        fixed (byte* xmm = fpu.xmm)
        {
            new ReadOnlySpan<byte>(fpr, 128).CopyTo(new Span<byte>(area + St, 128));
            new ReadOnlySpan<byte>(xmm, 256).CopyTo(new Span<byte>(area + Xmm, 256));
        }

        *(ulong*)(area + XstateBv) |= X87 | Sse;
    }
}
