namespace Hypervisor.Tests;

/// <summary>The tests' entry to the shared initramfs: a host without busybox-static skips the boot with the reason.</summary>
internal static partial class LinuxInitramfs
{
    /// <summary><see cref="BuildArchive"/>, or the test is ignored with <see cref="MissingReason"/>.</summary>
    internal static byte[] Build()
    {
        if (MissingReason is { } reason)
        {
            Assert.Ignore(reason);
        }

        return BuildArchive();
    }
}
