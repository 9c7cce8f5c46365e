using System.Runtime.Versioning;
using Hypervisor.Accel.Kvm.Interop;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Cpu;
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Microsoft.Extensions.Logging;
using static Hypervisor.Accel.Kvm.Interop.KvmConstants;

namespace Hypervisor.Accel.Kvm;

/// <summary>
/// The kvm adapter's VM: one KVM VM whose memory slots mirror the machine's RAM and ROM regions (ROM read-only, so
/// that guest writes reach the MMIO path and are dropped there), and whose vCPUs answer I/O through the machine's buses.
/// </summary>
[SupportedOSPlatform("linux")]
internal sealed class KvmAcceleratorVm : IAcceleratorVm
{
    /// <summary>
    /// Where the three-page TSS area of <c>KVM_SET_TSS_ADDR</c> goes: just below the largest firmware image (16 MiB
    /// ending at 4 GiB), where the PC layout maps nothing.
    /// </summary>
    internal const uint TssAddress = 0xFEFF_D000;

    private readonly KvmSystem _system;
    private readonly KvmVm _vm;
    private readonly kvm_cpuid_entry2[] _cpuid;
    private readonly CpuidTable _cpuidTable;
    private readonly ILogger _logger;
    private bool _disposed;

    internal KvmAcceleratorVm(KvmAccelerator accelerator, VmCreationContext context, string path)
    {
        Accelerator = accelerator;
        Memory = context.Memory;
        Ports = context.Ports;
        Interrupts = context.Interrupts;
        Context = context;
        _logger = context.LoggerFactory.CreateLogger("Hypervisor.Accel.Kvm");
        _system = KvmSystem.Open(path);
        try
        {
            _vm = _system.CreateVm();
            if (_vm.CheckExtension(KVM_CAP_SET_TSS_ADDR) > 0)
            {
                // Needed by Intel VMX without unrestricted guest to run real mode; harmless elsewhere (AMD SVM).
                _vm.SetTssAddress(TssAddress);
            }

            MapMemory();
            _cpuid = _system.GetSupportedCpuid();
            _cpuidTable = KvmCpuid.Present(_cpuid, localApic: context.LocalInterruptControllers is not null);
            ulong components = KvmXsetbvCheck.Components(_cpuidTable);
            if (components != 0 && KvmXsetbvCheck.IsXsetbvLost(_system, _cpuidTable, components))
            {
                PinnedXcr0 = components;
                _logger.LogWarning(
                    "kvm: a guest's XSETBV does not reach KVM on this host (nested virtualization under an emulator " +
                    "that drops the XSETBV intercept); XCR0 is pinned to 0x{Xcr0:X}, the XSAVE components the CPU model offers",
                    components);
            }
        }
        catch
        {
            _vm?.Dispose();
            _system.Dispose();
            throw;
        }
    }

    public IAccelerator Accelerator { get; }

    internal IMemoryMap Memory { get; }

    internal PortIoBus Ports { get; }

    internal IInterruptSource? Interrupts { get; }

    internal VmCreationContext Context { get; }

    internal KvmVm Vm => _vm;

    internal ReadOnlySpan<kvm_cpuid_entry2> SupportedCpuid => _cpuid;

    /// <summary>
    /// The XCR0 every vCPU is given at reset, or null (XCR0 resets to 1 and follows the guest's XSETBV): set only
    /// where <see cref="KvmXsetbvCheck"/> found that a guest's XSETBV never reaches KVM.
    /// </summary>
    internal ulong? PinnedXcr0 { get; }

    /// <summary>The CPUID every vCPU of this VM presents (the core's CPU model limited to this host's KVM).</summary>
    internal CpuidTable Cpuid => _cpuidTable;

    public IVcpu CreateVcpu(int index)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        if (index >= _vm.Capabilities.MaxVcpus)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"KVM allows {_vm.Capabilities.MaxVcpus} vCPUs per VM here.");
        }

        return new KvmAcceleratorVcpu(this, index);
    }

    private void MapMemory()
    {
        uint slot = 0;
        foreach (MemoryRegion region in Memory.Regions)
        {
            if (region.Kind == MemoryRegionKind.Mmio)
            {
                continue; // no slot: accesses exit to user space as KVM_EXIT_MMIO
            }

            bool readOnly = region.Kind == MemoryRegionKind.Rom;
            if (readOnly && !_vm.Capabilities.ReadOnlyMemory)
            {
                _logger.LogWarning("KVM has no KVM_CAP_READONLY_MEM: ROM region {Region} is mapped writable", region);
                readOnly = false;
            }

            try
            {
                _vm.SetUserMemoryRegion(slot, region.Start.Value, region.SizeInBytes, region.HostPointer, readOnly);
            }
            catch (ArgumentException e)
            {
                throw new AcceleratorException($"kvm cannot map memory region {region}: {e.Message}", e);
            }

            _logger.LogDebug("kvm slot {Slot}: {Region}{ReadOnly}", slot, region, readOnly ? " read-only" : "");
            slot++;
        }
    }

    /// <summary>Closes the VM and its vCPUs.</summary>
    /// <exception cref="InvalidOperationException">A vCPU is still running.</exception>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _vm.Dispose(); // throws while a vCPU runs, leaving everything intact
        _disposed = true;
        _system.Dispose();
    }
}
