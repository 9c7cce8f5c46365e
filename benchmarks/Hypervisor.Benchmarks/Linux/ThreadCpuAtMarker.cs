using System.Globalization;
using Hypervisor.Tests;

namespace Hypervisor.Benchmarks.Linux;

/// <summary>
/// The serial output of a benchmark boot: passes every write to a <see cref="MarkerStream"/> and, at the write that
/// completes the marker, records the CPU time of the thread writing (the vCPU thread: the UART writes from the OUT that
/// the guest executes) from <c>/proc/thread-self/stat</c>. On a machine shared with other work the wall time of a
/// boot varies several-fold; the vCPU thread's CPU time is what the wall time is on a quiet machine, minus idle
/// waits, while the JIT's compiler runs on the other core. Linux only; elsewhere nothing is recorded.
/// </summary>
internal sealed class ThreadCpuAtMarker(MarkerStream inner) : Stream
{
    /// <summary>The writing thread's user + system CPU time when the marker was seen, and its name.</summary>
    public (TimeSpan Cpu, string Thread)? AtMarker { get; private set; }

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => inner.Length;

    public override long Position { get => inner.Position; set => throw new NotSupportedException(); }

    public override void Flush() => inner.Flush();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count)
    {
        inner.Write(buffer, offset, count);
        if (AtMarker is null && inner.MarkerSeen.IsCompleted)
        {
            AtMarker = ReadThreadCpu();
        }
    }

    public override void Write(ReadOnlySpan<byte> buffer) => Write(buffer.ToArray(), 0, buffer.Length);

    public override void WriteByte(byte value) => Write([value], 0, 1);

    private static (TimeSpan, string)? ReadThreadCpu()
    {
        try
        {
            // Fields after the parenthesised name: state is field 3, utime 14 and stime 15 (proc(5)), in clock ticks.
            string stat = File.ReadAllText("/proc/thread-self/stat");
            string[] f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            long ticks = long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
            string name = File.ReadAllText("/proc/thread-self/comm").Trim();
            return (TimeSpan.FromSeconds(ticks / 100.0), name); // USER_HZ is 100 on Linux
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
