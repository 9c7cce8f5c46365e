using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using Hypervisor.Accel.Kvm.Interop;
using static Hypervisor.Accel.Kvm.Interop.KvmConstants;

namespace Hypervisor.Accel.Kvm;

/// <summary>
/// The KVM subsystem: an open <c>/dev/kvm</c>. Answers system ioctls (API version, extensions, supported CPUID)
/// and creates VMs. Owns its file descriptor.
/// </summary>
[SupportedOSPlatform("linux")]
internal sealed unsafe class KvmSystem : IDisposable
{
    internal const string DefaultPath = "/dev/kvm";

    private const int E2BIG = 7;

    private readonly FileDescriptorHandle _fd;

    private KvmSystem(FileDescriptorHandle fd, string path)
    {
        _fd = fd;
        Path = path;
    }

    internal string Path { get; }

    internal FileDescriptorHandle Handle => _fd;

    /// <summary>Opens the KVM device read-write.</summary>
    /// <exception cref="KvmException">The device cannot be opened.</exception>
    internal static KvmSystem Open(string path = DefaultPath)
    {
        int fd = Libc.Open(path, out int error);
        if (fd < 0)
        {
            throw new KvmException("open", error, path);
        }

        return new KvmSystem(new FileDescriptorHandle(fd), path);
    }

    internal static KvmProbeResult ProbeLinux(string path)
    {
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            return Unavailable($"the kvm backend runs x86-64 guests on x86-64 hosts only; this process is {RuntimeInformation.ProcessArchitecture}");
        }

        if (!File.Exists(path))
        {
            return Unavailable($"{path} does not exist: load the kvm_intel or kvm_amd module and enable virtualization (VT-x/AMD-V) in the firmware");
        }

        int fd = Libc.Open(path, out int error);
        if (fd < 0)
        {
            if (error is 13 or 1) // EACCES, EPERM
            {
                string user = Environment.UserName;
                return Unavailable($"permission denied opening {path} read-write: add the user to group 'kvm' (sudo usermod -aG kvm {user}) and log in again");
            }

            if (error is 6 or 19) // ENXIO, ENODEV
            {
                return Unavailable($"{path} exists but has no KVM behind it ({Libc.Describe(error)}): is hardware virtualization enabled and the kvm_intel/kvm_amd module loaded?");
            }

            return Unavailable($"cannot open {path}: {Libc.Describe(error)}");
        }

        using var system = new KvmSystem(new FileDescriptorHandle(fd), path);
        int version = Libc.Ioctl(fd, Ioctl.KVM_GET_API_VERSION, 0, out error);
        if (version < 0)
        {
            return Unavailable($"{path} is not a KVM device: KVM_GET_API_VERSION failed with {Libc.Describe(error)}");
        }

        if (version != KVM_API_VERSION)
        {
            return Unavailable($"{path} reports KVM API version {version}; only version {KVM_API_VERSION} is supported");
        }

        foreach ((int cap, string name) in RequiredCapabilities)
        {
            if (system.CheckExtension(cap) <= 0)
            {
                return Unavailable($"the host's KVM lacks {name}, which this backend requires");
            }
        }

        KvmCapabilities capabilities = system.GetCapabilities();
        return new KvmProbeResult(true, $"{path}: KVM API {version}, up to {capabilities.MaxVcpus} vCPUs, {capabilities.MaxMemorySlots} memory slots", capabilities);
    }

    /// <summary>The extensions the backend cannot work without.</summary>
    internal static readonly (int Capability, string Name)[] RequiredCapabilities =
    [
        (KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"),
        (KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"),
        (KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"),
    ];

    internal static KvmProbeResult Unavailable(string reason) => new(false, reason, null);

    internal KvmCapabilities GetCapabilities()
    {
        int recommended = CheckExtension(KVM_CAP_NR_VCPUS);
        int max = CheckExtension(KVM_CAP_MAX_VCPUS);
        // Documentation/virt/kvm/api.rst 4.4: without KVM_CAP_NR_VCPUS assume 4; without KVM_CAP_MAX_VCPUS use NR_VCPUS.
        if (recommended <= 0)
        {
            recommended = 4;
        }

        if (max <= 0)
        {
            max = recommended;
        }

        int slots = CheckExtension(KVM_CAP_NR_MEMSLOTS);
        return new KvmCapabilities(
            ApiVersion: GetApiVersion(),
            MaxVcpus: max,
            RecommendedVcpus: recommended,
            MaxMemorySlots: slots > 0 ? slots : 32,
            ReadOnlyMemory: CheckExtension(KVM_CAP_READONLY_MEM) > 0,
            ImmediateExit: CheckExtension(KVM_CAP_IMMEDIATE_EXIT) > 0,
            InKernelIrqChip: CheckExtension(KVM_CAP_IRQCHIP) > 0,
            SetTssAddress: CheckExtension(KVM_CAP_SET_TSS_ADDR) > 0,
            InternalErrorData: CheckExtension(KVM_CAP_INTERNAL_ERROR_DATA) > 0,
            VcpuMmapSizeInBytes: GetVcpuMmapSize());
    }

    internal int GetApiVersion() => IoctlChecked(Ioctl.KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION");

    /// <summary>Returns the extension's value (0 when absent).</summary>
    internal int CheckExtension(int capability)
    {
        using var lease = new FdLease(_fd);
        int result = Libc.Ioctl(lease.Fd, Ioctl.KVM_CHECK_EXTENSION, capability, out _);
        return result < 0 ? 0 : result;
    }

    internal int GetVcpuMmapSize() => IoctlChecked(Ioctl.KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");

    /// <summary>The CPUID leaves KVM can virtualize on this host (<c>KVM_GET_SUPPORTED_CPUID</c>).</summary>
    internal kvm_cpuid_entry2[] GetSupportedCpuid()
    {
        for (int capacity = 64; capacity <= 4096; capacity *= 2)
        {
            int bytes = sizeof(kvm_cpuid2) + (capacity * sizeof(kvm_cpuid_entry2));
            byte* buffer = (byte*)NativeMemory.AllocZeroed((nuint)bytes);
            try
            {
                ((kvm_cpuid2*)buffer)->nent = (uint)capacity;
                int result;
                int error;
                using (var lease = new FdLease(_fd))
                {
                    result = Libc.Ioctl(lease.Fd, Ioctl.KVM_GET_SUPPORTED_CPUID, buffer, out error);
                }

                if (result < 0)
                {
                    if (error == E2BIG)
                    {
                        continue;
                    }

                    throw new KvmException("KVM_GET_SUPPORTED_CPUID", error);
                }

                int count = (int)((kvm_cpuid2*)buffer)->nent;
                return new ReadOnlySpan<kvm_cpuid_entry2>(buffer + sizeof(kvm_cpuid2), count).ToArray();
            }
            finally
            {
                NativeMemory.Free(buffer);
            }
        }

        throw new KvmException("KVM_GET_SUPPORTED_CPUID", E2BIG, "more than 4096 entries");
    }

    /// <summary>Creates a VM (<c>KVM_CREATE_VM</c> with the default machine type).</summary>
    internal KvmVm CreateVm()
    {
        int vmFd = IoctlChecked(Ioctl.KVM_CREATE_VM, 0, "KVM_CREATE_VM");
        return new KvmVm(this, new FileDescriptorHandle(vmFd));
    }

    private int IoctlChecked(uint request, nint argument, string name)
    {
        using var lease = new FdLease(_fd);
        int result = Libc.Ioctl(lease.Fd, request, argument, out int error);
        if (result < 0)
        {
            throw new KvmException(name, error);
        }

        return result;
    }

    public void Dispose() => _fd.Dispose();
}
