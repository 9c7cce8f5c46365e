using System.Runtime.Versioning;
using Hypervisor.Accel.Whpx.Interop;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Accel.Whpx;

/// <summary>A whpx virtual machine: one partition with every RAM and ROM region of the memory map mapped into it.</summary>
[SupportedOSPlatform("windows")]
internal sealed class WhpxVm : IAcceleratorVm
{
    private readonly VmCreationContext _context;
    private readonly WhpPartition _partition;
    private readonly List<WhpxVcpu> _vcpus = [];
    private readonly ILogger _logger;
    private readonly Hypervisor.Core.Cpu.CpuidTable _cpuid;
    private bool _disposed;

    public WhpxVm(WhpxAccelerator accelerator, VmCreationContext context, uint processorCount)
    {
        Accelerator = accelerator;
        _context = context;
        _logger = context.LoggerFactory.CreateLogger<WhpxVm>();
        _cpuid = WhpxCpuid.Table(localApic: context.LocalInterruptControllers is not null);
        _partition = WhpPartition.Create(processorCount, WhpxCpuid.ExitLeaves(_cpuid.Model));
        if (!_partition.CpuidExits)
        {
            _logger.LogWarning("whpx: this Windows build offers no CPUID exits; guests see the platform's CPUID, not the CPU model");
        }

        try
        {
            foreach (MemoryRegion region in context.Memory.Regions)
            {
                if (region.Kind == MemoryRegionKind.Mmio)
                {
                    continue; // unmapped: accesses exit and are emulated through the map's devices
                }

                // ROM is mapped read+execute: guest writes exit and the emulator drops them (and the map counts them).
                WHV_MAP_GPA_RANGE_FLAGS flags = region.Kind == MemoryRegionKind.Ram
                    ? WHV_MAP_GPA_RANGE_FLAGS.WHvMapGpaRangeFlagRead | WHV_MAP_GPA_RANGE_FLAGS.WHvMapGpaRangeFlagWrite | WHV_MAP_GPA_RANGE_FLAGS.WHvMapGpaRangeFlagExecute
                    : WHV_MAP_GPA_RANGE_FLAGS.WHvMapGpaRangeFlagRead | WHV_MAP_GPA_RANGE_FLAGS.WHvMapGpaRangeFlagExecute;
                _partition.MapGpaRange(region.HostPointer, region.Start.Value, region.SizeInBytes, flags);
                _logger.LogDebug("whpx mapped {Region} ({Flags})", region, flags);
            }
        }
        catch
        {
            _partition.Dispose();
            throw;
        }
    }

    public IAccelerator Accelerator { get; }

    public IVcpu CreateVcpu(int index)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (index < 0 || (uint)index >= _partition.ProcessorCount)
        {
            throw new AcceleratorException(
                $"whpx partitions are created for {_partition.ProcessorCount} virtual processors (the host's processor count); vCPU {index} is out of range.");
        }

        if (index > 0)
        {
            // Application processors must wait for INIT and a start-up IPI from our local APIC, as the tcg and kvm
            // adapters do; this adapter has no such wait (nor NMI from the local APIC), so a second vCPU would run the
            // firmware from the reset vector beside the first. Refuse rather than run that.
            throw new AcceleratorException(
                "whpx runs one vCPU for now: its adapter does not yet hold application processors until INIT/SIPI; use one vCPU, or tcg or kvm for SMP.");
        }

        var vcpu = new WhpxVcpu(_partition, (uint)index, _context, _cpuid);
        _vcpus.Add(vcpu);
        return vcpu;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (WhpxVcpu vcpu in _vcpus)
        {
            vcpu.Dispose();
        }

        _partition.Dispose(); // deleting the partition removes its GPA mappings
    }
}
