using System.Globalization;

namespace Hypervisor.Core.Hosting;

/// <summary>Parses memory sizes the way QEMU's <c>-m</c> does.</summary>
public static class MemorySize
{
    /// <summary>
    /// Parses <c>128</c> (MiB), <c>128M</c>, <c>2G</c>, <c>65536K</c> (case-insensitive, optional trailing B or iB) into bytes.
    /// </summary>
    /// <exception cref="HypervisorConfigurationException">Malformed, zero, not a whole number of 4 KiB pages, or above 1 TiB.</exception>
    public static ulong Parse(string? text)
    {
        string s = (text ?? string.Empty).Trim();
        string bad = $"Invalid memory size '{text}': use MiB (128) or a number with K, M or G (512M, 2G).";
        if (s.Length == 0)
        {
            throw new HypervisorConfigurationException(bad);
        }

        if (s.EndsWith("iB", StringComparison.OrdinalIgnoreCase))
        {
            s = s[..^2];
        }
        else if (s.Length > 1 && char.IsLetter(s[^2]) && (s[^1] is 'B' or 'b'))
        {
            s = s[..^1];
        }

        ulong multiplier = 1024 * 1024;
        switch (char.ToUpperInvariant(s[^1]))
        {
            case 'K': multiplier = 1024; s = s[..^1]; break;
            case 'M': s = s[..^1]; break;
            case 'G': multiplier = 1024UL * 1024 * 1024; s = s[..^1]; break;
            case 'T': multiplier = 1024UL * 1024 * 1024 * 1024; s = s[..^1]; break;
        }

        if (!ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out ulong n) || n == 0)
        {
            throw new HypervisorConfigurationException(bad);
        }

        const ulong max = 1UL << 40;
        if (n > max / multiplier)
        {
            throw new HypervisorConfigurationException($"Memory size '{text}' is larger than the 1 TiB we support.");
        }

        ulong bytes = n * multiplier;
        if (bytes % 4096 != 0)
        {
            throw new HypervisorConfigurationException($"Memory size '{text}' is not a whole number of 4 KiB pages.");
        }

        return bytes;
    }
}
