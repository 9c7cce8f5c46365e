using Hypervisor.Accel.Tcg.Interpreter;
using Hypervisor.Accel.Tcg.Mmu;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Machine;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Accel.Tcg;

/// <summary>
/// The tcg accelerator: a software x86-64 CPU that runs on every host. Guest code is decoded with Iced into cached
/// blocks and interpreted; memory goes through a software MMU over the machine's memory map.
/// </summary>
/// <remarks>
/// Options: <c>jit=on|off</c>. The JIT does not exist yet: both values run the interpreter, and <c>jit=on</c> says so
/// in the log.
/// </remarks>
public sealed class TcgAccelerator : IAccelerator
{
    /// <summary>The name used in accelerator specifications.</summary>
    public const string AcceleratorName = "tcg";

    private static readonly IReadOnlyDictionary<string, string> s_options = new Dictionary<string, string>
    {
        ["jit"] = "on|off: compile hot blocks to IL (not implemented yet; both values run the interpreter)",
    };

    /// <inheritdoc />
    public string Name => AcceleratorName;

    /// <inheritdoc />
    public IReadOnlyDictionary<string, string> SupportedOptions => s_options;

    /// <inheritdoc />
    public AcceleratorProbeResult Probe() => AcceleratorProbeResult.Available(
        "software x86-64 CPU (interpreter)",
        new AcceleratorCapabilities(
            MaxVcpus: 64,
            CountsInstructions: true,
            HardwareAccelerated: false,
            Details: new Dictionary<string, string>
            {
                ["engine"] = "interpreter",
                ["jit"] = "not implemented (jit=on runs the interpreter)",
                ["cpu"] = "x86-64 integer and system instructions; no x87/SSE yet",
            }));

    /// <inheritdoc />
    public IAcceleratorVm CreateVm(VmCreationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        bool jit = context.Options.GetSwitch("jit", false);
        ILogger logger = context.LoggerFactory.CreateLogger<TcgAccelerator>();
        if (jit)
        {
            logger.LogWarning("tcg: jit=on was asked for, but the JIT is not implemented yet; running the interpreter");
        }

        return new TcgVm(this, context);
    }
}

/// <summary>A tcg virtual machine: the shared physical-memory view (with code-page tracking) and the vCPUs.</summary>
internal sealed class TcgVm : IAcceleratorVm
{
    private readonly VmCreationContext _context;
    private readonly PhysicalMemory _physical;
    private readonly ILogger _logger;
    private readonly List<TcgCpu> _vcpus = [];

    public TcgVm(TcgAccelerator accelerator, VmCreationContext context)
    {
        Accelerator = accelerator;
        _context = context;
        _physical = new PhysicalMemory(context.Memory);
        _logger = context.LoggerFactory.CreateLogger<TcgVm>();
    }

    public IAccelerator Accelerator { get; }

    public IVcpu CreateVcpu(int index)
    {
        var cpu = new TcgCpu(index, _physical, _context.Ports, _context.InterruptSourceFor(index));
        _vcpus.Add(cpu);
        return cpu;
    }

    public void Dispose()
    {
        foreach (TcgCpu c in _vcpus)
        {
            // Instructions the guest used that tcg does not implement (each raised #UD in the guest).
            IReadOnlyDictionary<Iced.Intel.Mnemonic, long> missing = c.UnimplementedCounts;
            if (missing.Count > 0)
            {
                _logger.LogInformation("tcg vCPU {Index}: unimplemented instructions raised #UD: {Counts}", c.Index,
                    string.Join(", ", missing.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} x{kv.Value}")));
            }

            c.Dispose();
        }

        _vcpus.Clear();
        _physical.Dispose();
    }
}
