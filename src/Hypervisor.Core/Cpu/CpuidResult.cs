namespace Hypervisor.Core.Cpu;

/// <summary>One of the four registers a <c>CPUID</c> result is returned in.</summary>
public enum CpuidRegister
{
    /// <summary>EAX.</summary>
    Eax,

    /// <summary>EBX.</summary>
    Ebx,

    /// <summary>ECX.</summary>
    Ecx,

    /// <summary>EDX.</summary>
    Edx,
}

/// <summary>The four registers <c>CPUID</c> returns for one leaf and sub-leaf.</summary>
/// <param name="Eax">EAX.</param>
/// <param name="Ebx">EBX.</param>
/// <param name="Ecx">ECX.</param>
/// <param name="Edx">EDX.</param>
public readonly record struct CpuidResult(uint Eax, uint Ebx, uint Ecx, uint Edx)
{
    /// <summary>The value of one register.</summary>
    /// <param name="register">The register.</param>
    public uint this[CpuidRegister register] => register switch
    {
        CpuidRegister.Eax => Eax,
        CpuidRegister.Ebx => Ebx,
        CpuidRegister.Ecx => Ecx,
        _ => Edx,
    };

    /// <summary>This result with one register replaced.</summary>
    /// <param name="register">The register to replace.</param>
    /// <param name="value">Its new value.</param>
    public CpuidResult With(CpuidRegister register, uint value) => register switch
    {
        CpuidRegister.Eax => this with { Eax = value },
        CpuidRegister.Ebx => this with { Ebx = value },
        CpuidRegister.Ecx => this with { Ecx = value },
        _ => this with { Edx = value },
    };
}

/// <summary>A register of one <c>CPUID</c> leaf and sub-leaf that holds feature flags.</summary>
/// <param name="Leaf">The leaf (EAX on input).</param>
/// <param name="Subleaf">The sub-leaf (ECX on input); 0 for leaves that have none.</param>
/// <param name="Register">The output register.</param>
public readonly record struct CpuidRegisterLocation(uint Leaf, uint Subleaf, CpuidRegister Register)
{
    /// <summary>
    /// Whether <c>CPUID</c> looks at ECX for this leaf (Intel SDM Vol. 2A, CPUID: leaves 4, 7, 0BH, 0DH, 0FH, 10H, 12H,
    /// 14H, 17H, 18H, 1FH and 8000001DH have sub-leaves). For other leaves the sub-leaf is always stored as 0.
    /// </summary>
    /// <param name="leaf">The leaf.</param>
    public static bool HasSubleaves(uint leaf) =>
        leaf is 4 or 7 or 0xB or 0xD or 0xF or 0x10 or 0x12 or 0x14 or 0x17 or 0x18 or 0x1F or 0x8000_001D;

    /// <inheritdoc />
    public override string ToString() => HasSubleaves(Leaf)
        ? $"CPUID.(EAX={Leaf:X}h,ECX={Subleaf:X}h):{Register.ToString().ToUpperInvariant()}"
        : $"CPUID.{Leaf:X}h:{Register.ToString().ToUpperInvariant()}";
}
