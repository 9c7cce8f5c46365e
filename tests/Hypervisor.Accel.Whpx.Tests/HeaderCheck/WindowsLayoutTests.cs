namespace Hypervisor.Accel.Whpx.Tests.HeaderCheck;

/// <summary>The hand-written offsets the byte-buffer tests use are themselves proven against the headers.</summary>
[TestFixture]
public sealed class WindowsLayoutTests
{
    [Test]
    public void HandWrittenOffsetsMatchTheMingwHeaders()
    {
        string compiler = MingwCompiler.Locate() ?? IgnoreAndReturn();
        var lines = new List<string> { "#include <windows.h>", "#include <winhvplatform.h>", "#include <winhvemulation.h>", "#include <stddef.h>" };
        lines.AddRange(WindowsLayout.ToCAssertions());
        // The nibble byte: it sits right after the 16-bit execution state and before Reserved.
        lines.Add($"_Static_assert(offsetof(WHV_RUN_VP_EXIT_CONTEXT, VpContext.Reserved) == {WindowsLayout.ExitInstructionLengthByte} + 1, \"InstructionLength byte\");");

        var (exitCode, output) = MingwCompiler.Compile(compiler, string.Join('\n', lines) + "\n");

        Assert.Multiple(() =>
        {
            Assert.That(lines, Has.Count.GreaterThan(50));
            Assert.That(exitCode, Is.Zero, output);
        });
    }

    private static string IgnoreAndReturn()
    {
        Assert.Ignore($"{MingwCompiler.Name} not found on PATH; install gcc-mingw-w64-x86-64 (CI does).");
        return string.Empty;
    }
}
