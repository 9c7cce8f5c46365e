using System.Globalization;
using System.Runtime.Versioning;
using Hypervisor.Accel.Kvm.Interop;
using static Hypervisor.Accel.Kvm.Interop.KvmConstants;

namespace Hypervisor.Accel.Kvm;

/// <summary>
/// One KVM virtual machine: its file descriptor, its user memory slots and the vCPUs created in it.
/// </summary>
/// <remarks>
/// The VM does not own guest memory: the caller keeps each slot's host memory alive and mapped for as long as the
/// slot exists. Slot changes and vCPU creation are thread-safe.
/// </remarks>
[SupportedOSPlatform("linux")]
internal sealed unsafe class KvmVm : IDisposable
{
    internal const ulong PageSize = 4096;

    private readonly FileDescriptorHandle _fd;
    private readonly Lock _lock = new();
    private readonly SortedDictionary<uint, KvmMemorySlot> _slots = [];
    private readonly List<KvmVcpu> _vcpus = [];
    private bool _disposed;

    internal KvmVm(KvmSystem system, FileDescriptorHandle fd)
    {
        _fd = fd;
        Capabilities = system.GetCapabilities();
        VcpuMmapSize = Capabilities.VcpuMmapSizeInBytes;
        if (CheckExtension(KVM_CAP_XSAVE) > 0)
        {
            // KVM_CAP_XSAVE2 on the VM fd gives the size KVM_GET_XSAVE2/KVM_SET_XSAVE use (Documentation/virt/kvm/api.rst 4.43).
            XsaveSizeInBytes = Math.Max(sizeof(kvm_xsave), CheckExtension(KVM_CAP_XSAVE2));
        }
    }

    /// <summary>The size of the XSAVE buffer for this VM's vCPUs, or 0 without <c>KVM_CAP_XSAVE</c>.</summary>
    internal int XsaveSizeInBytes { get; }

    internal KvmCapabilities Capabilities { get; }

    internal int VcpuMmapSize { get; }

    internal FileDescriptorHandle Handle => _fd;

    /// <summary>The current slots, ordered by slot number.</summary>
    internal IReadOnlyList<KvmMemorySlot> Slots
    {
        get
        {
            lock (_lock)
            {
                return [.. _slots.Values];
            }
        }
    }

    internal IReadOnlyList<KvmVcpu> Vcpus
    {
        get
        {
            lock (_lock)
            {
                return [.. _vcpus];
            }
        }
    }

    /// <summary>Checks a VM-level extension (<c>KVM_CHECK_EXTENSION</c> on the VM fd); 0 when absent.</summary>
    internal int CheckExtension(int capability)
    {
        using var lease = new FdLease(_fd);
        int result = Libc.Ioctl(lease.Fd, Ioctl.KVM_CHECK_EXTENSION, capability, out _);
        return result < 0 ? 0 : result;
    }

    /// <summary>Maps host memory into the guest (<c>KVM_SET_USER_MEMORY_REGION</c>).</summary>
    /// <exception cref="ArgumentException">Unaligned or empty range, or overlap with another slot.</exception>
    /// <exception cref="NotSupportedException">A read-only slot without <c>KVM_CAP_READONLY_MEM</c>.</exception>
    /// <exception cref="KvmException">The kernel refused the slot.</exception>
    internal void SetUserMemoryRegion(uint slot, ulong guestAddress, ulong sizeInBytes, nint hostAddress, bool readOnly)
    {
        if (sizeInBytes == 0)
        {
            throw new ArgumentException("A memory slot cannot be empty; use RemoveUserMemoryRegion to delete one.", nameof(sizeInBytes));
        }

        RequireAligned(guestAddress, nameof(guestAddress), "guest-physical address");
        RequireAligned(sizeInBytes, nameof(sizeInBytes), "size");
        RequireAligned((ulong)hostAddress, nameof(hostAddress), "host address");
        if (guestAddress + sizeInBytes < guestAddress)
        {
            throw new ArgumentException($"Slot {slot} at {Hex(guestAddress)} with size {Hex(sizeInBytes)} wraps around the address space.", nameof(sizeInBytes));
        }

        if (slot >= (uint)Capabilities.MaxMemorySlots)
        {
            throw new ArgumentOutOfRangeException(nameof(slot), slot, $"KVM offers {Capabilities.MaxMemorySlots} memory slots here.");
        }

        if (readOnly && !Capabilities.ReadOnlyMemory)
        {
            throw new NotSupportedException("The host's KVM has no KVM_CAP_READONLY_MEM: read-only guest memory (ROM) cannot be mapped as a slot.");
        }

        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            foreach (KvmMemorySlot other in _slots.Values)
            {
                if (other.Slot != slot && guestAddress < other.GuestAddress + other.SizeInBytes && other.GuestAddress < guestAddress + sizeInBytes)
                {
                    throw new ArgumentException(
                        $"Memory slot {slot} [{Hex(guestAddress)}-{Hex(guestAddress + sizeInBytes - 1)}] overlaps slot {other.Slot} [{Hex(other.GuestAddress)}-{Hex(other.GuestAddress + other.SizeInBytes - 1)}].",
                        nameof(guestAddress));
                }
            }

            var region = new kvm_userspace_memory_region
            {
                slot = slot,
                flags = readOnly ? KVM_MEM_READONLY : 0,
                guest_phys_addr = guestAddress,
                memory_size = sizeInBytes,
                userspace_addr = (ulong)hostAddress,
            };
            using var lease = new FdLease(_fd);
            if (Libc.Ioctl(lease.Fd, Ioctl.KVM_SET_USER_MEMORY_REGION, &region, out int error) < 0)
            {
                throw new KvmException("KVM_SET_USER_MEMORY_REGION", error, $"slot {slot} at {Hex(guestAddress)}, {Hex(sizeInBytes)} bytes");
            }

            _slots[slot] = new KvmMemorySlot(slot, guestAddress, sizeInBytes, hostAddress, readOnly);
        }
    }

    /// <summary>Deletes a slot (a region of size 0); the guest no longer sees that memory.</summary>
    internal void RemoveUserMemoryRegion(uint slot)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_slots.Remove(slot))
            {
                throw new ArgumentException($"Memory slot {slot} does not exist.", nameof(slot));
            }

            var region = new kvm_userspace_memory_region { slot = slot };
            using var lease = new FdLease(_fd);
            if (Libc.Ioctl(lease.Fd, Ioctl.KVM_SET_USER_MEMORY_REGION, &region, out int error) < 0)
            {
                throw new KvmException("KVM_SET_USER_MEMORY_REGION", error, $"deleting slot {slot}");
            }
        }
    }

    /// <summary>Places the three-page TSS area that Intel VMX needs for real mode without unrestricted guest.</summary>
    internal void SetTssAddress(uint guestAddress)
    {
        using var lease = new FdLease(_fd);
        if (Libc.Ioctl(lease.Fd, Ioctl.KVM_SET_TSS_ADDR, (nint)guestAddress, out int error) < 0)
        {
            throw new KvmException("KVM_SET_TSS_ADDR", error, Hex(guestAddress));
        }
    }

    /// <summary>Creates vCPU <paramref name="id"/> and maps its <c>kvm_run</c> structure.</summary>
    internal KvmVcpu CreateVcpu(int id)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            int vcpuFd;
            using (var lease = new FdLease(_fd))
            {
                vcpuFd = Libc.Ioctl(lease.Fd, Ioctl.KVM_CREATE_VCPU, id, out int error);
                if (vcpuFd < 0)
                {
                    throw new KvmException("KVM_CREATE_VCPU", error, $"vCPU {id}");
                }
            }

            var handle = new FileDescriptorHandle(vcpuFd);
            void* run = Libc.MapShared(vcpuFd, (nuint)VcpuMmapSize, out int mapError);
            if (run is null)
            {
                handle.Dispose();
                throw new KvmException("mmap", mapError, $"kvm_run of vCPU {id}");
            }

            var vcpu = new KvmVcpu(this, id, handle, new MappingHandle(run, (nuint)VcpuMmapSize));
            _vcpus.Add(vcpu);
            return vcpu;
        }
    }

    internal void Forget(KvmVcpu vcpu)
    {
        lock (_lock)
        {
            _vcpus.Remove(vcpu);
        }
    }

    /// <summary>Closes the VM and its vCPUs.</summary>
    /// <exception cref="InvalidOperationException">A vCPU is running: stop it (kick it and let Run return) first.</exception>
    public void Dispose()
    {
        KvmVcpu[] vcpus;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            foreach (KvmVcpu vcpu in _vcpus)
            {
                if (vcpu.IsRunning)
                {
                    throw new InvalidOperationException($"Cannot dispose the VM while vCPU {vcpu.Id} is running; kick it and wait for Run to return first.");
                }
            }

            _disposed = true;
            vcpus = [.. _vcpus];
            _vcpus.Clear();
            _slots.Clear();
        }

        foreach (KvmVcpu vcpu in vcpus)
        {
            vcpu.Dispose();
        }

        _fd.Dispose();
    }

    private static void RequireAligned(ulong value, string parameter, string what)
    {
        if ((value & (PageSize - 1)) != 0)
        {
            throw new ArgumentException($"The {what} {Hex(value)} is not aligned to the {PageSize}-byte page size KVM requires.", parameter);
        }
    }

    internal static string Hex(ulong value) => "0x" + value.ToString("X", CultureInfo.InvariantCulture);
}

/// <summary>A user memory slot as registered with KVM.</summary>
internal readonly record struct KvmMemorySlot(uint Slot, ulong GuestAddress, ulong SizeInBytes, nint HostAddress, bool ReadOnly);
