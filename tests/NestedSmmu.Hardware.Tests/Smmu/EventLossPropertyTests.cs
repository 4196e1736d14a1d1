namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>
/// No fault is dropped silently (IHI 0070 7.4, 3.5.2): with a small event queue and a consumer that
/// reads at random times, every faulting transaction's event is either in the queue, in order, or
/// lost while the queue was full and marked by an overflow (EVENTQ_PROD.OVFLG differs from
/// EVENTQ_CONS.OVACKFLG until the consumer acknowledges). Seeded random schedules.
/// </summary>
public sealed class EventLossPropertyTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Every_fault_is_recorded_in_order_or_lost_with_the_overflow_flag_set(int seed)
    {
        var rng = new Random(seed);
        var h = new SmmuHarness(eventqLog2: rng.Next(1, 4));
        int capacity = 1 << h.EventqLog2;
        // SIDs 0..15 stay invalid (C_BAD_STE, always recorded); SID 16 bypasses (never an event).
        const uint BypassSid = 16;
        h.WriteSte(BypassSid, StreamTableEntry.Create(SteConfig.Bypass));
        var pending = new List<uint>();
        long lost = 0;

        for (int step = 0; step < 2_000; step++)
        {
            int action = rng.Next(10);
            if (action < 6)
            {
                uint sid = (uint)rng.Next(16);
                TranslationResult r = h.Translate(sid, (ulong)rng.Next(1 << 20) << 12);
                r.Status.ShouldBe(TranslationStatus.Fault);
                if (r.Recorded)
                {
                    pending.Count.ShouldBeLessThan(capacity, $"seed {seed} step {step}: recorded into a full queue");
                    pending.Add(sid);
                }
                else
                {
                    lost++;
                    pending.Count.ShouldBe(capacity, $"seed {seed} step {step}: an event was lost while the queue had room");
                    uint prod = h.Read(SmmuRegister.EVENTQ_PROD_PAGE1), cons = h.Read(SmmuRegister.EVENTQ_CONS_PAGE1);
                    (prod & SmmuHarness.Q_OVFLG).ShouldNotBe(cons & SmmuHarness.Q_OVFLG, $"seed {seed} step {step}: a loss without an overflow mark");
                }
            }
            else if (action < 8)
            {
                h.Translate(BypassSid, 0x1000).Status.ShouldBe(TranslationStatus.Success);
            }
            else
            {
                h.TakeEvents().Select(e => e.SID).ShouldBe(pending, $"seed {seed} step {step}: the queue holds every recorded event in order");
                h.TakeEvents().ShouldBeEmpty();
                pending.Clear();
            }
        }
        h.Smmu.Counters.EventsLost.ShouldBe(lost);
        lost.ShouldBeGreaterThan(0, "the schedule filled the queue at least once");
    }
}
