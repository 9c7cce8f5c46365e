namespace Hypervisor.Core.Accelerators;

/// <summary>The <c>key=value</c> options given to one accelerator in a specification (<c>tcg,jit=off</c>).</summary>
public sealed class AcceleratorOptions
{
    private readonly Dictionary<string, string> _values;

    /// <summary>Creates options from pairs; keys are case-insensitive.</summary>
    public AcceleratorOptions(IEnumerable<KeyValuePair<string, string>> values)
    {
        _values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (KeyValuePair<string, string> kv in values)
        {
            if (!_values.TryAdd(kv.Key, kv.Value))
            {
                throw new HypervisorConfigurationException($"Option '{kv.Key}' is given twice.");
            }
        }
    }

    /// <summary>No options.</summary>
    public static AcceleratorOptions Empty { get; } = new([]);

    /// <summary>The options as given.</summary>
    public IReadOnlyDictionary<string, string> Values => _values;

    /// <summary>The value of <paramref name="key"/>, or null.</summary>
    public string? Get(string key) => _values.GetValueOrDefault(key);

    /// <summary>
    /// A switch option: <c>on</c>/<c>off</c> (also <c>true</c>/<c>false</c>, <c>yes</c>/<c>no</c>, <c>1</c>/<c>0</c>), or
    /// <paramref name="defaultValue"/> when absent.
    /// </summary>
    /// <exception cref="HypervisorConfigurationException">The value is not a switch.</exception>
    public bool GetSwitch(string key, bool defaultValue)
    {
        string? v = Get(key);
        return v?.ToLowerInvariant() switch
        {
            null => defaultValue,
            "on" or "true" or "yes" or "1" => true,
            "off" or "false" or "no" or "0" => false,
            _ => throw new HypervisorConfigurationException($"Option '{key}={v}' must be 'on' or 'off'."),
        };
    }

    /// <inheritdoc />
    public override string ToString() => string.Join(",", _values.Select(kv => $"{kv.Key}={kv.Value}"));
}
