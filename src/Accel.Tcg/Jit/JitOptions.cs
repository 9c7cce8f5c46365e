using Hypervisor.Core.Accelerators;

namespace Hypervisor.Accel.Tcg.Jit;

/// <summary>Settings of the tcg JIT, from the accelerator options (<c>tcg,jit=on,jit-threshold=N,jit-cache-mb=M</c>).</summary>
internal sealed record JitOptions(int Threshold, long CacheBytes)
{
    /// <summary>Executions of a block in the interpreter before it is translated (default).</summary>
    public const int DefaultThreshold = 16;

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
        return new JitOptions(threshold, mb << 20);
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
