using System.Runtime.InteropServices;
using Iced.Intel;

namespace Hypervisor.Accel.Kvm.Tests;

/// <summary>Probes /dev/kvm once; tests that need it call <see cref="RequireKvm"/>, which ignores them with the probe's reason.</summary>
internal static class KvmHost
{
    private static readonly Lazy<KvmProbeResult> s_probe = new(() => KvmProbe.Probe());

    internal static KvmProbeResult Probe => s_probe.Value;

    internal static void RequireKvm()
    {
        if (!OperatingSystem.IsLinux() || !Probe.IsAvailable)
        {
            Assert.Ignore("kvm unavailable: " + Probe.Reason);
        }
    }

    internal static bool InEmulatedGuest => Environment.GetEnvironmentVariable("KVM_GUEST") == "1";
}

/// <summary>Page-aligned, zeroed native memory standing in for guest RAM in the wrapper-level tests.</summary>
internal sealed unsafe class NativePages : IDisposable
{
    internal NativePages(int sizeInBytes)
    {
        SizeInBytes = sizeInBytes;
        Pointer = (byte*)NativeMemory.AlignedAlloc((nuint)sizeInBytes, 4096);
        NativeMemory.Clear(Pointer, (nuint)sizeInBytes);
    }

    internal byte* Pointer { get; private set; }

    internal int SizeInBytes { get; }

    internal nint Address => (nint)Pointer;

    internal Span<byte> Span => new(Pointer, SizeInBytes);

    public void Dispose()
    {
        if (Pointer != null)
        {
            NativeMemory.AlignedFree(Pointer);
            Pointer = null;
        }
    }
}

internal static class Guest
{
    /// <summary>Assembles 16-bit code placed at <paramref name="origin"/>.</summary>
    internal static byte[] Assemble16(ulong origin, Action<Assembler> build)
    {
        var assembler = new Assembler(16);
        build(assembler);
        using var stream = new MemoryStream();
        assembler.Assemble(new StreamCodeWriter(stream), origin);
        return stream.ToArray();
    }
}
