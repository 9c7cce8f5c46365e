using Iced.Intel;
using Hypervisor.Accel.Tcg.Interpreter;

namespace Hypervisor.Accel.Tcg.Decoding;

/// <summary>
/// Feeds Iced's decoder with guest code bytes read through the vCPU's MMU (instruction-fetch permissions), without
/// allocating. A byte that cannot be fetched (page fault, CS limit) ends the stream and the fault is remembered, so the
/// decoder stops in front of the instruction and the interpreter raises the fault only if it reaches it.
/// </summary>
internal sealed unsafe class GuestCodeReader : CodeReader
{
    private readonly TcgCpu _cpu;
    private ulong _linear;
    private ulong _offset;
    private ulong _limitOffset;
    private nint _pageHost;
    private ulong _pageLinear = ulong.MaxValue;
    private ulong _physPage;

    public GuestCodeReader(TcgCpu cpu) => _cpu = cpu;

    /// <summary>True once a byte could not be fetched.</summary>
    public bool Faulted { get; private set; }

    /// <summary>The fault: vector, error code and CR2 value (for #PF).</summary>
    public int FaultVector { get; private set; }

    public uint FaultError { get; private set; }

    public ulong FaultAddress { get; private set; }

    /// <summary>True when the last instruction read touched a second page.</summary>
    public bool CrossedPage { get; set; }

    /// <summary>The offset (from the CS base) of the next byte.</summary>
    public ulong Offset => _offset;

    /// <summary>Starts reading at CS offset <paramref name="offset"/>; <paramref name="limitOffset"/> is the last readable offset.</summary>
    public void Reset(ulong offset, ulong linear, ulong limitOffset, ulong firstPhysPage, nint firstPageHost)
    {
        _offset = offset;
        _linear = linear;
        _limitOffset = limitOffset;
        _pageLinear = linear & ~PhysicalMemoryPageMask;
        _pageHost = firstPageHost;
        _physPage = firstPhysPage;
        Faulted = false;
        CrossedPage = false;
    }

    private const ulong PhysicalMemoryPageMask = 0xFFF;

    public override int ReadByte()
    {
        if (Faulted)
        {
            return -1;
        }

        if (_offset > _limitOffset)
        {
            Fault(13, 0, 0);
            return -1;
        }

        ulong lin = _linear;
        ulong page = lin & ~PhysicalMemoryPageMask;
        if (page != _pageLinear)
        {
            if (!_cpu.TryTranslateFetch(lin, out ulong phys, out int vector, out uint error))
            {
                Fault(vector, error, lin);
                return -1;
            }

            CrossedPage = true;
            _pageLinear = page;
            _physPage = phys >> 12;
            _pageHost = _cpu.Physical.HostPage(_physPage, false);
        }

        int value;
        if (_pageHost != 0)
        {
            value = ((byte*)_pageHost)[lin & PhysicalMemoryPageMask];
        }
        else
        {
            value = (byte)_cpu.Physical.Read((_physPage << 12) | (lin & PhysicalMemoryPageMask), 1);
        }

        _linear = _cpu.CodeLinearWrap(lin + 1);
        _offset++;
        return value;
    }

    private void Fault(int vector, uint error, ulong address)
    {
        Faulted = true;
        FaultVector = vector;
        FaultError = error;
        FaultAddress = address;
    }
}
