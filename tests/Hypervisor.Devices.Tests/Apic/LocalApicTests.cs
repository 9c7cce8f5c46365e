using Hypervisor.Core.Io;
using Hypervisor.Devices.Apic;
using Hypervisor.Devices.Pic;

namespace Hypervisor.Devices.Tests.Apic;

// Expected values come from the Intel SDM Vol. 3A, chapter 11 (section numbers in each test), and from QEMU's
// documented reset state where the SDM leaves the board to decide (the bootstrap processor's LINT0).
public class LocalApicTests
{
    [Test]
    public void PowerUpStateFollowsSdm11471()
    {
        var m = new ApicTestMachine(vcpus: 2);
        Assert.Multiple(() =>
        {
            Assert.That(m.Read(0x30), Is.EqualTo(0x0005_0014u), "version: 0x14, max LVT entry 5");
            Assert.That(m.Read(0x20), Is.EqualTo(0u), "BSP APIC ID 0");
            Assert.That(m.Read(0x20, vcpu: 1), Is.EqualTo(0x0100_0000u), "AP APIC ID 1 in bits 31:24");
            Assert.That(m.Read(0xF0), Is.EqualTo(0xFFu), "SVR: vector 0xFF, software-disabled");
            Assert.That(m.Read(0xE0), Is.EqualTo(0xFFFF_FFFFu), "DFR: flat model");
            Assert.That(m.Read(0x80), Is.Zero);
            foreach (int lvt in new[] { 0x320, 0x330, 0x340, 0x360, 0x370 })
            {
                Assert.That(m.Read(lvt), Is.EqualTo(0x1_0000u), $"LVT 0x{lvt:X} masked");
            }

            Assert.That(m.Read(0x350), Is.EqualTo(0x700u), "BSP LINT0: ExtINT, unmasked (virtual wire)");
            Assert.That(m.Read(0x350, vcpu: 1), Is.EqualTo(0x1_0000u), "AP LINT0 masked");
            Assert.That(m.Bsp.ApicBase, Is.EqualTo(0xFEE0_0900UL), "IA32_APIC_BASE: enabled, BSP");
            Assert.That(m.Bus.LocalApics[1].ApicBase, Is.EqualTo(0xFEE0_0800UL), "AP: enabled, not BSP");
        });
    }

    [Test]
    public void RegisterWritesKeepOnlyArchitecturalBits()
    {
        var m = new ApicTestMachine();
        m.Enable();
        m.Write(0x20, 0xFFFF_FFFF);
        m.Write(0x80, 0xFFFF_FFFF);
        m.Write(0xD0, 0xFFFF_FFFF);
        m.Write(0xE0, 0x0000_0000);
        m.Write(0x320, 0xFFFF_FFFF);
        m.Write(0x350, 0xFFFF_FFFF);
        m.Write(0x370, 0xFFFF_FFFF);
        m.Write(0x3E0, 0xFFFF_FFFF);
        m.Write(0x310, 0xFFFF_FFFF);
        m.Write(0x30, 0);
        Assert.Multiple(() =>
        {
            Assert.That(m.Read(0x20), Is.EqualTo(0xFF00_0000u), "ID bits 31:24");
            Assert.That(m.Read(0x80), Is.EqualTo(0xFFu), "TPR bits 7:0");
            Assert.That(m.Read(0xD0), Is.EqualTo(0xFF00_0000u), "LDR bits 31:24");
            Assert.That(m.Read(0xE0), Is.EqualTo(0x0FFF_FFFFu), "DFR: model bits 31:28, the rest reads 1");
            Assert.That(m.Read(0x320), Is.EqualTo(0x3_00FFu), "timer: vector, mask, periodic; no TSC-deadline, no status");
            Assert.That(m.Read(0x350), Is.EqualTo(0x1_A7FFu), "LINT0: vector, mode, polarity, trigger, mask; RO bits 12, 14");
            Assert.That(m.Read(0x370), Is.EqualTo(0x1_00FFu), "error: vector and mask");
            Assert.That(m.Read(0x3E0), Is.EqualTo(0xBu), "divide: bits 0, 1, 3");
            Assert.That(m.Read(0x310), Is.EqualTo(0xFF00_0000u), "ICR high: destination");
            Assert.That(m.Read(0x30), Is.EqualTo(0x0005_0014u), "version is read-only");
        });
    }

    [Test]
    public void SoftwareDisabledApicHoldsInterruptsAndForcesLvtMasks()
    {
        // SDM 11.4.7.2: while software-disabled, LVT mask bits are set and cannot be cleared; clearing the enable bit
        // sets them all.
        var m = new ApicTestMachine();
        m.Write(0x320, 0x40);
        Assert.That(m.Read(0x320), Is.EqualTo(0x1_0040u));
        m.Enable();
        m.Write(0x320, 0x40);
        m.Write(0x370, 0x41);
        Assert.That(m.Read(0x320), Is.EqualTo(0x40u));
        m.Write(0xF0, 0xFF);
        Assert.That(m.Read(0x320), Is.EqualTo(0x1_0040u));
        Assert.That(m.Read(0x370), Is.EqualTo(0x1_0041u));
        m.SelfIpi(0x50);
        Assert.That(m.IrrBit(0x50), Is.True, "accepted into IRR");
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False, "but not dispatched while disabled");
        m.Enable();
        Assert.That(m.Ack(), Is.EqualTo(0x50));
    }

    [Test]
    public void HigherPriorityClassNestsAndEoiUnwindsInOrder()
    {
        // SDM 11.8.3: IRR to ISR at acknowledge; the highest IRR vector is dispatched only if its class is above
        // PPR[7:4]; EOI clears the highest ISR bit (11.8.5).
        var m = new ApicTestMachine();
        m.Enable();
        m.SelfIpi(0x31);
        m.SelfIpi(0x52);
        m.SelfIpi(0x41);
        Assert.That(m.Ack(), Is.EqualTo(0x52));
        Assert.That(m.Read(0xA0), Is.EqualTo(0x50u), "PPR = ISRV class while TPR is lower");
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False, "0x41 and 0x31 are below the in-service class");
        m.SelfIpi(0x63);
        Assert.That(m.Ack(), Is.EqualTo(0x63), "a higher class nests");
        m.Eoi();
        Assert.That(m.IsrBit(0x63), Is.False);
        Assert.That(m.IsrBit(0x52), Is.True);
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False);
        m.Eoi();
        Assert.That(m.Ack(), Is.EqualTo(0x41));
        Assert.That(m.Ack(), Is.EqualTo(-1));
        m.Eoi();
        Assert.That(m.Ack(), Is.EqualTo(0x31));
        m.Eoi();
        Assert.That(m.Read(0x100 + 0x10), Is.Zero);
        Assert.That(m.Read(0xA0), Is.Zero);
    }

    [Test]
    public void SameClassWaitsForEoi()
    {
        var m = new ApicTestMachine();
        m.Enable();
        m.SelfIpi(0x45);
        Assert.That(m.Ack(), Is.EqualTo(0x45));
        m.SelfIpi(0x4A);
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False, "0x4A has the same class as 0x45 in service");
        m.Eoi();
        Assert.That(m.Ack(), Is.EqualTo(0x4A));
    }

    [Test]
    public void TaskPriorityBlocksClassesAtOrBelowIt()
    {
        var m = new ApicTestMachine();
        m.Enable();
        m.Write(0x80, 0x5F);
        m.SelfIpi(0x5A);
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False, "class 5 <= TPR class 5");
        Assert.That(m.Read(0xA0), Is.EqualTo(0x5Fu), "PPR = TPR when TPR class >= ISRV class");
        Assert.That(m.Read(0x90), Is.EqualTo(0x5Fu), "APR = TPR (P6 rule, 11.6.2.4)");
        m.Bsp.TaskPriorityClass = 4; // CR8 write in 64-bit mode
        Assert.That(m.Read(0x80), Is.EqualTo(0x40u), "CR8 sets TPR[7:4] and clears TPR[3:0]");
        Assert.That(m.Bsp.HasPendingInterrupt, Is.True);
        Assert.That(m.Control.Notifications[0], Is.GreaterThan(0), "the vCPU is told when TPR unblocks an interrupt");
        m.Write(0x80, 0x65);
        Assert.That(m.Bsp.TaskPriorityClass, Is.EqualTo(6), "CR8 reads TPR[7:4]");
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False);
    }

    [Test]
    public void IllegalVectorsAndRegistersAreReportedInEsr()
    {
        // SDM 11.5.3: ESR bits 5 (send illegal vector), 6 (receive illegal vector), 7 (illegal register address);
        // the ESR shows the errors collected before the last write to it; the error LVT delivers its vector.
        var m = new ApicTestMachine();
        m.Enable();
        m.Write(0x370, 0xE0);
        m.SelfIpi(0x0F);
        Assert.That(m.Read(0x280), Is.Zero, "not visible before a write to the ESR");
        m.Write(0x280, 0);
        Assert.That(m.Read(0x280), Is.EqualTo(LocalApic.ErrorSendIllegalVector));
        Assert.That(m.Ack(), Is.EqualTo(0xE0), "the error interrupt");
        m.Eoi();
        m.Read(0x040);
        m.Write(0x320, 0x05); // LVT timer with an illegal vector, then let it fire
        m.Write(0x380, 10);
        m.Advance(100);
        m.Write(0x280, 0);
        Assert.That(m.Read(0x280), Is.EqualTo(LocalApic.ErrorIllegalRegisterAddress | LocalApic.ErrorReceiveIllegalVector));
        m.Write(0x280, 0);
        Assert.That(m.Read(0x280), Is.Zero, "a second write clears it");
    }

    [Test]
    public void OneShotTimerCountsDownAtTheDividedBusClock()
    {
        // SDM 11.5.4: the count decrements at the bus clock divided by the divide configuration; in one-shot mode it
        // interrupts once at zero and stays at zero. Bus clock 1 GHz: 1 ns per tick.
        var m = new ApicTestMachine();
        m.Enable();
        m.Write(0x3E0, 0x3); // divide by 16
        m.Write(0x320, 0x40);
        m.Write(0x380, 1000);
        Assert.That(m.Read(0x380), Is.EqualTo(1000u));
        m.Advance(8000);
        Assert.That(m.Read(0x390), Is.EqualTo(500u));
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False);
        m.Advance(7999);
        Assert.That(m.Read(0x390), Is.EqualTo(1u));
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False);
        m.Advance(1);
        Assert.That(m.Read(0x390), Is.Zero);
        Assert.That(m.Ack(), Is.EqualTo(0x40));
        m.Eoi();
        m.Advance(1_000_000);
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False, "one-shot fires once");
        Assert.That(m.Read(0x390), Is.Zero);
    }

    [Test]
    public void PeriodicTimerReloadsFromTheInitialCount()
    {
        var m = new ApicTestMachine();
        m.Enable();
        m.Write(0x3E0, 0xB); // divide by 1
        m.Write(0x320, (1u << 17) | 0x41);
        m.Write(0x380, 250);
        for (int period = 1; period <= 4; period++)
        {
            m.Advance(249);
            Assert.That(m.Bsp.HasPendingInterrupt, Is.False, $"period {period} not over");
            Assert.That(m.Read(0x390), Is.EqualTo(1u));
            m.Advance(1);
            Assert.That(m.Ack(), Is.EqualTo(0x41), $"period {period}");
            Assert.That(m.Read(0x390), Is.EqualTo(250u), "reloaded");
            m.Eoi();
        }

        m.Write(0x380, 0);
        m.Advance(10_000);
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False, "an initial count of 0 stops the timer");
    }

    [TestCase(0x0u, 2)]
    [TestCase(0x1u, 4)]
    [TestCase(0x2u, 8)]
    [TestCase(0x3u, 16)]
    [TestCase(0x8u, 32)]
    [TestCase(0x9u, 64)]
    [TestCase(0xAu, 128)]
    [TestCase(0xBu, 1)]
    public void DivideConfigurationFollowsSdmFigure11_10(uint dcr, int divisor)
    {
        var m = new ApicTestMachine();
        m.Enable();
        m.Write(0x3E0, dcr);
        m.Write(0x320, 0x42);
        m.Write(0x380, 100);
        m.Advance(100L * divisor - 1);
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False);
        m.Advance(1);
        Assert.That(m.Ack(), Is.EqualTo(0x42));
    }

    [Test]
    public void MaskedTimerCountsWithoutInterrupting()
    {
        var m = new ApicTestMachine();
        m.Enable();
        m.Write(0x3E0, 0xB);
        m.Write(0x320, 0x1_0043);
        m.Write(0x380, 100);
        m.Advance(40);
        Assert.That(m.Read(0x390), Is.EqualTo(60u));
        m.Advance(100);
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False);
        Assert.That(m.Read(0x390), Is.Zero);
    }

    [Test]
    public void ChangingTheDividerKeepsTheCurrentCount()
    {
        var m = new ApicTestMachine();
        m.Enable();
        m.Write(0x3E0, 0xB);
        m.Write(0x320, 0x44);
        m.Write(0x380, 100);
        m.Advance(40);
        m.Write(0x3E0, 0x0); // now divide by 2: 60 ticks left take 120 ns
        Assert.That(m.Read(0x390), Is.EqualTo(60u));
        m.Advance(119);
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False);
        m.Advance(1);
        Assert.That(m.Ack(), Is.EqualTo(0x44));
    }

    [Test]
    public void IpisReachTheirDestinations()
    {
        // SDM 11.6.1-11.6.2: physical destination = APIC ID (0xFF all); shorthands self, all, all-but-self.
        var m = new ApicTestMachine(vcpus: 3);
        for (int i = 0; i < 3; i++)
        {
            m.Enable(i);
        }

        m.Write(0x310, 2u << 24);
        m.Write(0x300, 0x60);
        Assert.That(new[] { m.IrrBit(0x60, 0), m.IrrBit(0x60, 1), m.IrrBit(0x60, 2) }, Is.EqualTo(new[] { false, false, true }));
        m.Write(0x300, (3u << 18) | 0x61, vcpu: 1);
        Assert.That(new[] { m.IrrBit(0x61, 0), m.IrrBit(0x61, 1), m.IrrBit(0x61, 2) }, Is.EqualTo(new[] { true, false, true }));
        m.Write(0x300, (2u << 18) | 0x62, vcpu: 1);
        Assert.That(new[] { m.IrrBit(0x62, 0), m.IrrBit(0x62, 1), m.IrrBit(0x62, 2) }, Is.EqualTo(new[] { true, true, true }));
        m.Write(0x310, 0xFFu << 24);
        m.Write(0x300, 0x63);
        Assert.That(new[] { m.IrrBit(0x63, 0), m.IrrBit(0x63, 1), m.IrrBit(0x63, 2) }, Is.EqualTo(new[] { true, true, true }));
        Assert.That(m.Read(0x300) & (1u << 12), Is.Zero, "delivery status idle");
        Assert.That(m.Control.Notifications[2], Is.GreaterThan(0));
    }

    [Test]
    public void LogicalDestinationsUseFlatAndClusterModels()
    {
        // SDM 11.6.2.2: flat model: LDR[31:24] AND MDA != 0; cluster model: MDA[7:4] = LDR[31:28] and the low
        // nibbles intersect.
        var m = new ApicTestMachine(vcpus: 3);
        for (int i = 0; i < 3; i++)
        {
            m.Enable(i);
            m.Write(0xD0, (1u << i) << 24, i);
        }

        m.Write(0x310, 0x06u << 24);
        m.Write(0x300, (1u << 11) | 0x70);
        Assert.That(new[] { m.IrrBit(0x70, 0), m.IrrBit(0x70, 1), m.IrrBit(0x70, 2) }, Is.EqualTo(new[] { false, true, true }));

        for (int i = 0; i < 3; i++)
        {
            m.Write(0xE0, 0x0FFF_FFFF, i); // cluster model
        }

        m.Write(0xD0, 0x21u << 24, 0);
        m.Write(0xD0, 0x22u << 24, 1);
        m.Write(0xD0, 0x31u << 24, 2);
        m.Write(0x310, 0x23u << 24);
        m.Write(0x300, (1u << 11) | 0x71);
        Assert.That(new[] { m.IrrBit(0x71, 0), m.IrrBit(0x71, 1), m.IrrBit(0x71, 2) }, Is.EqualTo(new[] { true, true, false }));
    }

    [Test]
    public void LowestPriorityPicksTheLowestProcessorPriority()
    {
        var m = new ApicTestMachine(vcpus: 3);
        for (int i = 0; i < 3; i++)
        {
            m.Enable(i);
        }

        m.Write(0x80, 0x30, 0);
        m.Write(0x80, 0x10, 1);
        m.Write(0x80, 0x20, 2);
        m.Write(0x310, 0xFFu << 24);
        m.Write(0x300, (1u << 8) | 0x72);
        Assert.That(new[] { m.IrrBit(0x72, 0), m.IrrBit(0x72, 1), m.IrrBit(0x72, 2) }, Is.EqualTo(new[] { false, true, false }));
    }

    [Test]
    public void InitAndStartupIpisReachTheTargetVcpu()
    {
        var m = new ApicTestMachine(vcpus: 2);
        m.Enable();
        m.Enable(1);
        m.Write(0x80, 0x20, 1);
        m.Write(0x310, 1u << 24);
        m.Write(0x300, 0x0000_C500); // INIT, level assert
        Assert.That(m.Bus.LocalApics[1].TakeStartupRequest(), Is.EqualTo(new StartupRequest(StartupRequestKind.Init, 0)));
        Assert.That(m.Read(0x80, 1), Is.Zero, "INIT resets the target's APIC");
        Assert.That(m.Read(0x20, 1), Is.EqualTo(0x0100_0000u), "but keeps its ID");
        m.Write(0x300, 0x0000_8500); // INIT level de-assert: no effect
        Assert.That(m.Bus.LocalApics[1].TakeStartupRequest().Kind, Is.EqualTo(StartupRequestKind.None));
        m.Write(0x300, 0x0000_0609); // start-up at page 9
        Assert.That(m.Bus.LocalApics[1].TakeStartupRequest(), Is.EqualTo(new StartupRequest(StartupRequestKind.Startup, 9)));
        Assert.That(m.Bus.LocalApics[0].TakeStartupRequest().Kind, Is.EqualTo(StartupRequestKind.None));
        m.Write(0x300, 0x0000_0400); // NMI
        Assert.That(m.Bus.LocalApics[1].TakeNmi(), Is.True);
        Assert.That(m.Bus.LocalApics[1].TakeNmi(), Is.False, "taken once");
    }

    [Test]
    public void PicPassesThroughLint0InVirtualWireMode()
    {
        var m = new ApicTestMachine(withPic: true);
        DualPic pic = m.Pic!;
        InitPic(m);
        lock (m.IoLock.Sync)
        {
            pic.GetLine(4).SetLevel(true);
        }

        Assert.That(m.Bsp.HasPendingInterrupt, Is.True, "LINT0 is ExtINT at reset: the 8259 reaches the BSP");
        Assert.That(m.Control.Notifications[0], Is.EqualTo(1));
        Assert.That(m.Bsp.AcknowledgeInterrupt(), Is.EqualTo(0x24), "the vector from the 8259's INTA");
        Assert.That(m.Read(0x100 + 0x10), Is.Zero, "ExtINT does not use the ISR");
        OutPic(m, 0x20, 0x20);
        lock (m.IoLock.Sync)
        {
            pic.GetLine(4).SetLevel(false);
        }

        m.Enable();
        m.Write(0x350, 0x1_0700); // mask LINT0
        lock (m.IoLock.Sync)
        {
            pic.GetLine(4).SetLevel(true);
        }

        Assert.That(m.Bsp.HasPendingInterrupt, Is.False, "masked LINT0 blocks the 8259");
        Assert.That(m.Bsp.TrySetApicBase(0xFEE0_0000), Is.True, "hardware-disable the APIC");
        Assert.That(m.Bsp.ApicBase, Is.EqualTo(0xFEE0_0100UL), "BSP bit is read-only");
        Assert.That(m.Bsp.HasPendingInterrupt, Is.True, "without an APIC the CPU sees INTR directly");
        Assert.That(m.Bsp.AcknowledgeInterrupt(), Is.EqualTo(0x24));
    }

    [Test]
    public void Lint0InFixedModeTurnsThePicEdgeIntoAVector()
    {
        var m = new ApicTestMachine(withPic: true);
        InitPic(m);
        m.Enable();
        m.Write(0x350, 0x58);
        lock (m.IoLock.Sync)
        {
            m.Pic!.GetLine(3).SetLevel(true);
        }

        Assert.That(m.Ack(), Is.EqualTo(0x58));
    }

    [Test]
    public void ApicBaseRejectsReservedBits()
    {
        var m = new ApicTestMachine();
        Assert.Multiple(() =>
        {
            Assert.That(m.Bsp.TrySetApicBase(0xFEE0_0901), Is.False, "bits 7:0");
            Assert.That(m.Bsp.TrySetApicBase(0xFEE0_0A00), Is.False, "bit 9");
            Assert.That(m.Bsp.TrySetApicBase(0xFEE0_0C00), Is.False, "bit 10 (x2APIC not offered)");
            Assert.That(m.Bsp.TrySetApicBase(0x0010_0000_FEE0_0800), Is.False, "above 52 address bits");
            Assert.That(m.Bsp.TrySetApicBase(0xFED0_0800), Is.True, "relocation is accepted");
        });
        Assert.That(m.Bsp.ApicBase, Is.EqualTo(0xFED0_0900UL));
    }

    [Test]
    public void MmioReachesTheAccessingVcpusApic()
    {
        var m = new ApicTestMachine(vcpus: 2);
        try
        {
            CurrentVcpu.Index = 1;
            Assert.That(m.Bus.LocalApicMmio.Read(0x20, 4), Is.EqualTo(0x0100_0000UL));
            Assert.That(m.Bus.LocalApicMmio.Read(0x23, 1), Is.EqualTo(0x01UL), "byte 3 of the ID register");
            m.Bus.LocalApicMmio.Write(0x80, 4, 0x33);
            CurrentVcpu.Index = 0;
            Assert.That(m.Bus.LocalApicMmio.Read(0x20, 4), Is.Zero);
            Assert.That(m.Bus.LocalApicMmio.Read(0x80, 4), Is.Zero);
            Assert.That(m.Read(0x80, 1), Is.EqualTo(0x33u));
        }
        finally
        {
            CurrentVcpu.Index = 0;
        }
    }

    private static void InitPic(ApicTestMachine m)
    {
        OutPic(m, 0x20, 0x11);
        OutPic(m, 0x21, 0x20);
        OutPic(m, 0x21, 0x04);
        OutPic(m, 0x21, 0x01);
        OutPic(m, 0x21, 0x00);
    }

    private static void OutPic(ApicTestMachine m, int port, byte value)
    {
        lock (m.IoLock.Sync)
        {
            m.Pic!.Master.WriteRegister(port & 1, value);
        }
    }
}
