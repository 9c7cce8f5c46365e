namespace Hypervisor.Devices.Bus;

/// <summary>
/// A host stream a device writes guest output to. A failing stream (closed pipe, disposed file) must not take the
/// guest or the host down: the first failure is remembered and further output is dropped and counted.
/// </summary>
internal sealed class HostOutput(Stream? stream)
{
    public Stream? Stream { get; } = stream;

    public Exception? Failure { get; private set; }

    public long DroppedBytes { get; private set; }

    public void Write(byte value, bool flush)
    {
        if (Stream is null)
        {
            return;
        }

        if (Failure is not null)
        {
            DroppedBytes++;
            return;
        }

        try
        {
            Stream.WriteByte(value);
            if (flush)
            {
                Stream.Flush();
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or NotSupportedException)
        {
            Failure = e;
            DroppedBytes++;
        }
    }
}
