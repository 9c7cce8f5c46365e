namespace Hypervisor.Core.Accelerators;

/// <summary>
/// A parsed accelerator specification: <c>auto</c>, one name (<c>tcg</c>), or an ordered list of candidates separated by
/// colons, each with QEMU-style options (<c>kvm:tcg,jit=off</c>).
/// </summary>
public sealed class AcceleratorSpec
{
    /// <summary>The order <c>auto</c> stands for.</summary>
    public static IReadOnlyList<string> AutoOrder { get; } = ["kvm", "whpx", "tcg"];

    private AcceleratorSpec(string text, bool isAuto, IReadOnlyList<AcceleratorCandidate> candidates)
    {
        Text = text;
        IsAuto = isAuto;
        Candidates = candidates;
    }

    /// <summary>The specification as written.</summary>
    public string Text { get; }

    /// <summary>True for <c>auto</c>.</summary>
    public bool IsAuto { get; }

    /// <summary>The candidates in the order they are tried.</summary>
    public IReadOnlyList<AcceleratorCandidate> Candidates { get; }

    /// <summary>Parses a specification against the names of the accelerators known to the caller.</summary>
    /// <param name="text">The specification.</param>
    /// <param name="knownNames">Every accelerator name that may appear (registered or not).</param>
    /// <exception cref="HypervisorConfigurationException">Malformed text or an unknown name; the message lists the valid names.</exception>
    public static AcceleratorSpec Parse(string? text, IEnumerable<string> knownNames)
    {
        var known = new SortedSet<string>(knownNames, StringComparer.Ordinal);
        foreach (string n in AutoOrder)
        {
            known.Add(n);
        }

        string valid = $"valid: auto, {string.Join(", ", known)}, or a list such as kvm:tcg, with options such as tcg,jit=off";
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new HypervisorConfigurationException($"The accelerator specification is empty ({valid}).");
        }

        string trimmed = text.Trim();
        if (trimmed.Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            return new AcceleratorSpec(trimmed, true,
                AutoOrder.Select(n => new AcceleratorCandidate(n, AcceleratorOptions.Empty)).ToArray());
        }

        var candidates = new List<AcceleratorCandidate>();
        foreach (string entry in trimmed.Split(':'))
        {
            string[] parts = entry.Split(',');
            string name = parts[0].Trim().ToLowerInvariant();
            if (name.Length == 0)
            {
                throw new HypervisorConfigurationException($"Accelerator specification '{text}' has an empty entry ({valid}).");
            }

            if (name == "auto")
            {
                throw new HypervisorConfigurationException($"'auto' cannot be part of a list in '{text}' ({valid}).");
            }

            if (!known.Contains(name))
            {
                throw new HypervisorConfigurationException($"Unknown accelerator '{name}' in '{text}' ({valid}).");
            }

            var options = new List<KeyValuePair<string, string>>();
            foreach (string option in parts.Skip(1))
            {
                int eq = option.IndexOf('=', StringComparison.Ordinal);
                string key = (eq < 0 ? option : option[..eq]).Trim();
                string value = eq < 0 ? "on" : option[(eq + 1)..].Trim();
                if (key.Length == 0 || value.Length == 0)
                {
                    throw new HypervisorConfigurationException(
                        $"Malformed option '{option}' for accelerator '{name}' in '{text}' (expected key=value).");
                }

                options.Add(new(key, value));
            }

            if (candidates.Any(c => c.Name == name))
            {
                throw new HypervisorConfigurationException($"Accelerator '{name}' appears twice in '{text}'.");
            }

            candidates.Add(new AcceleratorCandidate(name, new AcceleratorOptions(options)));
        }

        return new AcceleratorSpec(trimmed, false, candidates);
    }

    /// <inheritdoc />
    public override string ToString() => Text;
}

/// <summary>One entry of a specification.</summary>
/// <param name="Name">The accelerator name.</param>
/// <param name="Options">Its options.</param>
public sealed record AcceleratorCandidate(string Name, AcceleratorOptions Options);
