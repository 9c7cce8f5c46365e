using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace Hypervisor.Accel.Kvm.Interop;

/// <summary>An owned Linux file descriptor (of /dev/kvm, a VM or a vCPU), closed exactly once.</summary>
[SupportedOSPlatform("linux")]
internal sealed class FileDescriptorHandle : SafeHandle
{
    internal FileDescriptorHandle(int fd)
        : base(invalidHandleValue: -1, ownsHandle: true)
    {
        SetHandle(fd);
    }

    public override bool IsInvalid => handle < 0;

    /// <summary>The descriptor number; only meaningful while a reference is held (see <see cref="SafeHandle.DangerousAddRef"/>).</summary>
    internal int Fd => (int)handle;

    protected override bool ReleaseHandle() => Libc.Close((int)handle) == 0;
}

/// <summary>An owned shared mapping of a file (the vCPU's <c>kvm_run</c> page), unmapped exactly once.</summary>
[SupportedOSPlatform("linux")]
internal sealed unsafe class MappingHandle : SafeHandle
{
    private readonly nuint _length;

    internal MappingHandle(void* address, nuint length)
        : base(invalidHandleValue: 0, ownsHandle: true)
    {
        _length = length;
        SetHandle((nint)address);
    }

    public override bool IsInvalid => handle == 0;

    internal void* Address => (void*)handle;

    internal nuint Length => _length;

    protected override bool ReleaseHandle()
    {
        Libc.Unmap((void*)handle, _length);
        return true;
    }
}

/// <summary>
/// Holds a reference on a <see cref="FileDescriptorHandle"/> for the duration of a call, so that a concurrent
/// Dispose cannot close (and the kernel cannot reuse) the descriptor number while an ioctl uses it.
/// </summary>
[SupportedOSPlatform("linux")]
internal ref struct FdLease
{
    private readonly FileDescriptorHandle _handle;
    private bool _added;

    /// <exception cref="ObjectDisposedException">The handle was already closed.</exception>
    internal FdLease(FileDescriptorHandle handle)
    {
        _handle = handle;
        _added = false;
        handle.DangerousAddRef(ref _added);
        Fd = handle.Fd;
    }

    internal int Fd { get; }

    public void Dispose()
    {
        if (_added)
        {
            _added = false;
            _handle.DangerousRelease();
        }
    }
}
