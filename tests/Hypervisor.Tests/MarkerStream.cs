using System.Text;

namespace Hypervisor.Tests;

/// <summary>A memory stream that completes <see cref="MarkerSeen"/> once its contents contain a marker string.</summary>
internal sealed class MarkerStream(string? marker) : MemoryStream
{
    private readonly TaskCompletionSource _seen = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task MarkerSeen => _seen.Task;

    public override void Write(ReadOnlySpan<byte> buffer) => Write(buffer.ToArray(), 0, buffer.Length);

    public override void Write(byte[] buffer, int offset, int count)
    {
        lock (this)
        {
            base.Write(buffer, offset, count);
            if (marker is not null && !_seen.Task.IsCompleted &&
                Encoding.Latin1.GetString(GetBuffer(), 0, (int)Length).Contains(marker, StringComparison.Ordinal))
            {
                _seen.TrySetResult();
            }
        }
    }

    public override void WriteByte(byte value) => Write([value]);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        Write(buffer, offset, count);
        return Task.CompletedTask;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override byte[] ToArray()
    {
        lock (this)
        {
            return base.ToArray();
        }
    }
}
