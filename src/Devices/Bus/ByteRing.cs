namespace Hypervisor.Devices.Bus;

/// <summary>A fixed-capacity FIFO of bytes: the bounded buffer behind device queues, so a guest cannot grow host memory.</summary>
/// <remarks>Not thread-safe; the owning device serialises access (the I/O lock).</remarks>
internal sealed class ByteRing
{
    private readonly byte[] _buffer;
    private int _head;

    public ByteRing(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _buffer = new byte[capacity];
    }

    public int Capacity => _buffer.Length;

    public int Count { get; private set; }

    public bool IsEmpty => Count == 0;

    public bool IsFull => Count == _buffer.Length;

    /// <summary>Appends a byte; returns false (and drops it) when full.</summary>
    public bool TryEnqueue(byte value)
    {
        if (IsFull)
        {
            return false;
        }

        _buffer[(_head + Count) % _buffer.Length] = value;
        Count++;
        return true;
    }

    /// <summary>Appends a byte, dropping the oldest when full; returns false when one was dropped.</summary>
    public bool EnqueueOverwrite(byte value)
    {
        bool dropped = false;
        if (IsFull)
        {
            Dequeue();
            dropped = true;
        }

        TryEnqueue(value);
        return !dropped;
    }

    public byte Dequeue()
    {
        if (Count == 0)
        {
            throw new InvalidOperationException("The queue is empty.");
        }

        byte b = _buffer[_head];
        _head = (_head + 1) % _buffer.Length;
        Count--;
        return b;
    }

    public byte Peek() => Count == 0 ? throw new InvalidOperationException("The queue is empty.") : _buffer[_head];

    public void Clear()
    {
        _head = 0;
        Count = 0;
    }

    public byte[] ToArray()
    {
        var result = new byte[Count];
        for (int i = 0; i < Count; i++)
        {
            result[i] = _buffer[(_head + i) % _buffer.Length];
        }

        return result;
    }
}
