using System.Diagnostics;
using System.Text;

namespace Hypervisor.Benchmarks.Running;

/// <summary>One run of a firmware image under qemu-system-x86_64.</summary>
/// <param name="Wall">From process start to exit (includes QEMU's own start-up).</param>
/// <param name="ExitCode">QEMU's exit status (isa-debug-exit: (value &lt;&lt; 1) | 1), or -1 when it was killed on timeout.</param>
/// <param name="Serial">COM1 output (QEMU's stdout).</param>
/// <param name="Stderr">What QEMU said on stderr.</param>
public sealed record QemuRun(TimeSpan Wall, int ExitCode, string Serial, string Stderr);

/// <summary>Runs firmware images as <c>qemu-system-x86_64 -bios IMAGE</c> with COM1 on stdout and isa-debug-exit.</summary>
public static class QemuRunner
{
    /// <summary>The binary looked up on PATH.</summary>
    public const string Binary = "qemu-system-x86_64";

    /// <summary>The full path of QEMU, or null where it is not installed.</summary>
    public static string? FindBinary() =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, Binary)).FirstOrDefault(File.Exists);

    /// <summary>The first line of <c>qemu-system-x86_64 --version</c>, or null.</summary>
    public static string? Version()
    {
        string? qemu = FindBinary();
        if (qemu is null)
        {
            return null;
        }

        var psi = new ProcessStartInfo(qemu, "--version") { RedirectStandardOutput = true, UseShellExecute = false };
        using Process p = Process.Start(psi)!;
        string text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return text.Split('\n')[0].Trim();
    }

    /// <summary>The exact command line used, for the README.</summary>
    public static string CommandLine(string accel) =>
        $"{Binary} -accel {accel} -bios IMAGE -display none -serial stdio -monitor none -device isa-debug-exit -no-reboot -m 128";

    /// <summary>Runs <paramref name="image"/> with <c>-accel <paramref name="accel"/></c>.</summary>
    public static QemuRun Run(string qemu, string accel, byte[] image, TimeSpan timeout)
    {
        string path = Path.Combine(Path.GetTempPath(), $"hv-bench-{Environment.ProcessId}-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(path, image);
        try
        {
            var psi = new ProcessStartInfo(qemu)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
                UseShellExecute = false,
            };
            foreach (string a in new[]
            {
                "-accel", accel, "-bios", path, "-display", "none", "-serial", "stdio", "-monitor", "none",
                "-device", "isa-debug-exit", "-no-reboot", "-m", "128",
            })
            {
                psi.ArgumentList.Add(a);
            }

            long start = Stopwatch.GetTimestamp();
            using Process p = Process.Start(psi)!;
            p.StandardInput.Close();
            var stdout = new MemoryStream();
            Task copy = p.StandardOutput.BaseStream.CopyToAsync(stdout);
            Task<string> err = p.StandardError.ReadToEndAsync();
            bool exited = p.WaitForExit(timeout);
            if (!exited)
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit();
            }

            TimeSpan wall = Stopwatch.GetElapsedTime(start);
            copy.Wait(TimeSpan.FromSeconds(10));
            err.Wait(TimeSpan.FromSeconds(5));
            return new QemuRun(wall, exited ? p.ExitCode : -1, Encoding.Latin1.GetString(stdout.ToArray()),
                err.IsCompletedSuccessfully ? err.Result : string.Empty);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
