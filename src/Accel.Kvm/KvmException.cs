using System.Globalization;
using Hypervisor.Core.Accelerators;

namespace Hypervisor.Accel.Kvm;

/// <summary>A KVM call failed: the exception names the ioctl or libc call and carries the errno it returned.</summary>
public sealed class KvmException : AcceleratorException
{
    /// <summary>Creates an exception for <paramref name="call"/> failing with <paramref name="errno"/>.</summary>
    /// <param name="call">The failing call, e.g. <c>KVM_CREATE_VM</c>.</param>
    /// <param name="errno">The Linux error number.</param>
    /// <param name="detail">What was being done, for the message.</param>
    public KvmException(string call, int errno, string? detail = null)
        : base(FormatMessage(call, errno, detail))
    {
        Call = call;
        ErrorNumber = errno;
    }

    /// <summary>The failing call (an ioctl name such as <c>KVM_RUN</c>, or a libc function).</summary>
    public string Call { get; }

    /// <summary>The Linux <c>errno</c> value the call returned.</summary>
    public int ErrorNumber { get; }

    private static string FormatMessage(string call, int errno, string? detail)
    {
        string reason = OperatingSystem.IsLinux() ? Interop.Libc.Describe(errno) : "errno " + errno.ToString(CultureInfo.InvariantCulture);
        return detail is null ? $"{call} failed: {reason}" : $"{call} failed ({detail}): {reason}";
    }
}
