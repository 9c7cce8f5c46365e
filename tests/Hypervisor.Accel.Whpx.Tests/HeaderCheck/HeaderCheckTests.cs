using System.Reflection;
using System.Runtime.InteropServices;
using Hypervisor.Accel.Whpx.Interop;

namespace Hypervisor.Accel.Whpx.Tests.HeaderCheck;

/// <summary>
/// Our interop definitions against MinGW-w64's winhvplatformdefs.h, winhvplatform.h and winhvemulation.h: the C
/// file is generated from our types, so a wrong size, offset, enum value, bit-field or signature fails to compile.
/// </summary>
[TestFixture]
public sealed class HeaderCheckTests
{
    private static string RequireCompiler() =>
        MingwCompiler.Locate() ?? AssertIgnore($"{MingwCompiler.Name} not found on PATH; install gcc-mingw-w64-x86-64 and mingw-w64-x86-64-dev (CI does).");

    private static string AssertIgnore(string reason)
    {
        Assert.Ignore(reason);
        return string.Empty;
    }

    [Test]
    public void InteropDefinitionsMatchTheMingwHeaders()
    {
        var compiler = RequireCompiler();
        var source = HeaderChecks.Render(HeaderChecks.Build());

        var (exitCode, output) = MingwCompiler.Compile(compiler, source);

        Assert.That(exitCode, Is.Zero, $"{MingwCompiler.Name} rejected the generated header checks:\n{output}");
    }

    [Test]
    public void ChecksCoverEveryKindAndTheStructuresTheRunLoopDepends()
    {
        var items = HeaderChecks.Build();
        var labels = items.Select(i => i.Label).ToHashSet(StringComparer.Ordinal);

        Assert.Multiple(() =>
        {
            Assert.That(items.OfType<SizeCheck>().Count(), Is.GreaterThan(30));
            Assert.That(items.OfType<OffsetCheck>().Count(), Is.GreaterThan(100));
            Assert.That(items.OfType<EnumValueCheck>().Count(), Is.GreaterThan(100));
            Assert.That(items.OfType<BitFieldCheck>().Count(), Is.EqualTo(typeof(WhvBitFields).GetFields().Length));
            Assert.That(items.OfType<FunctionCheck>().Count(), Is.EqualTo(WhvLibrary.PlatformExports.Length + WhvLibrary.EmulationExports.Length));
            Assert.That(labels, Does.Contain("sizeof(WHV_RUN_VP_EXIT_CONTEXT)"));
            Assert.That(labels, Does.Contain("WHV_RUN_VP_EXIT_CONTEXT.IoPortAccess"));
            Assert.That(labels, Does.Contain("WHV_EMULATOR_CALLBACKS.WHvEmulatorTranslateGvaPage"));
            Assert.That(labels, Does.Contain("sizeof(WHV_REGISTER_VALUE)"));
            Assert.That(labels, Does.Contain("WHvRunVirtualProcessor"));
            Assert.That(labels, Does.Contain("WHvRegisterPendingInterruption"));
            Assert.That(items.OfType<CallbackCheck>().Select(c => c.Typedef), Is.EquivalentTo(new[]
            {
                "WHV_EMULATOR_IO_PORT_CALLBACK", "WHV_EMULATOR_MEMORY_CALLBACK",
                "WHV_EMULATOR_GET_VIRTUAL_PROCESSOR_REGISTERS_CALLBACK", "WHV_EMULATOR_SET_VIRTUAL_PROCESSOR_REGISTERS_CALLBACK",
                "WHV_EMULATOR_TRANSLATE_GVA_PAGE_CALLBACK",
            }));
        });
    }

    [Test]
    public void ExportListsNameExactlyTheImportedFunctions()
    {
        static string[] Imports(Type type) =>
            [.. type.GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
                .Where(m => m.IsDefined(typeof(LibraryImportAttribute)))
                .Select(m => m.Name)
                .Order(StringComparer.Ordinal)];

        Assert.Multiple(() =>
        {
            Assert.That(WhvLibrary.PlatformExports.Order(StringComparer.Ordinal), Is.EqualTo(Imports(typeof(WinHvPlatform))));
            Assert.That(WhvLibrary.EmulationExports.Order(StringComparer.Ordinal), Is.EqualTo(Imports(typeof(WinHvEmulation))));
        });
    }

    /// <summary>Each kind of assertion, deliberately made wrong, must be rejected by the compiler.</summary>
    [TestCase("offset")]
    [TestCase("size")]
    [TestCase("enum")]
    [TestCase("bitfield")]
    [TestCase("signature")]
    [TestCase("callback")]
    public void AWrongAssertionFailsTheCompile(string kind)
    {
        var compiler = RequireCompiler();
        var items = HeaderChecks.Build().ToList();
        var index = kind switch
        {
            "offset" => items.FindIndex(i => i is OffsetCheck { Label: "WHV_X64_IO_PORT_ACCESS_CONTEXT.PortNumber" }),
            "size" => items.FindIndex(i => i is SizeCheck { CType: "WHV_RUN_VP_EXIT_CONTEXT" }),
            "enum" => items.FindIndex(i => i is EnumValueCheck { Member: "WHvRunVpExitReasonX64Halt" }),
            "bitfield" => items.FindIndex(i => i is BitFieldCheck { Label: "WHV_X64_PENDING_INTERRUPTION_REGISTER.InterruptionVector" }),
            "signature" => items.FindIndex(i => i is FunctionCheck { Name: "WHvSetVirtualProcessorRegisters" }),
            "callback" => items.FindIndex(i => i is CallbackCheck { Typedef: "WHV_EMULATOR_SET_VIRTUAL_PROCESSOR_REGISTERS_CALLBACK" }),
            _ => -1,
        };
        Assert.That(index, Is.Not.EqualTo(-1), $"no {kind} check to corrupt");
        var original = items[index];
        var wrong = original switch
        {
            OffsetCheck o => o with { Offset = o.Offset + 2 },
            SizeCheck s => s with { Size = s.Size - 8 },
            EnumValueCheck e => e with { Value = e.Value + 1 },
            BitFieldCheck b => b with { Mask = b.Mask << 1 },
            FunctionCheck f => f with { Parameters = [.. f.Parameters.Select(p => p.Replace("const ", string.Empty, StringComparison.Ordinal))] },
            CallbackCheck c => c with { Parameters = [.. c.Parameters.Take(2), "UINT64", .. c.Parameters.Skip(3)] },
            _ => original,
        };
        items[index] = wrong;

        var (exitCode, output) = MingwCompiler.Compile(compiler, HeaderChecks.Render(items));

        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.Not.Zero, "the compiler accepted a deliberately wrong assertion");
            Assert.That(output, Does.Contain(original.Label), "the failure does not name the wrong assertion");
        });
    }
}
