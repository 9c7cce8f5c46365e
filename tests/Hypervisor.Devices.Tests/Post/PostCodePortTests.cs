using Hypervisor.Core.Io;
using Hypervisor.Devices.Bus;
using Hypervisor.Devices.Post;

namespace Hypervisor.Devices.Tests.Post;

public class PostCodePortTests
{
    [Test]
    public void KeepsTheLastCodeAndCountsWrites()
    {
        var post = new PostCodePort();
        var bus = new PortIoBus(new IoLock());
        bus.Register(PostCodePort.DefaultPort, 1, new BytePortAdapter(post, 1), "post");
        bus.Write(0x80, 1, 0x12);
        bus.Write(0x80, 1, 0x34);
        bus.Write(0x80, 2, 0xAB56); // the card sees the low byte; 0x81 is not part of it
        Assert.That(post.LastCode, Is.EqualTo(0x56));
        Assert.That(post.WriteCount, Is.EqualTo(3));
        Assert.That(bus.Read(0x80, 1), Is.EqualTo(0xFFu));
    }
}
