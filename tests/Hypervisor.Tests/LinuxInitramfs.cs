using System.Text;
using Hypervisor.Core.Boot;

namespace Hypervisor.Tests;

/// <summary>
/// The Linux boot's userspace and command line, shared by the tcg boot (LinuxBootTests, against QEMU), the kvm boot
/// and the <c>--linux</c> benchmark (the kvm test project and the benchmark link this file, so all three boot the same
/// /init with the same command line).
/// </summary>
internal static partial class LinuxInitramfs
{
    /// <summary>Where Debian's busybox-static puts its binary.</summary>
    internal const string BusyboxPath = "/bin/busybox";
    internal const string Marker = "HV-INIT-MARKER";

    /// <summary>The line before the marker: the number of CPUs /init may run on (busybox nproc).</summary>
    internal const string CpusMarker = "HV-INIT-CPUS";

    // Lean but telling: loglevel=7 keeps the banner (KERN_NOTICE) and the kernel's own reading of our e820 map and
    // ACPI tables (KERN_INFO); cryptomgr.notests skips the crypto self-tests, which are most of the boot's
    // instructions; panic=-1 turns a panic into a reboot, which ends the run as a reset instead of hanging.
    /// <summary>/init: the online CPU count, the marker with the release the kernel reports to userspace, then power-off.</summary>
    internal const string InitScript =
        "#!/bin/sh\n" +
        "echo \"" + CpusMarker + " $(/bin/busybox nproc)\"\n" +
        "echo \"" + Marker + " release=$(/bin/busybox uname -r)\"\n" +
        "/bin/busybox poweroff -f\n";

    internal const string CommandLine = "console=ttyS0 loglevel=7 panic=-1 cryptomgr.notests";

    /// <summary>Why the initramfs cannot be built here, or null when <see cref="BusyboxPath"/> exists.</summary>
    internal static string? MissingReason =>
        File.Exists(BusyboxPath) ? null : $"{BusyboxPath} is missing (Debian package busybox-static; .ci/run installs it)";

    /// <summary>The initramfs: /bin/busybox and an /init script that prints the marker with `uname -r` and powers off.</summary>
    internal static byte[] BuildArchive()
    {
        return new NewcArchiveBuilder()
            .AddDirectory("bin")
            .AddDirectory("dev")
            .AddCharDevice("dev/console", 5, 1)
            .AddFile("bin/busybox", File.ReadAllBytes(BusyboxPath))
            .AddSymlink("bin/sh", "busybox")
            .AddFile("init", Encoding.ASCII.GetBytes(InitScript))
            .Build();
    }
}
