using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using Hypervisor.Accel.Kvm.Interop;
using static Hypervisor.Accel.Kvm.Interop.KvmConstants;

namespace Hypervisor.Accel.Kvm;

/// <summary>
/// One KVM vCPU: its file descriptor and its mmapped <c>kvm_run</c> structure, register access, interrupt
/// injection, <see cref="Run"/> and a thread-safe <see cref="Kick"/>.
/// </summary>
/// <remarks>
/// Threading: <see cref="Run"/> and the register calls belong to one thread at a time (the vCPU thread). A second
/// concurrent Run, or a register call while another thread runs the vCPU, is an <see cref="InvalidOperationException"/>
/// (the kernel would otherwise block it on the vCPU mutex until the guest exits). <see cref="Kick"/> may be called from
/// any thread at any time.
/// </remarks>
[SupportedOSPlatform("linux")]
internal sealed unsafe class KvmVcpu : IDisposable
{
    private const int EINTR = 4;
    private const int EAGAIN = 11;

    [ThreadStatic]
    private static int t_threadId;

    private readonly KvmVm _vm;
    private readonly FileDescriptorHandle _fd;
    private readonly MappingHandle _mapping;
    private readonly kvm_run* _run;
    private readonly int _runSize;
    private int _runningThreadId;
    private int _kickPending;
    private int _generation;
    private uint _exitReason = KVM_EXIT_UNKNOWN;
    private volatile bool _disposed;

    internal KvmVcpu(KvmVm vm, int id, FileDescriptorHandle fd, MappingHandle mapping)
    {
        _vm = vm;
        Id = id;
        _fd = fd;
        _mapping = mapping;
        _run = (kvm_run*)mapping.Address;
        _runSize = (int)mapping.Length;
        string? signalProblem = KickSignal.EnsureInstalled();
        KickSignalProblem = signalProblem;
    }

    /// <summary>The vCPU id given to <c>KVM_CREATE_VCPU</c>.</summary>
    internal int Id { get; }

    /// <summary>Why kicks cannot interrupt a running guest (the signal handler could not be installed), or null.</summary>
    internal string? KickSignalProblem { get; }

    /// <summary>Whether some thread is inside <see cref="Run"/>.</summary>
    internal bool IsRunning => Volatile.Read(ref _runningThreadId) != 0;

    internal bool IsDisposed => _disposed;

    /// <summary>Incremented by every <see cref="Run"/>; an exit view is valid only for the generation it was made in.</summary>
    internal int Generation => _generation;

    internal uint LastExitReason => _exitReason;

    internal kvm_run* RunStructure => _run;

    /// <summary>The vCPU descriptor (for the exit benchmark's bare-ioctl layer).</summary>
    internal FileDescriptorHandle Handle => _fd;

    internal int RunStructureSize => _runSize;

    /// <summary>Asks KVM to exit with <c>KVM_EXIT_IRQ_WINDOW_OPEN</c> as soon as the guest can take an interrupt.</summary>
    internal bool RequestInterruptWindow
    {
        get => _run->request_interrupt_window != 0;
        set => _run->request_interrupt_window = value ? (byte)1 : (byte)0;
    }

    /// <summary>After an exit: whether <c>KVM_INTERRUPT</c> would be accepted right now.</summary>
    internal bool ReadyForInterruptInjection => _run->ready_for_interrupt_injection != 0;

    /// <summary>After an exit: the guest's RFLAGS.IF.</summary>
    internal bool InterruptFlag => _run->if_flag != 0;

    /// <summary>
    /// CR8 as <c>kvm_run</c> carries it without an in-kernel local APIC: KVM loads it into the guest at <c>KVM_RUN</c>
    /// and stores the guest's value at every exit (Documentation/virt/kvm/api.rst, struct kvm_run).
    /// </summary>
    internal ulong Cr8
    {
        get => _run->cr8;
        set => _run->cr8 = value;
    }

    /// <summary>After an exit: the guest's IA32_APIC_BASE (without an in-kernel local APIC).</summary>
    internal ulong ApicBase => _run->apic_base;

    private static int CurrentThreadId
    {
        get
        {
            int id = t_threadId;
            if (id == 0)
            {
                id = Libc.GetThreadId();
                t_threadId = id;
            }

            return id;
        }
    }

    /// <summary>
    /// Enters the guest until an exit that needs user space. Signals that are not kicks are absorbed (the guest is
    /// re-entered). A kick returns an exit with reason <c>KVM_EXIT_INTR</c>.
    /// </summary>
    /// <returns>A view of the exit, valid until the next Run or Dispose.</returns>
    /// <exception cref="InvalidOperationException">Another thread is running this vCPU.</exception>
    /// <exception cref="KvmException">KVM_RUN failed (for example <c>EFAULT</c> for guest memory whose host mapping is gone).</exception>
    internal KvmExit Run()
    {
        using KvmRunSession session = BeginRun();
        return session.Run();
    }

    /// <summary>
    /// Claims the vCPU for a sequence of runs on the calling thread: the thread check, the descriptor and mapping
    /// references and the running mark are taken once for the whole sequence instead of once per exit.
    /// </summary>
    /// <remarks>
    /// While the session is open the vCPU counts as running: other threads cannot run it, read its registers or
    /// dispose it, and a <see cref="Kick"/> signals this thread even when it is between runs (the no-op handler
    /// returns at once; <c>immediate_exit</c> makes the next run return). Register calls from this thread work.
    /// </remarks>
    /// <exception cref="InvalidOperationException">Another thread is running this vCPU.</exception>
    internal KvmRunSession BeginRun()
    {
        int self = CurrentThreadId;
        int other = Interlocked.CompareExchange(ref _runningThreadId, self, 0);
        if (other != 0)
        {
            ThrowAlreadyRunning(other, self);
        }

        bool fdAdded = false;
        bool mappingAdded = false;
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _fd.DangerousAddRef(ref fdAdded);
            _mapping.DangerousAddRef(ref mappingAdded);
            return new KvmRunSession(this, _fd.Fd);
        }
        catch
        {
            if (mappingAdded)
            {
                _mapping.DangerousRelease();
            }

            if (fdAdded)
            {
                _fd.DangerousRelease();
            }

            Volatile.Write(ref _runningThreadId, 0);
            throw;
        }
    }

    /// <summary>Ends a session begun by <see cref="BeginRun"/>.</summary>
    internal void EndRun()
    {
        _mapping.DangerousRelease();
        _fd.DangerousRelease();
        Volatile.Write(ref _runningThreadId, 0);
    }

    /// <summary>One <c>KVM_RUN</c> inside a session (see <see cref="KvmRunSession.Run"/>).</summary>
    internal KvmExit RunInSession(int fd)
    {
        _generation++;
        while (true)
        {
            int result = Libc.RunVcpu(fd, out int error);
            if (result >= 0)
            {
                _exitReason = _run->exit_reason;
                break;
            }

            if (error == EINTR)
            {
                // Clear immediate_exit before consuming the kick, so that a kick racing with us either is consumed
                // now or leaves both immediate_exit and _kickPending set for the next entry.
                Volatile.Write(ref _run->immediate_exit, 0);
                if (Interlocked.Exchange(ref _kickPending, 0) != 0)
                {
                    _exitReason = KVM_EXIT_INTR;
                    break;
                }

                continue;
            }

            if (error == EAGAIN)
            {
                continue;
            }

            _exitReason = KVM_EXIT_UNKNOWN;
            throw new KvmException("KVM_RUN", error, $"vCPU {Id}");
        }

        return new KvmExit(this, _generation);
    }

    /// <summary>
    /// Makes the current or next <see cref="Run"/> return as soon as possible with <c>KVM_EXIT_INTR</c>. Thread-safe;
    /// kicks that arrive before Run returns are coalesced into one.
    /// </summary>
    /// <returns>False if the vCPU is already disposed.</returns>
    internal bool Kick()
    {
        if (_disposed)
        {
            return false;
        }

        bool added = false;
        try
        {
            _mapping.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            return false;
        }

        try
        {
            Interlocked.Exchange(ref _kickPending, 1);
            // KVM checks immediate_exit on entry; the signal covers a thread that is already inside the guest.
            Volatile.Write(ref _run->immediate_exit, 1);
            int thread = Volatile.Read(ref _runningThreadId);
            if (thread != 0 && thread != CurrentThreadId) // the vCPU thread itself is not inside KVM_RUN
            {
                Libc.SendToThread(thread, KickSignal.Number);
            }

            return true;
        }
        finally
        {
            _mapping.DangerousRelease();
        }
    }

    internal kvm_regs GetRegs()
    {
        kvm_regs regs;
        VcpuIoctl(Ioctl.KVM_GET_REGS, &regs, "KVM_GET_REGS");
        return regs;
    }

    internal void SetRegs(in kvm_regs regs)
    {
        fixed (kvm_regs* p = &regs)
        {
            VcpuIoctl(Ioctl.KVM_SET_REGS, p, "KVM_SET_REGS");
        }
    }

    internal kvm_sregs GetSregs()
    {
        kvm_sregs sregs;
        VcpuIoctl(Ioctl.KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
        return sregs;
    }

    internal void SetSregs(in kvm_sregs sregs)
    {
        fixed (kvm_sregs* p = &sregs)
        {
            VcpuIoctl(Ioctl.KVM_SET_SREGS, p, "KVM_SET_SREGS");
        }
    }

    /// <summary>
    /// Reads the x87/SSE state. With <c>KVM_CAP_XSAVE</c> this goes through the XSAVE area, honouring XSTATE_BV (a
    /// component in its init state reads as its init values), because <c>KVM_GET_FPU</c> can return stale XMM
    /// contents for components the CPU did not save.
    /// </summary>
    internal kvm_fpu GetFpu()
    {
        if (_vm.XsaveSizeInBytes == 0)
        {
            kvm_fpu fpu;
            VcpuIoctl(Ioctl.KVM_GET_FPU, &fpu, "KVM_GET_FPU");
            return fpu;
        }

        byte* area = (byte*)NativeMemory.AllocZeroed((nuint)_vm.XsaveSizeInBytes);
        try
        {
            GetXsave(area);
            return XsaveLayout.ToFpu(area);
        }
        finally
        {
            NativeMemory.Free(area);
        }
    }

    /// <summary>
    /// Writes the x87/SSE state. With <c>KVM_CAP_XSAVE</c> this patches the legacy region of the XSAVE area and marks
    /// x87 and SSE as present in XSTATE_BV; <c>KVM_SET_FPU</c> alone leaves XSTATE_BV untouched, so XRSTOR would load
    /// the init state (zeroed XMM registers) instead of our values.
    /// </summary>
    internal void SetFpu(in kvm_fpu fpu)
    {
        if (_vm.XsaveSizeInBytes == 0)
        {
            fixed (kvm_fpu* p = &fpu)
            {
                VcpuIoctl(Ioctl.KVM_SET_FPU, p, "KVM_SET_FPU");
            }

            return;
        }

        byte* area = (byte*)NativeMemory.AllocZeroed((nuint)_vm.XsaveSizeInBytes);
        try
        {
            GetXsave(area);
            XsaveLayout.FromFpu(fpu, area);
            VcpuIoctl(Ioctl.KVM_SET_XSAVE, area, "KVM_SET_XSAVE");
        }
        finally
        {
            NativeMemory.Free(area);
        }
    }

    private void GetXsave(byte* area)
    {
        if (_vm.XsaveSizeInBytes > sizeof(kvm_xsave))
        {
            VcpuIoctl(Ioctl.KVM_GET_XSAVE2, area, "KVM_GET_XSAVE2");
        }
        else
        {
            VcpuIoctl(Ioctl.KVM_GET_XSAVE, area, "KVM_GET_XSAVE");
        }
    }

    /// <summary>KVM's idea of the guest's XCR0 (<c>KVM_GET_XCRS</c>; needs <c>KVM_CAP_XCRS</c>).</summary>
    internal ulong GetXcr0()
    {
        kvm_xcrs xcrs;
        VcpuIoctl(Ioctl.KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS");
        var entries = (kvm_xcr*)xcrs.xcrs;
        for (int i = 0; i < Math.Min((int)xcrs.nr_xcrs, KVM_MAX_XCRS); i++)
        {
            if (entries[i].xcr == 0)
            {
                return entries[i].value;
            }
        }

        return 1; // XCR0's reset value (Intel SDM Vol. 1, 13.3): x87 only
    }

    /// <summary>Sets the guest's XCR0 (<c>KVM_SET_XCRS</c>); KVM refuses values the guest's CPUID does not allow.</summary>
    internal void SetXcr0(ulong value)
    {
        kvm_xcrs xcrs = default;
        xcrs.nr_xcrs = 1;
        ((kvm_xcr*)xcrs.xcrs)[0] = new kvm_xcr { xcr = 0, value = value };
        VcpuIoctl(Ioctl.KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS");
    }

    /// <summary>Reads the MSRs whose indices are in <paramref name="entries"/>; returns how many were read (KVM stops at the first it cannot read).</summary>
    internal int GetMsrs(Span<kvm_msr_entry> entries) => MsrIoctl(Ioctl.KVM_GET_MSRS, entries, "KVM_GET_MSRS", copyBack: true);

    /// <summary>Writes the MSRs; returns how many were written (KVM stops at the first it refuses).</summary>
    internal int SetMsrs(ReadOnlySpan<kvm_msr_entry> entries)
    {
        kvm_msr_entry[] copy = entries.ToArray();
        return MsrIoctl(Ioctl.KVM_SET_MSRS, copy, "KVM_SET_MSRS", copyBack: false);
    }

    /// <summary>Sets the CPUID the guest sees (<c>KVM_SET_CPUID2</c>); must be called before the first Run.</summary>
    internal void SetCpuid(ReadOnlySpan<kvm_cpuid_entry2> entries)
    {
        int bytes = sizeof(kvm_cpuid2) + (entries.Length * sizeof(kvm_cpuid_entry2));
        byte* buffer = (byte*)NativeMemory.AllocZeroed((nuint)bytes);
        try
        {
            ((kvm_cpuid2*)buffer)->nent = (uint)entries.Length;
            entries.CopyTo(new Span<kvm_cpuid_entry2>(buffer + sizeof(kvm_cpuid2), entries.Length));
            VcpuIoctl(Ioctl.KVM_SET_CPUID2, buffer, "KVM_SET_CPUID2");
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }

    /// <summary>Queues an external interrupt (<c>KVM_INTERRUPT</c>; only without an in-kernel irqchip).</summary>
    /// <returns>False if KVM already has an interrupt queued (<c>EEXIST</c>); retry after the next exit.</returns>
    internal bool TryInterrupt(byte vector)
    {
        var irq = new kvm_interrupt { irq = vector };
        RequireOwnerThread();
        using var lease = new FdLease(_fd);
        if (Libc.Ioctl(lease.Fd, Ioctl.KVM_INTERRUPT, &irq, out int error) < 0)
        {
            if (error == 17) // EEXIST
            {
                return false;
            }

            throw new KvmException("KVM_INTERRUPT", error, $"vCPU {Id}, vector {vector}");
        }

        return true;
    }

    /// <summary>Queues an NMI (<c>KVM_NMI</c>; only without an in-kernel irqchip).</summary>
    internal void Nmi()
    {
        RequireOwnerThread();
        using var lease = new FdLease(_fd);
        if (Libc.Ioctl(lease.Fd, Ioctl.KVM_NMI, 0, out int error) < 0)
        {
            throw new KvmException("KVM_NMI", error, $"vCPU {Id}");
        }
    }

    /// <summary>Closes the vCPU.</summary>
    /// <exception cref="InvalidOperationException">The vCPU is running on some thread.</exception>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        if (IsRunning)
        {
            throw new InvalidOperationException($"Cannot dispose vCPU {Id} while it is running; kick it and wait for Run to return first.");
        }

        _disposed = true;
        _mapping.Dispose();
        _fd.Dispose();
        _vm.Forget(this);
    }

    private int MsrIoctl(uint request, Span<kvm_msr_entry> entries, string name, bool copyBack)
    {
        int bytes = sizeof(kvm_msrs) + (entries.Length * sizeof(kvm_msr_entry));
        byte* buffer = (byte*)NativeMemory.AllocZeroed((nuint)bytes);
        try
        {
            ((kvm_msrs*)buffer)->nmsrs = (uint)entries.Length;
            var inBuffer = new Span<kvm_msr_entry>(buffer + sizeof(kvm_msrs), entries.Length);
            entries.CopyTo(inBuffer);
            int count = VcpuIoctl(request, buffer, name);
            if (copyBack)
            {
                inBuffer.CopyTo(entries);
            }

            return count;
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }

    private int VcpuIoctl(uint request, void* argument, string name)
    {
        RequireOwnerThread();
        using var lease = new FdLease(_fd);
        int result = Libc.Ioctl(lease.Fd, request, argument, out int error);
        if (result < 0)
        {
            throw new KvmException(name, error, $"vCPU {Id}");
        }

        return result;
    }

    private void RequireOwnerThread()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int running = Volatile.Read(ref _runningThreadId);
        if (running != 0 && running != CurrentThreadId)
        {
            throw new InvalidOperationException($"vCPU {Id} is running on thread {running}; access its state from that thread or after Run returns.");
        }
    }

    [DoesNotReturn]
    private void ThrowAlreadyRunning(int other, int self) =>
        throw new InvalidOperationException(other == self
            ? $"vCPU {Id} is already running on this thread (Run is not re-entrant)."
            : $"vCPU {Id} is already running on thread {other}; a vCPU runs on one thread at a time.");
}

/// <summary>
/// A vCPU claimed by one thread for a sequence of <c>KVM_RUN</c>s (<see cref="KvmVcpu.BeginRun"/>); Dispose ends the
/// claim. Keeps the per-exit path free of reference counting and thread checks.
/// </summary>
[SupportedOSPlatform("linux")]
internal ref struct KvmRunSession
{
    private readonly KvmVcpu _vcpu;
    private readonly int _fd;
    private bool _open;

    internal KvmRunSession(KvmVcpu vcpu, int fd)
    {
        _vcpu = vcpu;
        _fd = fd;
        _open = true;
    }

    /// <summary>Enters the guest until an exit that needs user space (see <see cref="KvmVcpu.Run"/>).</summary>
    internal readonly KvmExit Run()
    {
        if (!_open)
        {
            throw new InvalidOperationException("The run session has ended.");
        }

        return _vcpu.RunInSession(_fd);
    }

    public void Dispose()
    {
        if (_open)
        {
            _open = false;
            _vcpu.EndRun();
        }
    }
}
