using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Hypervisor.Accel.Kvm.Tests;

/// <summary>
/// Evaluates C expressions against the installed kernel headers (<c>/usr/include/linux/kvm.h</c>) by compiling a
/// small C program with gcc and running it. This is the independent source of truth for our layouts and numbers.
/// </summary>
internal static class KernelHeader
{
    internal const string Header = "/usr/include/linux/kvm.h";

    /// <summary>Returns each expression's value, or throws <see cref="InconclusiveException"/>-style reasons via <paramref name="skipReason"/>.</summary>
    internal static Dictionary<string, ulong>? Evaluate(IReadOnlyCollection<string> expressions, out string? skipReason)
    {
        skipReason = null;
        if (!OperatingSystem.IsLinux())
        {
            skipReason = "kernel headers are checked on Linux only";
            return null;
        }

        if (!File.Exists(Header))
        {
            skipReason = Header + " is missing (install linux-libc-dev)";
            return null;
        }

        string gcc = FindOnPath("gcc") ?? FindOnPath("cc") ?? "";
        if (gcc.Length == 0)
        {
            skipReason = "no C compiler (gcc) on PATH";
            return null;
        }

        string directory = Path.Combine(Path.GetTempPath(), "kvm-layout-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        try
        {
            var source = new StringBuilder();
            source.AppendLine("#include <stdio.h>");
            source.AppendLine("#include <stddef.h>");
            source.AppendLine("#include <linux/kvm.h>");
            source.AppendLine("int main(void) {");
            foreach (string expression in expressions)
            {
                source.Append("  printf(\"%s\\t%llu\\n\", \"").Append(expression.Replace("\"", "\\\"", StringComparison.Ordinal))
                      .Append("\", (unsigned long long)(").Append(expression).AppendLine("));");
            }

            source.AppendLine("  return 0;\n}");
            string cFile = Path.Combine(directory, "layout.c");
            string exe = Path.Combine(directory, "layout");
            File.WriteAllText(cFile, source.ToString());
            Run(gcc, ["-std=gnu11", "-o", exe, cFile], out string compileOutput, out int compileStatus);
            if (compileStatus != 0)
            {
                throw new InvalidOperationException("gcc failed on the layout program:\n" + compileOutput);
            }

            Run(exe, [], out string output, out int status);
            if (status != 0)
            {
                throw new InvalidOperationException("the layout program failed:\n" + output);
            }

            var values = new Dictionary<string, ulong>(StringComparer.Ordinal);
            foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                int tab = line.LastIndexOf('\t');
                values[line[..tab]] = ulong.Parse(line[(tab + 1)..], CultureInfo.InvariantCulture);
            }

            return values;
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static string? FindOnPath(string name)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static void Run(string file, string[] arguments, out string output, out int status)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(info)!;
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        output += stderr.Result;
        status = process.ExitCode;
    }
}
