using Hypervisor.Core.Accelerators;

namespace Hypervisor.Accel.Tcg.Jit;

/// <summary>
/// Settings of the tcg JIT, from the accelerator options
/// (<c>tcg,jit=on,jit-threshold=N,jit-cache-mb=M,jit-background=on|off</c>).
/// </summary>
/// <param name="Threshold">Guest instructions a block retires in the interpreter before it is translated.</param>
/// <param name="CacheBytes">Bound of the translation cache.</param>
/// <param name="Background">Translate on the background compiler thread (the vCPU interprets meanwhile) rather than inline.</param>
internal sealed record JitOptions(int Threshold, long CacheBytes, bool Background = true)
{
    /// <summary>Translations one vCPU may have queued on the background compiler (more hot blocks wait their turn in the interpreter).</summary>
    public int MaxQueued => 16;

    /// <summary>
    /// Guest instructions a block retires in the interpreter before it is translated (default). Compiling a region
    /// costs the runtime about as much as interpreting a few hundred thousand instructions, so only code that has
    /// already run this much is likely to repay it.
    /// </summary>
    public const int DefaultThreshold = 200_000;

    /// <summary>Default bound of the translation cache.</summary>
    public const long DefaultCacheBytes = 64L << 20;

    /// <summary>Whether this runtime can compile dynamic methods at all (false under Native AOT).</summary>
    public static bool Supported => System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeCompiled;

    /// <summary>The JIT settings asked for by <paramref name="options"/>, or null when the interpreter alone should run.</summary>
    public static JitOptions? From(AcceleratorOptions options, bool defaultOn)
    {
        if (!options.GetSwitch("jit", defaultOn) || !Supported)
        {
            return null;
        }

        int threshold = Parse(options, "jit-threshold", DefaultThreshold, 0, int.MaxValue);
        long mb = Parse(options, "jit-cache-mb", (int)(DefaultCacheBytes >> 20), 1, 4096);
        return new JitOptions(threshold, mb << 20, options.GetSwitch("jit-background", true));
    }

    private static int Parse(AcceleratorOptions options, string key, int fallback, int min, int max)
    {
        string? s = options.Get(key);
        if (s is null)
        {
            return fallback;
        }

        if (!int.TryParse(s, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int v) || v < min || v > max)
        {
            throw new Hypervisor.Core.HypervisorConfigurationException($"Option '{key}={s}' must be an integer from {min} to {max}.");
        }

        return v;
    }
}
