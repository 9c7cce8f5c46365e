using System.Diagnostics;

namespace Hypervisor.Tests;

/// <summary>Runs firmware images under qemu-system-x86_64 (the reference of guest-contract.md).</summary>
internal static class Qemu
{
    public const string Binary = "qemu-system-x86_64";

    public static string? FindBinary()
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':'))
        {
            string candidate = Path.Combine(dir, Binary);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Skips the calling test (with the reason) where QEMU is not installed.</summary>
    public static string RequireBinary() =>
        FindBinary() ?? throw new IgnoreException($"{Binary} is not installed (Debian package qemu-system-x86; .ci/run installs it).");

    /// <summary>
    /// Runs <paramref name="image"/> as QEMU's -bios with COM1 on stdout, isa-debug-exit and -no-reboot; returns what
    /// the guest printed on COM1 and QEMU's exit status.
    /// </summary>
    public static (byte[] Serial, int ExitCode) RunFirmware(byte[] image, TimeSpan timeout, string machine = "pc", string memory = "128") =>
        RunFirmware(image, timeout, null, ["-M", machine, "-display", "none", "-serial", "stdio", "-monitor", "none", "-m", memory]);

    /// <summary>
    /// Runs <paramref name="image"/> as QEMU's -bios with <paramref name="arguments"/> (which must route COM1 to stdio),
    /// isa-debug-exit and -no-reboot. Stops early once the serial output contains <paramref name="stopMarker"/>.
    /// </summary>
    public static (byte[] Serial, int ExitCode) RunFirmware(byte[] image, TimeSpan timeout, string? stopMarker, IEnumerable<string> arguments)
    {
        string qemu = RequireBinary();
        string path = Path.Combine(Path.GetTempPath(), $"hv-qemu-{Guid.NewGuid():N}.bin");
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
            foreach (string a in arguments.Concat(["-accel", "tcg", "-bios", path, "-device", "isa-debug-exit", "-no-reboot"]))
            {
                psi.ArgumentList.Add(a);
            }

            using Process p = Process.Start(psi)!;
            p.StandardInput.Close();
            var stdout = new MarkerStream(stopMarker);
            Task copy = p.StandardOutput.BaseStream.CopyToAsync(stdout);
            Task<string> err = p.StandardError.ReadToEndAsync();
            Task exited = p.WaitForExitAsync();
            Task.WaitAny([exited, stdout.MarkerSeen], timeout);
            if (stdout.MarkerSeen.IsCompleted && !p.HasExited)
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit();
                copy.Wait(TimeSpan.FromSeconds(5));
                return (stdout.ToArray(), -2);
            }

            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit();
                copy.Wait(TimeSpan.FromSeconds(5));
                return (stdout.ToArray(), -1);
            }

            copy.Wait(TimeSpan.FromSeconds(10));
            err.Wait(TimeSpan.FromSeconds(5));
            return (stdout.ToArray(), p.ExitCode);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
