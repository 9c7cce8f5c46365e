using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using Hypervisor.Accel.Whpx.Interop;
using Hypervisor.Accel.Whpx.Translation;
using Hypervisor.Core.Io;
using Hypervisor.Core.Memory;

namespace Hypervisor.Accel.Whpx;

/// <summary>The vCPU operations the instruction emulator needs besides memory and ports.</summary>
internal unsafe interface IWhpxEmulatorTarget
{
    int GetRegisters(WHV_REGISTER_NAME* names, uint count, WHV_REGISTER_VALUE* values);

    int SetRegisters(WHV_REGISTER_NAME* names, uint count, WHV_REGISTER_VALUE* values);

    int TranslateGva(ulong gva, WHV_TRANSLATE_GVA_FLAGS flags, WHV_TRANSLATE_GVA_RESULT_CODE* result, ulong* gpa);
}

/// <summary>
/// What one vCPU's emulator callbacks reach: its port bus, memory map and register access. Passed to the emulator
/// as the <c>Context</c> pointer (a <see cref="GCHandle"/>), so the static callbacks find it without allocation.
/// </summary>
internal sealed unsafe class WhpxEmulatorContext : IDisposable
{
    private GCHandle _self;

    public WhpxEmulatorContext(PortIoBus ports, IMemoryMap memory, IWhpxEmulatorTarget? target)
    {
        Ports = ports;
        Memory = memory;
        Target = target;
        _self = GCHandle.Alloc(this);
    }

    public PortIoBus Ports { get; }

    public IMemoryMap Memory { get; }

    public IWhpxEmulatorTarget? Target { get; }

    /// <summary>The pointer handed to the emulator as its callback context.</summary>
    public nint Handle => GCHandle.ToIntPtr(_self);

    /// <summary>An exception a callback caught (exceptions must not unwind through native frames).</summary>
    public ExceptionDispatchInfo? Failure { get; set; }

    /// <summary>Rethrows, on the vCPU thread, what a device threw inside a callback.</summary>
    public void ThrowIfCallbackFailed()
    {
        ExceptionDispatchInfo? failure = Failure;
        if (failure is not null)
        {
            Failure = null;
            failure.Throw();
        }
    }

    public void Dispose()
    {
        if (_self.IsAllocated)
        {
            _self.Free();
        }
    }

    public static WhpxEmulatorContext FromHandle(void* context) => (WhpxEmulatorContext)GCHandle.FromIntPtr((nint)context).Target!;
}

/// <summary>
/// The <c>WHV_EMULATOR_CALLBACKS</c> functions. Each returns an HRESULT and never lets an exception escape: a
/// failure is stored on the context and rethrown once the emulator has returned.
/// </summary>
internal static unsafe class WhpxEmulatorCallbacks
{
    internal const int S_OK = 0;
    internal const int E_FAIL = unchecked((int)0x80004005);
    internal const int E_NOTIMPL = unchecked((int)0x80004001);

    /// <summary>A callback table pointing at the methods below.</summary>
    public static WHV_EMULATOR_CALLBACKS Table => new()
    {
        Size = (uint)sizeof(WHV_EMULATOR_CALLBACKS),
        WHvEmulatorIoPortCallback = &IoPort,
        WHvEmulatorMemoryCallback = &Memory,
        WHvEmulatorGetVirtualProcessorRegisters = &GetRegisters,
        WHvEmulatorSetVirtualProcessorRegisters = &SetRegisters,
        WHvEmulatorTranslateGvaPage = &TranslateGvaPage,
    };

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    [NativeCallback("WHV_EMULATOR_IO_PORT_CALLBACK")]
    internal static int IoPort(void* context, WHV_EMULATOR_IO_ACCESS_INFO* access)
    {
        var target = WhpxEmulatorContext.FromHandle(context);
        try
        {
            bool isWrite = access->Direction != 0;
            uint result = WhpxGuestAccess.AccessPort(target.Ports, access->Port, access->AccessSize, isWrite, access->Data);
            if (!isWrite)
            {
                access->Data = result;
            }

            return S_OK;
        }
#pragma warning disable CA1031 // nothing may unwind into the native emulator
        catch (Exception e)
#pragma warning restore CA1031
        {
            target.Failure = ExceptionDispatchInfo.Capture(e);
            return E_FAIL;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    [NativeCallback("WHV_EMULATOR_MEMORY_CALLBACK")]
    internal static int Memory(void* context, WHV_EMULATOR_MEMORY_ACCESS_INFO* access)
    {
        var target = WhpxEmulatorContext.FromHandle(context);
        try
        {
            int size = Math.Min((int)access->AccessSize, 8);
            var data = new Span<byte>(access->Data, size);
            if (access->Direction == (byte)WHV_MEMORY_ACCESS_TYPE.WHvMemoryAccessWrite)
            {
                WhpxGuestAccess.WriteMemory(target.Memory, access->GpaAddress, data);
            }
            else
            {
                WhpxGuestAccess.ReadMemory(target.Memory, access->GpaAddress, data);
            }

            return S_OK;
        }
#pragma warning disable CA1031
        catch (Exception e)
#pragma warning restore CA1031
        {
            target.Failure = ExceptionDispatchInfo.Capture(e);
            return E_FAIL;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    [NativeCallback("WHV_EMULATOR_GET_VIRTUAL_PROCESSOR_REGISTERS_CALLBACK")]
    internal static int GetRegisters(void* context, [NativeType("const WHV_REGISTER_NAME*")] WHV_REGISTER_NAME* names, uint count, WHV_REGISTER_VALUE* values)
    {
        var target = WhpxEmulatorContext.FromHandle(context);
        return target.Target?.GetRegisters(names, count, values) ?? E_NOTIMPL;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    [NativeCallback("WHV_EMULATOR_SET_VIRTUAL_PROCESSOR_REGISTERS_CALLBACK")]
    internal static int SetRegisters(void* context, [NativeType("const WHV_REGISTER_NAME*")] WHV_REGISTER_NAME* names, uint count, [NativeType("const WHV_REGISTER_VALUE*")] WHV_REGISTER_VALUE* values)
    {
        var target = WhpxEmulatorContext.FromHandle(context);
        return target.Target?.SetRegisters(names, count, values) ?? E_NOTIMPL;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    [NativeCallback("WHV_EMULATOR_TRANSLATE_GVA_PAGE_CALLBACK")]
    internal static int TranslateGvaPage(void* context, ulong gva, WHV_TRANSLATE_GVA_FLAGS flags, WHV_TRANSLATE_GVA_RESULT_CODE* result, ulong* gpa)
    {
        var target = WhpxEmulatorContext.FromHandle(context);
        return target.Target?.TranslateGva(gva, flags, result, gpa) ?? E_NOTIMPL;
    }
}
