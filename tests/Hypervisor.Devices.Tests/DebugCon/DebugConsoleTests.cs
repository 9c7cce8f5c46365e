using Hypervisor.Core.Io;
using Hypervisor.Devices.Bus;
using Hypervisor.Devices.DebugCon;

namespace Hypervisor.Devices.Tests.DebugCon;

public class DebugConsoleTests
{
    [Test]
    public void BytesGoToTheStreamAndReadsReturnE9()
    {
        var stream = new MemoryStream();
        var console = new DebugConsole(stream);
        var bus = new PortIoBus(new IoLock());
        bus.Register(DebugConsole.SeaBiosPort, 1, new BytePortAdapter(console, 1), "debugcon");
        foreach (char c in "SeaBIOS\n")
        {
            bus.Write(DebugConsole.SeaBiosPort, 1, c);
        }

        Assert.That(stream.ToArray(), Is.EqualTo("SeaBIOS\n"u8.ToArray()));
        Assert.That(bus.Read(DebugConsole.SeaBiosPort, 1), Is.EqualTo(0xE9u));
        Assert.That(console.BytesWritten, Is.EqualTo(8));
    }

    [Test]
    public void WithoutAStreamTheBufferKeepsTheNewestBytes()
    {
        var console = new DebugConsole(output: null, bufferCapacity: 4);
        foreach (byte b in "abcdef"u8.ToArray())
        {
            console.WriteRegister(0, b);
        }

        Assert.That(console.GetBufferedText(), Is.EqualTo("cdef"));
        Assert.That(console.BytesDropped, Is.EqualTo(2));
        Assert.That(console.DrainBuffer(), Is.EqualTo("cdef"u8.ToArray()));
        Assert.That(console.GetBufferedBytes(), Is.Empty);
    }

    [Test]
    public void AClosedStreamDropsOutputInsteadOfThrowing()
    {
        var stream = new MemoryStream();
        var console = new DebugConsole(stream);
        stream.Dispose();
        Assert.DoesNotThrow(() => console.WriteRegister(0, (byte)'x'));
        Assert.That(console.BytesDropped, Is.EqualTo(1));
    }
}
