using System.Diagnostics;
using System.Text;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;

namespace Hypervisor.Accel.Whpx.Tests.Live;

/// <summary>Runs a firmware image on a machine with COM1 capture and isa-debug-exit, or on QEMU.</summary>
internal static class GuestHarness
{
    public sealed record Outcome(MachineRunResult Result, string Serial);

    public static Outcome RunOnWhpx(byte[] image, Action<VirtualMachineBuilder>? configure = null, TimeSpan? timeout = null) =>
        Run(new WhpxAccelerator(), image, configure, timeout);

    public static Outcome RunOnTcg(byte[] image, Action<VirtualMachineBuilder>? configure = null, TimeSpan? timeout = null) =>
        Run(new Hypervisor.Accel.Tcg.TcgAccelerator(), image, configure, timeout);

    private static Outcome Run(IAccelerator accelerator, byte[] image, Action<VirtualMachineBuilder>? configure, TimeSpan? timeout)
    {
        using var builder = new VirtualMachineBuilder();
        GuestMemoryLayout.AddRam(builder.Memory, 16 * 1024 * 1024);
        GuestMemoryLayout.AddFirmware(builder.Memory, image);
        var serial = new SerialCapture();
        builder.Ports.Register(TestGuests.SerialPort, 8, serial, "com1");
        builder.Ports.Register(TestGuests.DebugExitPort, 2, new DebugExit(builder.Control), "isa-debug-exit");
        configure?.Invoke(builder);
        var selector = new AcceleratorSelector([accelerator]);
        using VirtualMachine vm = builder.Build(selector, selector.Parse(accelerator.Name));
        MachineRunResult result = vm.Run(new MachineRunOptions(Timeout: timeout ?? TimeSpan.FromSeconds(20)));
        return new Outcome(result, serial.Text);
    }

    /// <summary>QEMU's output and exit status for the image, or null when QEMU is not installed.</summary>
    public static (string Serial, int ExitStatus)? RunOnQemu(byte[] image)
    {
        string? qemu = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, OperatingSystem.IsWindows() ? "qemu-system-x86_64.exe" : "qemu-system-x86_64"))
            .FirstOrDefault(File.Exists);
        if (qemu is null)
        {
            return null;
        }

        string file = Path.Combine(Path.GetTempPath(), $"whpx-guest-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(file, image);
        try
        {
            var psi = new ProcessStartInfo(qemu)
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (string arg in new[] { "-accel", "tcg", "-bios", file, "-nographic", "-m", "128", "-device", "isa-debug-exit", "-no-reboot" })
            {
                psi.ArgumentList.Add(arg);
            }

            using var process = Process.Start(psi)!;
            Task<string> stdout = process.StandardOutput.ReadToEndAsync();
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromSeconds(30)))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException("QEMU did not finish the guest within 30 s: " + stderr.Result);
            }

            return (stdout.Result, process.ExitCode);
        }
        finally
        {
            if (Environment.GetEnvironmentVariable("WHPX_KEEP_GUEST") is null) { File.Delete(file); }
        }
    }

    /// <summary>COM1 as far as these guests need it: bytes written to THR are kept; LSR says ready.</summary>
    private sealed class SerialCapture : IPortDevice
    {
        private readonly StringBuilder _text = new();

        public string Text
        {
            get
            {
                lock (_text)
                {
                    return _text.ToString();
                }
            }
        }

        public uint Read(ushort offset, int size) => offset == 5 ? 0x60u : 0u;

        public void Write(ushort offset, int size, uint value)
        {
            if (offset == 0)
            {
                lock (_text)
                {
                    _text.Append((char)(byte)value);
                }
            }
        }
    }

    /// <summary>isa-debug-exit: writing v stops the machine with status (v &lt;&lt; 1) | 1, as QEMU computes it.</summary>
    private sealed class DebugExit(IMachineControl control) : IPortDevice
    {
        public uint Read(ushort offset, int size) => 0;

        public void Write(ushort offset, int size, uint value) =>
            control.RequestStop(MachineStopReason.DebugExit, (int)((value << 1) | 1));
    }
}

/// <summary>
/// An interrupt controller output that, like a device raising its line, asserts one vector once the machine runs and
/// keeps notifying the vCPUs until the vector has been acknowledged (once).
/// </summary>
internal sealed class OneShotInterrupt(byte vector) : IInterruptSource, IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private int _acknowledged;
    private int _raised;

    public int Acknowledged => Volatile.Read(ref _acknowledged);

    public bool HasPendingInterrupt => Volatile.Read(ref _raised) != 0 && Acknowledged == 0;

    public int AcknowledgeInterrupt() => HasPendingInterrupt && Interlocked.Increment(ref _acknowledged) == 1 ? vector : -1;

    /// <summary>Raises the line after <paramref name="delay"/> and notifies every 10 ms until acknowledged.</summary>
    public void RaiseAfter(TimeSpan delay, IMachineControl control) => _ = Task.Run(async () =>
    {
        await Task.Delay(delay, _stop.Token).ConfigureAwait(false);
        Volatile.Write(ref _raised, 1);
        while (Acknowledged == 0 && !_stop.IsCancellationRequested)
        {
            control.NotifyInterruptPending();
            await Task.Delay(10, _stop.Token).ConfigureAwait(false);
        }
    });

    public void Dispose()
    {
        _stop.Cancel();
        _stop.Dispose();
    }
}

/// <summary>An MMIO device that records writes and answers reads with a fixed word.</summary>
internal sealed class RecordingMmio(ulong readValue) : IMmioDevice
{
    public List<(ulong Offset, int Size, ulong Value)> Writes { get; } = [];

    public ulong Read(ulong offset, int size) => readValue;

    public void Write(ulong offset, int size, ulong value) => Writes.Add((offset, size, value));
}
