using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Devices.Bus;
using Hypervisor.Devices.I8042;
using Hypervisor.Devices.Tests.Fakes;

namespace Hypervisor.Devices.Tests.I8042;

// Command set and replies per the IBM PC/AT and PS/2 keyboard controller references.
public class I8042ControllerTests
{
    private RecordingMachineControl _control = null!;
    private RecordingInterruptLine _irq1 = null!;
    private I8042Controller _kbc = null!;
    private A20Gate _a20 = null!;
    private PortIoBus _bus = null!;

    [SetUp]
    public void SetUp()
    {
        var ioLock = new IoLock();
        _control = new RecordingMachineControl();
        _irq1 = new RecordingInterruptLine();
        _a20 = new A20Gate();
        _kbc = new I8042Controller(_control, _a20, _irq1, new RecordingInterruptLine(), ioLock);
        _bus = new PortIoBus(ioLock);
        _bus.Register(0x60, 1, new BytePortAdapter(_kbc, 1), "i8042-data");
        _bus.Register(0x64, 1, new BytePortAdapter(_kbc, 1, I8042Controller.CommandRegister), "i8042-cmd");
        _bus.Register(0x92, 1, new BytePortAdapter(new FastA20Port(_control, _a20), 1), "port92");
    }

    private void Out(ushort port, int value) => _bus.Write(port, 1, (uint)value);

    private byte In(ushort port) => (byte)_bus.Read(port, 1);

    private List<byte> Drain()
    {
        var bytes = new List<byte>();
        while ((In(0x64) & 0x01) != 0 && bytes.Count < 100)
        {
            bytes.Add(In(0x60));
        }

        return bytes;
    }

    [Test]
    public void SelfTestAnswers55AndSetsTheSystemFlag()
    {
        Assert.That(In(0x64) & 0x04, Is.Zero);
        Out(0x64, 0xAA);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0x55 }));
        Assert.That(In(0x64) & 0x04, Is.EqualTo(0x04));
        Out(0x64, 0xAB);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0x00 }));
    }

    [Test]
    public void ConfigByteReadAndWrite()
    {
        Out(0x64, 0x20);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0x03 }), "QEMU's power-on configuration");
        Out(0x64, 0x60);
        Out(0x60, 0x65);
        Out(0x64, 0x20);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0x65 }));
        Assert.That(In(0x64) & 0x08, Is.EqualTo(0x08), "A2: the last write went to the command port");
    }

    [Test]
    public void KeyboardResetAnswersAckAndSelfTestPassedWithAnInterruptEach()
    {
        Out(0x60, 0xFF);
        int edgesBefore = _irq1.RisingEdges;
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA, 0xAA }));
        Assert.That(_irq1.RisingEdges - edgesBefore, Is.EqualTo(1), "the second byte raises IRQ 1 again");
        Assert.That(_irq1.Level, Is.False);
    }

    [Test]
    public void IdentifyAnswersMf2Keyboard()
    {
        Out(0x60, 0xF2);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA, 0xAB, 0x83 }));
        Out(0x64, 0x60);
        Out(0x60, 0x41); // translation on
        Out(0x60, 0xF2);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA, 0xAB, 0x41 }));
    }

    [Test]
    public void EnableAndDisableScanning()
    {
        Out(0x60, 0xF5);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA }));
        Assert.That(_kbc.KeyboardScanning, Is.False);
        _kbc.EnqueueScanCodes([0x1C]);
        Assert.That(Drain(), Is.Empty);
        Out(0x60, 0xF4);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA }));
        _kbc.EnqueueScanCodes([0x1C, 0xF0, 0x1C]);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0x1C, 0xF0, 0x1C }));
    }

    [Test]
    public void DisabledKeyboardInterfaceHoldsData()
    {
        Out(0x64, 0xAD);
        _kbc.EnqueueScanCodes([0x1C]);
        Assert.That(Drain(), Is.Empty);
        Out(0x64, 0xAE);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0x1C }));
    }

    [Test]
    public void CommandFEResetsTheMachine()
    {
        Out(0x64, 0xFE);
        Assert.That(_control.Stops.Single().Reason, Is.EqualTo(MachineStopReason.Reset));
        Assert.That(_control.Stops.Single().Status, Is.Zero);
    }

    [Test]
    public void OutputPortDrivesA20AndReset()
    {
        Out(0x64, 0xD1);
        Out(0x60, 0xDD); // A20 off, reset line high
        Assert.That(_a20.Enabled, Is.False);
        Out(0x64, 0xD0);
        Assert.That(Drain().Single() & 0x02, Is.Zero);
        Out(0x64, 0xD1);
        Out(0x60, 0xDF);
        Assert.That(_a20.Enabled, Is.True);
        Assert.That(_control.Stops, Is.Empty);
        Out(0x64, 0xD1);
        Out(0x60, 0xDE); // reset line low
        Assert.That(_control.Stops.Single().Reason, Is.EqualTo(MachineStopReason.Reset));
    }

    [Test]
    public void Port92FastA20AndReset()
    {
        Out(0x92, 0x00);
        Assert.That(_a20.Enabled, Is.False);
        Assert.That(In(0x92) & 0x02, Is.Zero);
        Out(0x92, 0x02);
        Assert.That(_a20.Enabled, Is.True);
        Assert.That(In(0x92) & 0x03, Is.EqualTo(0x02));
        Assert.That(_control.Stops, Is.Empty);
        Out(0x92, 0x03);
        Assert.That(_control.Stops.Single().Reason, Is.EqualTo(MachineStopReason.Reset));
    }

    [Test]
    public void KeyboardCommandWithParameter()
    {
        Out(0x60, 0xED); // set LEDs
        Out(0x60, 0x07);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA, 0xFA }));
        Out(0x60, 0xF0); // get scan code set
        Out(0x60, 0x00);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA, 0xFA, 0x02 }));
        Out(0x60, 0xEE);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xEE }));
    }

    [Test]
    public void HostInputIsBounded()
    {
        _kbc.EnqueueScanCodes(new byte[1000]);
        Assert.That(_kbc.DroppedBytes, Is.GreaterThan(900));
        Assert.That(Drain(), Has.Count.LessThanOrEqualTo(65));
    }
}
