using Hypervisor.Accel.Tcg.Fpu;

namespace Hypervisor.Accel.Tcg.Sse;

/// <summary>Fields of MXCSR (SDM Vol. 1, 10.2.3).</summary>
internal static class Mxcsr
{
    /// <summary>The power-up and FXRSTOR-default value: all exceptions masked, round to nearest, DAZ and FTZ off.</summary>
    public const uint Default = 0x1F80;

    public const uint DenormalsAreZero = 1 << 6;
    public const uint FlushToZero = 1 << 15;

    /// <summary>Bits a guest may set: flags, DAZ, masks, RC, FTZ (MXCSR_MASK 0xFFFF on parts with DAZ). Others raise #GP on LDMXCSR.</summary>
    public const uint WritableMask = 0xFFFF;

    public static RoundingMode Rounding(uint mxcsr) => (RoundingMode)((mxcsr >> 13) & 3);
    public static bool Daz(uint mxcsr) => (mxcsr & DenormalsAreZero) != 0;
    public static bool Ftz(uint mxcsr) => (mxcsr & FlushToZero) != 0;
    public static bool UnderflowMasked(uint mxcsr) => (mxcsr & (1 << 11)) != 0;
    public static FloatExceptions Masks(uint mxcsr) => (FloatExceptions)((mxcsr >> 7) & 0x3F);

    /// <summary>The exceptions in <paramref name="flags"/> that MXCSR leaves unmasked: if any, the instruction raises #XM (or #UD with CR4.OSXMMEXCPT clear) and writes no destination.</summary>
    public static FloatExceptions Unmasked(uint mxcsr, FloatExceptions flags) => flags & ~Masks(mxcsr) & FloatExceptions.All;

    /// <summary>MXCSR after an instruction that detected <paramref name="flags"/> (flags are sticky).</summary>
    public static uint Accumulate(uint mxcsr, FloatExceptions flags) => mxcsr | (uint)flags;
}
