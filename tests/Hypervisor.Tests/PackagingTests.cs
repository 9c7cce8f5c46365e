using System.Diagnostics;
using System.Globalization;

namespace Hypervisor.Tests;

// Packs the libraries, builds a separate console app against the packages from a local folder source, and runs a
// guest through dependency injection with accel=auto, as a user would.
[Category("Packaging")]
public class PackagingTests
{
    private static string RepositoryRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Hypervisor.sln")))
            {
                dir = dir.Parent;
            }

            return dir?.FullName ?? throw new IgnoreException("not running from a source checkout (no Hypervisor.sln above the test binaries)");
        }
    }

    [Test]
    public void PackedPackagesRunAGuestFromASeparateApp()
    {
        string root = RepositoryRoot;
        string work = Path.Combine(Path.GetTempPath(), $"hv-pack-{Guid.NewGuid():N}");
        string feed = Path.Combine(work, "feed");
        string app = Path.Combine(work, "app");
        Directory.CreateDirectory(app);
        // A version no earlier run used, so the global package cache cannot hand back stale bits.
        string version = "0.1.0-test." + DateTime.UtcNow.ToString("yyyyMMddHHmmssfff", CultureInfo.InvariantCulture);
        try
        {
            foreach (string project in new[] { "Hypervisor.Core", "Devices", "Accel.Tcg", "Accel.Kvm", "Accel.Whpx", "Hypervisor", "Hypervisor.Cli" })
            {
                string csproj = Directory.GetFiles(Path.Combine(root, "src", project), "*.csproj").Single();
                Run(root, "dotnet", "pack", csproj, "-c", "Release", "-o", feed, $"-p:Version={version}", "-nologo");
            }

            string[] packages = Directory.GetFiles(feed, "*.nupkg").Select(Path.GetFileName).ToArray()!;
            Assert.That(packages, Is.SupersetOf(new[]
            {
                $"Hypervisor.{version}.nupkg", $"Hypervisor.Core.{version}.nupkg", $"Hypervisor.Devices.{version}.nupkg",
                $"Hypervisor.Accel.Tcg.{version}.nupkg", $"Hypervisor.Accel.Kvm.{version}.nupkg", $"Hypervisor.Accel.Whpx.{version}.nupkg",
                $"Hypervisor.Cli.{version}.nupkg",
            }));

            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <add key="local-test-feed" value="{feed}" />
                  </packageSources>
                </configuration>
                """);
            File.WriteAllText(Path.Combine(app, "App.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <Nullable>enable</Nullable>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="Hypervisor" Version="{version}" />
                    <PackageReference Include="Microsoft.Extensions.DependencyInjection" Version="10.0.0" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(app, "Program.cs"), """
                using Hypervisor.Core.Machine;
                using Hypervisor.Hosting;
                using Microsoft.Extensions.DependencyInjection;

                var services = new ServiceCollection();
                services.AddHypervisor(o => o.Accelerator = "auto").AddAllAccelerators();
                using var provider = services.BuildServiceProvider();
                using var serial = new MemoryStream();
                using VirtualMachine vm = provider.GetRequiredService<IVirtualMachineFactory>()
                    .Create(new MachineRequest { SerialOutput = serial });
                MachineRunResult result = vm.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(60)));
                Console.Write(System.Text.Encoding.Latin1.GetString(serial.ToArray()));
                Console.WriteLine($"accelerator={vm.AcceleratorName} reason={result.Reason} status={result.ExitStatus}");
                """);
            // Isolated from this repository's Directory.Build.props / Directory.Packages.props / global.json.
            File.WriteAllText(Path.Combine(work, "Directory.Build.props"), "<Project />");
            File.WriteAllText(Path.Combine(work, "Directory.Packages.props"), "<Project />");
            string output = Run(app, "dotnet", "run", "-c", "Release", "--nologo");
            Assert.That(output, Does.Contain("primes below 100000: 9592"));
            Assert.That(output, Does.Contain("reason=DebugExit status=1"));
        }
        finally
        {
            try
            {
                Directory.Delete(work, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static string Run(string workingDirectory, string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            p.Kill(true);
            Assert.Fail($"{file} {string.Join(' ', args)} did not finish in 5 minutes");
        }

        Assert.That(p.ExitCode, Is.Zero, $"{file} {string.Join(' ', args)} failed:\n{stdout.Result}\n{stderr.Result}");
        return stdout.Result;
    }
}
