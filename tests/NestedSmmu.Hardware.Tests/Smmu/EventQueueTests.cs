namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>The event queue (IHI 0070 3.5, 7.2, 7.4): slots, wrap, overflow, interrupts, aborts.</summary>
public class EventQueueTests
{
    private static void BadSte(SmmuHarness h, uint sid) => h.Translate(sid, 0x1000).Event.Type.ShouldBe(EventType.C_BAD_STE);

    [Fact]
    public void RecordsGoToConsecutiveSlotsAndProdWraps()
    {
        var h = new SmmuHarness(eventqLog2: 2); // 4 entries
        for (uint sid = 1; sid <= 3; sid++) BadSte(h, sid);
        h.Read(SmmuRegister.EVENTQ_PROD_PAGE1).ShouldBe(3u);
        h.Read(SmmuRegister.EVENTQ_PROD).ShouldBe(3u); // page-0 alias
        for (uint i = 0; i < 3; i++)
            h.Memory.ReadUInt64(SmmuHarness.EventqBase + i * 32).ShouldBe(Evt.W0(Evt.C_BAD_STE, i + 1));
        h.TakeEvents().Count.ShouldBe(3);
        h.Read(SmmuRegister.EVENTQ_CONS_PAGE1).ShouldBe(3u);
        for (uint sid = 4; sid <= 6; sid++) BadSte(h, sid);
        // Slots 3, 0, 1: PROD is index 2 with the wrap bit (bit LOG2SIZE) toggled.
        h.Read(SmmuRegister.EVENTQ_PROD_PAGE1).ShouldBe(0b110u);
        h.Memory.ReadUInt64(SmmuHarness.EventqBase + 3 * 32).ShouldBe(Evt.W0(Evt.C_BAD_STE, 4));
        h.Memory.ReadUInt64(SmmuHarness.EventqBase + 0 * 32).ShouldBe(Evt.W0(Evt.C_BAD_STE, 5));
        h.Memory.ReadUInt64(SmmuHarness.EventqBase + 1 * 32).ShouldBe(Evt.W0(Evt.C_BAD_STE, 6));
        h.TakeEvents().Select(e => e.SID).ShouldBe([4u, 5u, 6u]);
        h.Smmu.Counters.EventsWritten.ShouldBe(6);
    }

    [Fact]
    public void FullQueueLosesEventsAndTogglesOverflowOnce()
    {
        var h = new SmmuHarness(eventqLog2: 1); // 2 entries
        BadSte(h, 1);
        BadSte(h, 2);
        var lost = h.Translate(3, 0x1000);
        lost.Status.ShouldBe(TranslationStatus.Fault);
        lost.Recorded.ShouldBeFalse();
        uint prod = h.Read(SmmuRegister.EVENTQ_PROD_PAGE1);
        (prod & SmmuHarness.Q_OVFLG).ShouldBe(SmmuHarness.Q_OVFLG);
        (prod & 3).ShouldBe(0b10u); // index 0, wrap 1: full
        BadSte(h, 4); // still full: OVFLG stays set (only a new overflow toggles it)
        (h.Read(SmmuRegister.EVENTQ_PROD_PAGE1) & SmmuHarness.Q_OVFLG).ShouldBe(SmmuHarness.Q_OVFLG);
        h.TakeEvents().Select(e => e.SID).ShouldBe([1u, 2u]);
        // The consumer acknowledged with OVACKFLG = OVFLG; the next overflow toggles OVFLG back to 0.
        (h.Read(SmmuRegister.EVENTQ_CONS_PAGE1) & SmmuHarness.Q_OVFLG).ShouldBe(SmmuHarness.Q_OVFLG);
        BadSte(h, 5);
        BadSte(h, 6);
        h.Translate(7, 0x1000).Recorded.ShouldBeFalse();
        (h.Read(SmmuRegister.EVENTQ_PROD_PAGE1) & SmmuHarness.Q_OVFLG).ShouldBe(0u);
        h.TakeEvents().Select(e => e.SID).ShouldBe([5u, 6u]);
        h.Smmu.Counters.EventsLost.ShouldBe(3);
    }

    [Fact]
    public void DisabledQueueRecordsNothing()
    {
        var h = new SmmuHarness(enable: false);
        h.Write(SmmuRegister.CR0, SmmuHarness.CR0_SMMUEN);
        h.Translate(1, 0x1000).Recorded.ShouldBeFalse();
        h.Read(SmmuRegister.EVENTQ_PROD_PAGE1).ShouldBe(0u);
        h.Memory.ReadUInt64(SmmuHarness.EventqBase).ShouldBe(0UL);
    }

    [Fact]
    public void WiredInterruptPerRecordedEvent()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, Msi = false });
        var raised = new List<SmmuInterrupt>();
        h.Smmu.InterruptRaised += raised.Add;
        BadSte(h, 1);
        raised.ShouldBeEmpty(); // IRQ_CTRL.EVENTQ_IRQEN = 0
        h.Write(SmmuRegister.IRQ_CTRL, SmmuV3.IRQ_CTRL_EVENTQ_IRQEN);
        h.Read(SmmuRegister.IRQ_CTRLACK).ShouldBe(SmmuV3.IRQ_CTRL_EVENTQ_IRQEN);
        BadSte(h, 2);
        raised.ShouldBe([SmmuInterrupt.EventQueue]);
    }

    [Fact]
    public void MsiWritesTheConfiguredDataToTheConfiguredAddress()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, Msi = true });
        const ulong doorbell = 0x0800_0040;
        h.Write64(SmmuRegister.EVENTQ_IRQ_CFG0, doorbell | 0x3); // ADDR [51:2]: low bits dropped
        h.Write(SmmuRegister.EVENTQ_IRQ_CFG1, 0xCAFE_0042);
        h.Read64(SmmuRegister.EVENTQ_IRQ_CFG0).ShouldBe(doorbell);
        h.Write(SmmuRegister.IRQ_CTRL, SmmuV3.IRQ_CTRL_EVENTQ_IRQEN);
        var raised = new List<SmmuInterrupt>();
        h.Smmu.InterruptRaised += raised.Add;
        BadSte(h, 1);
        SmmuHarness.ReadLe32(h.Memory, doorbell).ShouldBe(0xCAFE_0042u);
        raised.ShouldBeEmpty("an MSI replaces the wired interrupt");
        h.Smmu.Counters.MsiWrites.ShouldBe(1);
    }

    [Fact]
    public void EventQueueWriteAbortRaisesEventqAbtErr()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, Msi = true });
        h.Memory.AddAbortRange(SmmuHarness.EventqBase, 0x1000);
        h.Write64(SmmuRegister.GERROR_IRQ_CFG0, 0x0800_0080);
        h.Write(SmmuRegister.GERROR_IRQ_CFG1, 0x77);
        h.Write(SmmuRegister.IRQ_CTRL, SmmuV3.IRQ_CTRL_GERROR_IRQEN);
        h.Translate(1, 0x1000).Recorded.ShouldBeFalse();
        uint gerror = h.Read(SmmuRegister.GERROR), gerrorn = h.Read(SmmuRegister.GERRORN);
        (gerror ^ gerrorn).ShouldBe(SmmuV3.GERROR_EVENTQ_ABT_ERR);
        SmmuHarness.ReadLe32(h.Memory, 0x0800_0080).ShouldBe(0x77u);
        h.Read(SmmuRegister.EVENTQ_PROD_PAGE1).ShouldBe(0u, "PROD does not advance over an aborted write");
        h.Write(SmmuRegister.GERRORN, gerror); // acknowledge
        h.Smmu.GlobalErrors.ShouldBe(0u);
    }
}
