using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Hypervisor.Core.Accelerators;

namespace Hypervisor.Accel.Whpx;

/// <summary>A Windows Hypervisor Platform call failed; names the call and carries its HRESULT.</summary>
public sealed class WhpxException : AcceleratorException
{
    /// <summary>Creates an exception for <paramref name="function"/> failing with <paramref name="hresult"/>.</summary>
    public WhpxException(string function, int hresult)
        : base(string.Create(CultureInfo.InvariantCulture, $"{function} failed with HRESULT 0x{hresult:X8}."))
    {
        Function = function;
        HResult = hresult;
    }

    /// <summary>Creates an exception for a failure that has no HRESULT (a state the platform reported).</summary>
    public WhpxException(string function, string message)
        : base($"{function}: {message}")
    {
        Function = function;
    }

    /// <summary>The WHPX function that failed, for example <c>WHvRunVirtualProcessor</c>.</summary>
    public string Function { get; }

    /// <summary>Throws a <see cref="WhpxException"/> when <paramref name="hresult"/> is a failure.</summary>
    internal static void ThrowIfFailed(int hresult, string function)
    {
        if (hresult < 0)
        {
            Throw(function, hresult);
        }
    }

    [DoesNotReturn]
    private static void Throw(string function, int hresult) => throw new WhpxException(function, hresult);
}
