using Hypervisor.Accel.Tcg.Interpreter;
using Hypervisor.Accel.Tcg.Jit;
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
/// Options: <c>jit=on|off</c> (translate hot code to IL, see <c>src/Accel.Tcg/Jit</c>; on by default, see
/// <c>JitDefault</c>), <c>jit-threshold=N</c> (guest instructions a block retires in the interpreter before it is
/// translated, default 200000), <c>jit-cache-mb=M</c> (bound of the translation cache, default 64) and
/// <c>jit-background=on|off</c> (translate on a background thread, default on).
/// </remarks>
public sealed class TcgAccelerator : IAccelerator
{
    /// <summary>The name used in accelerator specifications.</summary>
    public const string AcceleratorName = "tcg";

    /// <summary>
    /// Whether <c>jit</c> is on when the option is not given: on (tiered: interpret first, translate what is hot). With
    /// the tiering of session 5 (untranslated blocks run as fused micro-ops and are looked up once per batch of
    /// executions, counts that decay, a cost model that declines regions not worth compiling) a Linux boot costs no
    /// more process CPU and wall time than the interpreter alone, and every compute row of the quick benchmark is
    /// faster (figures in src/Accel.Tcg/Jit/README.md, "Tiering"). <c>jit=off</c> forces the interpreter.
    /// </summary>
    private const bool JitDefault = true;

    private static readonly IReadOnlyDictionary<string, string> s_options = new Dictionary<string, string>
    {
        ["jit"] = "on|off: compile hot blocks to IL (DynamicMethod; default on, tiered); off runs the interpreter alone",
        ["jit-threshold"] = "guest instructions a block retires in the interpreter before it is translated (default 200000; 0 translates every block at once)",
        ["jit-cache-mb"] = "bound of the translation cache in MiB, oldest translations are evicted first (default 64)",
        ["jit-background"] = "on|off: translate on a background thread while the vCPU keeps interpreting (default on)",
    };

    /// <inheritdoc />
    public string Name => AcceleratorName;

    /// <inheritdoc />
    public IReadOnlyDictionary<string, string> SupportedOptions => s_options;

    /// <inheritdoc />
    public AcceleratorProbeResult Probe() => AcceleratorProbeResult.Available(
        JitOptions.Supported ? "software x86-64 CPU (interpreter + IL JIT)" : "software x86-64 CPU (interpreter)",
        new AcceleratorCapabilities(
            MaxVcpus: 64,
            CountsInstructions: true,
            HardwareAccelerated: false,
            Details: new Dictionary<string, string>
            {
                ["engine"] = JitOptions.Supported ? "interpreter + IL JIT" : "interpreter",
                ["jit"] = JitOptions.Supported
                    ? "on by default (tiered: hot blocks become DynamicMethods; integer core native, the rest calls the interpreter); jit=off for the interpreter alone"
                    : "not implemented on this runtime (no dynamic code): jit=on runs the interpreter",
                ["cpu"] = "x86-64 integer and system instructions; no x87/SSE yet",
            }));

    /// <inheritdoc />
    public IAcceleratorVm CreateVm(VmCreationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        JitOptions? jit = JitOptions.From(context.Options, JitDefault);
        return new TcgVm(this, context, jit);
    }
}

/// <summary>A tcg virtual machine: the shared physical-memory view (with code-page tracking) and the vCPUs.</summary>
internal sealed class TcgVm : IAcceleratorVm
{
    private readonly VmCreationContext _context;
    private readonly PhysicalMemory _physical;
    private readonly ILogger _logger;
    private readonly List<TcgCpu> _vcpus = [];

    private readonly JitOptions? _jit;

    public TcgVm(TcgAccelerator accelerator, VmCreationContext context, JitOptions? jit)
    {
        _jit = jit;
        Accelerator = accelerator;
        _context = context;
        _physical = new PhysicalMemory(context.Memory);
        _logger = context.LoggerFactory.CreateLogger<TcgVm>();
    }

    public IAccelerator Accelerator { get; }

    public IVcpu CreateVcpu(int index)
    {
        var cpu = new TcgCpu(index, _physical, _context.Ports, _context.InterruptSourceFor(index))
        {
            FpuErrorLine = _context.FpuErrorLine,
        };
        if (_jit is not null)
        {
            cpu.Jit = new JitEngine(_jit);
        }

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
