using System.Runtime.Versioning;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Hypervisor.Accel.Kvm.Interop;

/// <summary>
/// The signal that kicks a vCPU thread out of <c>KVM_RUN</c>. KVM leaves the guest with <c>EINTR</c> as soon as a
/// signal is pending for the thread, but only for a signal that is caught: an ignored or default-disposition signal
/// is either discarded or kills the process. So a handler is installed once per process; it does nothing.
/// </summary>
/// <remarks>
/// The handler is native code (a single <c>ret</c> in an executable page), not a managed callback: a reverse P/Invoke
/// in a signal handler would switch GC modes inside the signal and could deadlock against a suspension.
/// It is installed without <c>SA_RESTART</c> (KVM_RUN returns <c>-EINTR</c> either way; other blocking calls of the
/// thread should see the interruption too). If the process already has a handler for the signal, it is kept: any
/// caught signal interrupts KVM_RUN.
/// </remarks>
[SupportedOSPlatform("linux")]
internal static unsafe class KickSignal
{
    private static readonly Lock s_lock = new();
    private static bool s_installed;

    internal static int Number => SIGUSR1;

    /// <summary>Installs the no-op handler if needed; returns null on success or the reason it could not.</summary>
    internal static string? EnsureInstalled()
    {
        lock (s_lock)
        {
            if (s_installed)
            {
                return null;
            }

            sigaction old = default;
            if (sigaction(Number, null, &old) != 0)
            {
                return "sigaction(SIGUSR1) query failed: " + Libc.Describe(errno);
            }

            // SIG_DFL is 0 and SIG_IGN is 1 (<signal.h>).
            if ((nint)old.sa_handler is not 0 and not 1)
            {
                s_installed = true;
                return null;
            }

            int page = getpagesize();
            void* stub = mmap(null, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (stub == MAP_FAILED)
            {
                return "mmap of the signal stub failed: " + Libc.Describe(errno);
            }

            *(byte*)stub = 0xC3; // ret: the handler returns at once; the stub page lives as long as the process.
            if (mprotect(stub, (size_t)page, PROT_READ | PROT_EXEC) != 0)
            {
                int error = errno;
                munmap(stub, (size_t)page);
                return "mprotect of the signal stub failed: " + Libc.Describe(error);
            }

            sigaction action = default;
            action.sa_handler = stub;
            action.sa_flags = 0;
            sigemptyset(&action.sa_mask);
            if (sigaction(Number, &action, null) != 0)
            {
                return "sigaction(SIGUSR1) failed: " + Libc.Describe(errno);
            }

            s_installed = true;
            return null;
        }
    }
}
