using System.Runtime.Versioning;
using Hypervisor.Accel.Kvm.Interop;
using static Hypervisor.Accel.Kvm.Interop.KvmConstants;

namespace Hypervisor.Accel.Kvm;

/// <summary>
/// A view of why <see cref="KvmVcpu.Run"/> returned, over the vCPU's mmapped <c>kvm_run</c>.
/// </summary>
/// <remarks>
/// Valid until the next Run or Dispose of the same vCPU: after that every member throws
/// <see cref="InvalidOperationException"/> instead of reading data of a later exit. Data spans (port data, MMIO
/// data) point into the shared page: writing them (for an IN or an MMIO read) is how the access is completed, and
/// they follow the same lifetime. Use from the vCPU thread.
/// </remarks>
[SupportedOSPlatform("linux")]
internal readonly unsafe ref struct KvmExit
{
    private readonly KvmVcpu _vcpu;
    private readonly int _generation;

    internal KvmExit(KvmVcpu vcpu, int generation)
    {
        _vcpu = vcpu;
        _generation = generation;
    }

    /// <summary>The <c>KVM_EXIT_*</c> reason; <c>KVM_EXIT_INTR</c> after a kick.</summary>
    internal uint Reason
    {
        get
        {
            Validate();
            return _vcpu.LastExitReason;
        }
    }

    internal bool IsValid => _vcpu is not null && !_vcpu.IsDisposed && _vcpu.Generation == _generation;

    internal ref readonly kvm_run_io Io => ref Run(KVM_EXIT_IO)->io;

    /// <summary>The bytes of a port access: <c>size * count</c> bytes at <c>data_offset</c>. For IN, write the result here.</summary>
    internal Span<byte> IoData
    {
        get
        {
            kvm_run* run = Run(KVM_EXIT_IO);
            ulong length = (ulong)run->io.size * run->io.count;
            ulong offset = run->io.data_offset;
            if (offset > (ulong)_vcpu.RunStructureSize || length > (ulong)_vcpu.RunStructureSize - offset)
            {
                throw new InvalidOperationException($"KVM reported port data at offset {offset} of {length} bytes, outside the {_vcpu.RunStructureSize}-byte kvm_run mapping.");
            }

            return new Span<byte>((byte*)run + offset, (int)length);
        }
    }

    internal ref readonly kvm_run_mmio Mmio => ref Run(KVM_EXIT_MMIO)->mmio;

    /// <summary>The data of an MMIO access (<c>len</c> bytes, at most 8). For a read, write the result here.</summary>
    internal Span<byte> MmioData
    {
        get
        {
            kvm_run* run = Run(KVM_EXIT_MMIO);
            int length = (int)Math.Min(run->mmio.len, 8u);
            return new Span<byte>(run->mmio.data, length);
        }
    }

    internal ref readonly kvm_run_fail_entry FailEntry => ref Run(KVM_EXIT_FAIL_ENTRY)->fail_entry;

    internal ref readonly kvm_run_internal Internal => ref Run(KVM_EXIT_INTERNAL_ERROR)->@internal;

    internal ref readonly kvm_run_system_event SystemEvent => ref Run(KVM_EXIT_SYSTEM_EVENT)->system_event;

    internal ref readonly kvm_run_hw Hardware => ref Run(KVM_EXIT_UNKNOWN)->hw;

    internal ref readonly kvm_run_ex Exception => ref Run(KVM_EXIT_EXCEPTION)->ex;

    internal ref readonly kvm_run_debug Debug => ref Run(KVM_EXIT_DEBUG)->debug;

    private kvm_run* Run(uint expectedReason)
    {
        Validate();
        uint reason = _vcpu.LastExitReason;
        if (reason != expectedReason)
        {
            throw new InvalidOperationException($"The exit reason is {reason}, not {expectedReason}: that member of the exit union is not valid.");
        }

        return _vcpu.RunStructure;
    }

    private void Validate()
    {
        if (_vcpu is null)
        {
            throw new InvalidOperationException("This exit view was not produced by KvmVcpu.Run.");
        }

        if (_vcpu.IsDisposed || _vcpu.Generation != _generation)
        {
            throw new InvalidOperationException($"This exit view of vCPU {_vcpu.Id} is stale: it is valid only until the next Run or Dispose.");
        }
    }
}
