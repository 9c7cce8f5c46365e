using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Hypervisor.Core;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Hosting;
using Hypervisor.Core.Machine;
using Hypervisor.Devices;
using Hypervisor.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Cli;

/// <summary>The <c>hv</c> command line: <c>hv probe</c> and <c>hv run</c>.</summary>
internal static class HvCommand
{
    public static RootCommand Create()
    {
        var root = new RootCommand("hv: run x86 virtual machines on tcg (software), kvm (Linux) or whpx (Windows).");
        root.Subcommands.Add(CreateProbe());
        root.Subcommands.Add(CreateRun());
        return root;
    }

    private static Command CreateProbe()
    {
        var command = new Command("probe", "List the accelerators, whether each can run here, and why not.");
        command.SetAction(_ =>
        {
            using ServiceProvider services = BuildServices("auto", 1, verbose: false);
            var selector = services.GetRequiredService<AcceleratorSelector>();
            Console.Out.WriteLine($"{"accelerator",-12} {"available",-10} reason");
            foreach ((IAccelerator accelerator, AcceleratorProbeResult result) in selector.ProbeAll())
            {
                Console.Out.WriteLine($"{accelerator.Name,-12} {(result.IsAvailable ? "yes" : "no"),-10} {result.Reason}");
            }

            return 0;
        });
        return command;
    }

    private static Command CreateRun()
    {
        var accel = new Option<string>("--accel")
        {
            Description = "Accelerator: auto (kvm, whpx, then tcg), a name, or an ordered list such as kvm:tcg; options as tcg,jit=off.",
            DefaultValueFactory = _ => "auto",
        };
        var memory = new Option<string>("--memory", "-m")
        {
            Description = "Guest RAM as QEMU's -m: MiB, or a number with K, M or G.",
            DefaultValueFactory = _ => "128M",
        };
        var bios = new Option<FileInfo?>("--bios")
        {
            Description = "A raw firmware image (64 KiB to 16 MiB), mapped as qemu-system-x86_64 -bios does. Without it, the built-in demo guest runs.",
        };
        var kernel = new Option<FileInfo?>("--kernel")
        {
            Description = "A Linux bzImage to boot directly, as qemu-system-x86_64 -kernel (64-bit boot protocol, no firmware; powers off through ACPI).",
        };
        var initrd = new Option<FileInfo?>("--initrd")
        {
            Description = "An initramfs for --kernel (newc cpio, optionally compressed), as qemu-system-x86_64 -initrd.",
        };
        var append = new Option<string?>("--append")
        {
            Description = "The kernel command line for --kernel, as qemu-system-x86_64 -append (for example \"console=ttyS0\").",
        };
        var smp = new Option<int>("--smp")
        {
            Description = "vCPUs, as qemu-system-x86_64 -smp N (1-255; each runs on its own host thread; the guest starts the others with INIT/SIPI).",
            DefaultValueFactory = _ => 1,
        };
        var timeout = new Option<double?>("--timeout")
        {
            Description = $"Stop the guest after this many seconds (exit status {MachineRunResult.TimeoutExitStatus}).",
        };
        var debugcon = new Option<string?>("--debugcon")
        {
            Description = "Write what the guest sends to the debugcon ports (0x402, 0xE9) to this file ('-' for stderr).",
        };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log what the library does to stderr." };
        var command = new Command("run", "Run a guest with COM1 on stdin/stdout. Exit status: the guest's isa-debug-exit status, 0 for power-off or reset, "
            + $"{MachineRunResult.ShutdownExitStatus} triple fault, {MachineRunResult.HaltedExitStatus} HLT with interrupts off, "
            + $"{MachineRunResult.GuestErrorExitStatus} guest error, {MachineRunResult.TimeoutExitStatus} timeout, {MachineRunResult.CancelledExitStatus} Ctrl+C, "
            + $"{ExitCodes.UsageError} usage error, {ExitCodes.ImageError} bad image, {ExitCodes.AcceleratorUnavailable} no accelerator, {ExitCodes.InternalError} internal error.")
        {
            accel, memory, smp, bios, kernel, initrd, append, timeout, debugcon, verbose,
        };
        command.SetAction(parse => Run(new RunArguments(
            parse.GetValue(accel) ?? "auto",
            parse.GetValue(memory) ?? "128M",
            parse.GetValue(smp),
            parse.GetValue(bios),
            parse.GetValue(kernel),
            parse.GetValue(initrd),
            parse.GetValue(append),
            parse.GetValue(timeout),
            parse.GetValue(debugcon),
            parse.GetValue(verbose))));
        return command;
    }

    private sealed record RunArguments(string Accelerator, string Memory, int Vcpus, FileInfo? Bios, FileInfo? Kernel, FileInfo? Initrd,
        string? Append, double? TimeoutSeconds, string? Debugcon, bool Verbose);

    private static int Run(RunArguments args)
    {
        try
        {
            return RunCore(args);
        }
        catch (HypervisorConfigurationException e)
        {
            return Fail(e.Message, ExitCodes.UsageError);
        }
        catch (GuestImageException e)
        {
            return Fail(e.Message, ExitCodes.ImageError);
        }
        catch (AcceleratorUnavailableException e)
        {
            Console.Error.WriteLine($"hv: no accelerator in '{e.Specification}' can run here:");
            foreach (AcceleratorAttempt attempt in e.Attempts)
            {
                Console.Error.WriteLine($"hv:   {attempt.Name}: {attempt.Reason}");
            }

            return ExitCodes.AcceleratorUnavailable;
        }
        catch (HypervisorException e)
        {
            return Fail(e.Message, ExitCodes.InternalError);
        }
    }

    private static int RunCore(RunArguments args)
    {
        if (args.TimeoutSeconds is { } t && (t <= 0 || double.IsNaN(t) || double.IsInfinity(t)))
        {
            return Fail($"--timeout must be a positive number of seconds, not {t.ToString(CultureInfo.InvariantCulture)}.", ExitCodes.UsageError);
        }

        if (args.Bios is not null && args.Kernel is not null)
        {
            return Fail("--bios and --kernel exclude each other: a kernel is booted without firmware.", ExitCodes.UsageError);
        }

        if (args.Kernel is null && (args.Initrd is not null || args.Append is not null))
        {
            return Fail("--initrd and --append need --kernel.", ExitCodes.UsageError);
        }

        byte[]? firmware = null, kernel = null, initrd = null;
        try
        {
            firmware = ReadImage(args.Bios, "firmware image");
            kernel = ReadImage(args.Kernel, "kernel");
            initrd = ReadImage(args.Initrd, "initramfs");
        }
        catch (GuestImageException e)
        {
            return Fail(e.Message, ExitCodes.ImageError);
        }

        using Stream stdout = Console.OpenStandardOutput();
        using Stream? debugconFile = OpenDebugcon(args.Debugcon);
        using ServiceProvider services = BuildServices(args.Accelerator, args.Vcpus, args.Verbose);
        var factory = services.GetRequiredService<IVirtualMachineFactory>();
        using VirtualMachine machine = factory.Create(new MachineRequest
        {
            Firmware = firmware,
            Kernel = kernel,
            Initrd = initrd,
            KernelCommandLine = args.Append,
            Accelerator = args.Accelerator,
            Memory = args.Memory,
            SerialOutput = stdout,
            DebugconOutput = debugconFile,
        });

        ReportSelection(machine.Selection);
        PcDevices devices = machine.GetDevice<PcDevices>()!;
        using var cancellation = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true; // stop the guest cleanly instead of killing the process
            cancellation.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        using var input = new ConsoleInputPump(devices.Com1, cancellation.Token);
        input.Start();
        MachineRunResult result;
        try
        {
            TimeSpan? timeout = args.TimeoutSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : null;
            result = machine.Run(new MachineRunOptions(timeout), cancellation.Token);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }

        stdout.Flush();
        string instructions = result.Instructions >= 0 ? result.Instructions.ToString(CultureInfo.InvariantCulture) : "n/a";
        string ips = result.Instructions >= 0 && result.Elapsed.TotalSeconds > 0
            ? $" ({result.Instructions / result.Elapsed.TotalSeconds / 1e6:0.0} M/s)"
            : string.Empty;
        Console.Error.WriteLine(
            $"hv: {Describe(result)}; accelerator {machine.AcceleratorName}, {instructions} instructions{ips}, {result.Exits} exits, {result.Elapsed.TotalSeconds:0.000} s; exit status {result.ExitStatus}");
        return result.ExitStatus;
    }

    private static string Describe(MachineRunResult result) => result.Reason switch
    {
        MachineStopReason.DebugExit => "guest wrote to isa-debug-exit",
        MachineStopReason.PowerOff => "guest powered off",
        MachineStopReason.Reset => "guest reset the machine",
        MachineStopReason.Shutdown => "triple fault: " + result.Detail,
        MachineStopReason.Halted => result.Detail ?? "halted",
        MachineStopReason.Cancelled => "cancelled",
        MachineStopReason.Timeout => "timeout: " + result.Detail,
        MachineStopReason.InstructionLimit => result.Detail ?? "instruction budget exhausted",
        _ => $"{result.Reason}: {result.Detail}",
    };

    private static void ReportSelection(AcceleratorSelection selection)
    {
        foreach (AcceleratorAttempt attempt in selection.Attempts)
        {
            Console.Error.WriteLine(attempt.Outcome == AcceleratorAttemptOutcome.Chosen
                ? $"hv: using {attempt.Name}{(selection.Options.Values.Count > 0 ? "," + selection.Options : string.Empty)}: {attempt.Reason}"
                : $"hv: skipped {attempt.Name}: {attempt.Reason}");
        }
    }

    private static byte[]? ReadImage(FileInfo? file, string what)
    {
        if (file is null)
        {
            return null;
        }

        try
        {
            return File.ReadAllBytes(file.FullName);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new GuestImageException($"cannot read {what} '{file}': {e.Message}");
        }
    }

    private static Stream? OpenDebugcon(string? path)
    {
        if (path is null)
        {
            return null;
        }

        if (path == "-")
        {
            return Console.OpenStandardError();
        }

        try
        {
            return File.Create(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HypervisorConfigurationException($"cannot create debugcon file '{path}': {e.Message}");
        }
    }

    private static ServiceProvider BuildServices(string accelerator, int vcpus, bool verbose)
    {
        var services = new ServiceCollection();
        services.AddLogging(logging =>
        {
            logging.SetMinimumLevel(verbose ? LogLevel.Debug : LogLevel.Warning);
            logging.AddSimpleConsole(o => o.SingleLine = true);
            logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        });
        services.AddHypervisor(o =>
        {
            o.Accelerator = accelerator;
            o.Vcpus = vcpus;
        }).AddAllAccelerators();
        return services.BuildServiceProvider();
    }

    private static int Fail(string message, int code)
    {
        Console.Error.WriteLine($"hv: {message}");
        return code;
    }
}
