using System.Diagnostics;

namespace Hypervisor.Tests;

/// <summary>
/// Finds Debian's cloud kernel for the Linux boot tests: the path in HV_LINUX_KERNEL (test.sh and .ci/run set it from
/// tests/assets/fetch-linux-kernel.sh), else the script is run here (it caches the unpacked package outside git).
/// </summary>
internal static class LinuxKernelAsset
{
    private static readonly Lazy<(string? Path, string Reason)> s_kernel = new(Find);

    /// <summary>The vmlinuz path; skips the calling test with the reason when the kernel could not be fetched.</summary>
    public static string Require()
    {
        (string? path, string reason) = s_kernel.Value;
        return path ?? throw new IgnoreException($"The Debian kernel (linux-image-cloud-amd64) is not available: {reason}");
    }

    private static (string?, string) Find()
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable("HV_LINUX_KERNEL");
        if (!string.IsNullOrEmpty(fromEnvironment))
        {
            return File.Exists(fromEnvironment) ? (fromEnvironment, string.Empty) : (null, $"HV_LINUX_KERNEL={fromEnvironment} does not exist");
        }

        string? script = FindScript();
        if (script is null)
        {
            return (null, "tests/assets/fetch-linux-kernel.sh was not found above the test directory");
        }

        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(script);
        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            p.Kill(entireProcessTree: true);
            return (null, "fetch-linux-kernel.sh did not finish within 5 minutes");
        }

        string path = stdout.Result.Trim();
        return p.ExitCode == 0 && File.Exists(path)
            ? (path, string.Empty)
            : (null, $"fetch-linux-kernel.sh failed (exit {p.ExitCode}): {stderr.Result.Trim()}");
    }

    private static string? FindScript()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "tests", "assets", "fetch-linux-kernel.sh");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
