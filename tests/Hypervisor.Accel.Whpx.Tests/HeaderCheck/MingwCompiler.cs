using System.Diagnostics;

namespace Hypervisor.Accel.Whpx.Tests.HeaderCheck;

/// <summary>Runs <c>x86_64-w64-mingw32-gcc -c</c> on generated C (compile only; nothing is linked or run).</summary>
internal static class MingwCompiler
{
    public const string Name = "x86_64-w64-mingw32-gcc";

    public static string? Locate() =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, Name))
            .FirstOrDefault(File.Exists);

    public static (int ExitCode, string Output) Compile(string compiler, string source)
    {
        var dir = Directory.CreateTempSubdirectory("whpx-header-check-");
        try
        {
            var cFile = Path.Combine(dir.FullName, "whpx_header_check.c");
            File.WriteAllText(cFile, source);
            var keep = Environment.GetEnvironmentVariable("WHPX_HEADER_CHECK_KEEP");
            if (!string.IsNullOrEmpty(keep))
            {
                File.WriteAllText(keep, source);
            }
            var psi = new ProcessStartInfo(compiler)
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            foreach (var arg in new[] { "-std=gnu11", "-O2", "-Wall", "-Werror", "-c", cFile, "-o", Path.Combine(dir.FullName, "check.o") })
            {
                psi.ArgumentList.Add(arg);
            }

            using var process = Process.Start(psi)!;
            var stderr = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
            {
                process.Kill();
                return (-1, "compiler timed out");
            }

            return (process.ExitCode, stdout + stderr.Result);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
