using NestedSmmu.Guest.Dma;
using NestedSmmu.Guest.Smmu;
using NestedSmmu.Hardware.Smmu;
using SmmuDevice = NestedSmmu.Hardware.Smmu.SmmuV3;

namespace NestedSmmu.Guest.Tests.Smmu;

/// <summary>Event-queue overflow, GERROR handling and tracing of the guest SMMUv3 driver.</summary>
public sealed class EventAndErrorTests
{
    [Fact]
    public void An_event_queue_overflow_is_reported_once_and_acknowledged()
    {
        var rig = new GuestRig(options: new ArmSmmuV3Options { EvtqLog2Entries = 2 }).Boot();
        _ = new DmaDevice(rig.Driver, rig.Driver.AddMaster("dev", 0x11)); // a stage-1 domain with nothing mapped
        var ep = rig.Endpoint("dev", 0x11);
        // Four entries hold four records; the fifth and sixth fault are lost.
        for (int i = 0; i < 6; i++) ep.Write(0x10_0000UL + (ulong)i * 0x1000, new byte[4]).IsSuccess.ShouldBeFalse();
        rig.Smmu.Counters.EventsLost.ShouldBe(2);
        rig.Driver.ProcessEvents().Count.ShouldBe(4);
        rig.Driver.EventsLostReported.ShouldBe(1);
        rig.Log.Errors.ShouldContain(e => e.Message == "EVTQ overflow detected -- events lost");
        // Acknowledged: the next fault is recorded and no new overflow is reported.
        ep.Write(0x20_0000, new byte[4]).IsSuccess.ShouldBeFalse();
        rig.Driver.ProcessEvents().ShouldHaveSingleItem().Device.ShouldBe("dev");
        rig.Driver.EventsLostReported.ShouldBe(1);
    }

    [Fact]
    public void An_event_queue_write_abort_is_a_global_error_the_driver_acknowledges()
    {
        var rig = new GuestRig().Boot();
        _ = new DmaDevice(rig.Driver, rig.Driver.AddMaster("dev", 0x12));
        // Take the event queue's memory away: the SMMU's record write aborts (GERROR.EVENTQ_ABT_ERR).
        ulong evtq = rig.Smmu.ReadRegister(SmmuRegister.EVENTQ_BASE) & 0x000F_FFFF_FFFF_FFE0;
        rig.Memory.AddAbortRange(evtq, 0x1000);
        rig.Endpoint("dev", 0x12).Write(0x1000, new byte[4]).IsSuccess.ShouldBeFalse();
        rig.Smmu.GlobalErrors.ShouldBe(SmmuDevice.GERROR_EVENTQ_ABT_ERR);
        rig.Driver.HandleGlobalErrors().ShouldBe(SmmuDevice.GERROR_EVENTQ_ABT_ERR);
        rig.Smmu.GlobalErrors.ShouldBe(0u);
        rig.Log.Errors.ShouldContain(e => e.Message.Contains("EVTQ write aborted"));
        rig.Driver.HandleGlobalErrors().ShouldBe(0u);
    }

    [Fact]
    public void The_trace_shows_register_accesses_and_commands()
    {
        var rig = new GuestRig();
        var lines = new List<string>();
        rig.Driver.Trace = lines.Add;
        rig.Boot();
        lines.ShouldContain($"mmio R4 0x{GuestRig.SmmuBase:X} = 0x{rig.Smmu.Features.Idr0:X8}");
        lines.ShouldContain(l => l.StartsWith("cmdq: TLBI_NSNH_ALL"));
        lines.ShouldContain(l => l.StartsWith("cmdq: CMD_SYNC"));
    }
}
