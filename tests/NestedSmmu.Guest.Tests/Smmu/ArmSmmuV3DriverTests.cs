using NestedSmmu.Guest.Smmu;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using SmmuDevice = NestedSmmu.Hardware.Smmu.SmmuV3;

namespace NestedSmmu.Guest.Tests.Smmu;

/// <summary>Probe, reset, stream tables and STEs of the guest SMMUv3 driver against Hardware's SMMUv3 model.</summary>
public sealed class ArmSmmuV3DriverTests
{
    [Fact]
    public void Probe_decodes_the_id_registers_the_model_reports()
    {
        var features = new SmmuFeatures { Ats = true, Ril = false, SidBits = 12, SsidBits = 0, OasBits = 48, CmdqLog2Max = 10 };
        var rig = new GuestRig(features);
        rig.Driver.Probe().ShouldBeTrue();
        rig.Driver.Features.ShouldBe(SmmuFeatures.FromIdrs(features.Idr0, features.Idr1, features.Idr3, features.Idr5));
        rig.Driver.Features.Ril.ShouldBeFalse();
        rig.Driver.Features.SidBits.ShouldBe(12);
    }

    [Fact]
    public void Probe_refuses_an_smmu_without_stage_1()
    {
        var rig = new GuestRig(new SmmuFeatures { Stage1 = false });
        rig.Driver.Probe().ShouldBeFalse();
        rig.Log.Errors.ShouldContain(e => e.Message.Contains("stage-1"));
    }

    [Fact]
    public void Reset_enables_the_queues_and_translation_and_points_at_a_two_level_table()
    {
        var rig = new GuestRig().Boot();
        rig.Smmu.Enabled.ShouldBeTrue();
        rig.Smmu.CommandQueueEnabled.ShouldBeTrue();
        rig.Smmu.EventQueueEnabled.ShouldBeTrue();
        rig.Driver.TwoLevelStreamTable.ShouldBeTrue();
        ulong cfg = rig.Smmu.ReadRegister(SmmuRegister.STRTAB_BASE_CFG);
        NestedSmmu.Hardware.Bits.Get(cfg, 17, 16).ShouldBe((ulong)SmmuDevice.STRTAB_FMT_2LEVEL);
        NestedSmmu.Hardware.Bits.Get(cfg, 10, 6).ShouldBe(8UL);
        NestedSmmu.Hardware.Bits.Get(cfg, 5, 0).ShouldBe(16UL);
        // CFGI_ALL and TLBI_NSNH_ALL, each with its CMD_SYNC, went through the SMMU's queue.
        rig.Driver.SmmuQueueCounters.ByOpcode[CommandOpcode.CFGI_STE_RANGE].ShouldBe(1);
        rig.Driver.SmmuQueueCounters.ByOpcode[CommandOpcode.TLBI_NSNH_ALL].ShouldBe(1);
        rig.Smmu.CommandQueueError.ShouldBe(CommandError.None);
    }

    [Fact]
    public void Without_st_level_the_stream_table_is_linear_with_abort_stes()
    {
        var rig = new GuestRig(new SmmuFeatures { TwoLevelStreamTable = false, SidBits = 8 }).Boot();
        rig.Driver.TwoLevelStreamTable.ShouldBeFalse();
        NestedSmmu.Hardware.Bits.Get(rig.Smmu.ReadRegister(SmmuRegister.STRTAB_BASE_CFG), 17, 16).ShouldBe((ulong)SmmuDevice.STRTAB_FMT_LINEAR);
        // Every STE is a valid abort: a device nobody attached gets nothing, and no event.
        var ep = rig.Endpoint("stray", 0x42);
        ep.Write(0x1000, new byte[8]).IsSuccess.ShouldBeFalse();
        rig.Driver.ProcessEvents().ShouldBeEmpty();
    }

    [Fact]
    public void A_two_level_table_gets_its_level_2_table_when_a_device_appears()
    {
        var rig = new GuestRig().Boot();
        ulong l1 = rig.Driver.StreamTableBase;
        rig.Memory.ReadUInt64(l1 + 0x12 * 8).ShouldBe(0UL);
        rig.Driver.AddMaster("nic", 0x1234);
        var desc = new L1StreamTableDescriptor(rig.Memory.ReadUInt64(l1 + 0x12 * 8));
        desc.Span.ShouldBe(9u);
        rig.Driver.ReadSte(0x1234).Config.ShouldBe(SteConfig.Abort);
        rig.Driver.ReadSte(0x1234).V.ShouldBeTrue();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Bypass_lets_dma_through_untranslated_and_abort_stops_it(bool twoLevel)
    {
        var rig = new GuestRig(new SmmuFeatures { TwoLevelStreamTable = twoLevel }).Boot();
        var m = rig.Driver.AddMaster("dev", 0x10);
        var ep = rig.Endpoint("dev", 0x10);
        rig.Driver.AttachBypass(m);
        ulong target = GuestRig.BufferBase + 0x3000;
        ep.Write(target, GuestRig.Pattern(16, 1)).IsSuccess.ShouldBeTrue();
        rig.ReadRam(target, 16).ShouldBe(GuestRig.Pattern(16, 1));
        rig.Driver.AttachAbort(m);
        ep.Write(target, GuestRig.Pattern(16, 2)).IsSuccess.ShouldBeFalse();
        rig.ReadRam(target, 16).ShouldBe(GuestRig.Pattern(16, 1));
        rig.Driver.ReadSte(0x10).Config.ShouldBe(SteConfig.Abort);
    }

    [Fact]
    public void Stage_1_ste_points_at_a_cd_with_the_domains_asid_and_tables()
    {
        var rig = new GuestRig().Boot();
        var m = rig.Driver.AddMaster("gpu", 0x20, ats: true);
        var d = rig.Driver.AllocateStage1Domain();
        rig.Driver.AttachStage1(m, d);
        var ste = rig.Driver.ReadSte(0x20);
        ste.Config.ShouldBe(SteConfig.Stage1);
        ste.EATS.ShouldBe(1u);
        ste.S1ContextPtr.ShouldBe(m.CdTable);
        Span<ulong> w = stackalloc ulong[8];
        rig.Memory.ReadUInt64s(m.CdTable, w);
        var cd = ContextDescriptor.FromWords(w);
        cd.V.ShouldBeTrue();
        cd.ASID.ShouldBe(d.Asid);
        cd.TTB0.ShouldBe(d.PageTable.Root);
        d.InputBits.ShouldBe(44); // min(VA_BITS 48, IAS = OAS 44 of the default model)
        cd.T0SZ.ShouldBe(64u - 44);
        cd.R.ShouldBeTrue();
        rig.Driver.SmmuQueueCounters.ByOpcode[CommandOpcode.CFGI_CD].ShouldBe(1);
    }

    [Fact]
    public void An_illegal_command_is_skipped_the_error_acknowledged_and_the_queue_runs_on()
    {
        var rig = new GuestRig(new SmmuFeatures { Ats = false }).Boot();
        // ATC_INV without IDR0.ATS is CERROR_ILL (IHI 0070 4.7.1).
        rig.Driver.IssueCommandsWithSync([Command.AtcInv(1, null, 0, 52), Command.CfgiSte(1)]).ShouldBeTrue();
        rig.Driver.QueueErrors.ShouldHaveSingleItem().Error.ShouldBe(CommandError.CERROR_ILL);
        rig.Driver.QueueErrors[0].Command.Opcode.ShouldBe(CommandOpcode.ATC_INV);
        rig.Log.Errors.ShouldContain(e => e.Message.Contains("Illegal command"));
        rig.Smmu.GlobalErrors.ShouldBe(0u);
        rig.Smmu.CommandQueueError.ShouldBe(CommandError.None);
        rig.Driver.SmmuQueueCounters.Errors.ShouldBe(1);
        rig.Driver.IssueCommandsWithSync([Command.CfgiSte(2)]).ShouldBeTrue();
    }

    [Fact]
    public void A_batch_larger_than_a_tiny_queue_wraps_it_many_times()
    {
        // Four entries: 70 commands (a full batch of 64, then 6 and a sync) go through with PROD/CONS wrapping.
        var rig = new GuestRig(options: new ArmSmmuV3Options { CmdqLog2Entries = 2 }).Boot();
        var cmds = Enumerable.Range(0, 70).Select(i => Command.CfgiSte((uint)i)).ToArray();
        long before = rig.Smmu.Counters.CommandsExecuted;
        rig.Driver.IssueCommandsWithSync(cmds).ShouldBeTrue();
        (rig.Smmu.Counters.CommandsExecuted - before).ShouldBe(71);
        rig.Driver.SmmuQueueCounters.SyncTimeouts.ShouldBe(0);
        rig.Driver.CommandQueue!.Log2Entries.ShouldBe(2);
    }
}
