using Hypervisor.Devices.Uart;

namespace Hypervisor.Cli;

/// <summary>
/// Feeds the host's standard input to the guest's COM1: keystrokes when stdin is a terminal, raw bytes when it is a
/// pipe or file. End of input simply means no more input; the guest keeps running.
/// </summary>
internal sealed class ConsoleInputPump : IDisposable
{
    private readonly Uart16550 _uart;
    private readonly CancellationToken _cancellation;
    private Thread? _thread;

    public ConsoleInputPump(Uart16550 uart, CancellationToken cancellation)
    {
        _uart = uart;
        _cancellation = cancellation;
    }

    public void Start()
    {
        _thread = new Thread(Pump) { IsBackground = true, Name = "hv-stdin" };
        _thread.Start();
    }

    private void Pump()
    {
        try
        {
            if (!Console.IsInputRedirected)
            {
                Span<byte> b = stackalloc byte[4];
                while (!_cancellation.IsCancellationRequested)
                {
                    ConsoleKeyInfo key = Console.ReadKey(intercept: true);
                    char c = key.KeyChar == '\n' ? '\r' : key.KeyChar;
                    if (c != '\0')
                    {
                        int n = System.Text.Encoding.UTF8.GetBytes([c], b);
                        _uart.EnqueueInput(b[..n]);
                    }
                }

                return;
            }

            using Stream stdin = Console.OpenStandardInput();
            var buffer = new byte[256];
            int read;
            while (!_cancellation.IsCancellationRequested && (read = stdin.Read(buffer, 0, buffer.Length)) > 0)
            {
                _uart.EnqueueInput(buffer.AsSpan(0, read));
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or ObjectDisposedException)
        {
            // stdin went away: no more input, the guest keeps running.
        }
    }

    // The pump thread is a background thread blocked in a read; it ends with the process.
    public void Dispose() => _thread = null;
}
