using NestedSmmu.Guest.Cmdqv;
using NestedSmmu.Guest.Dma;
using NestedSmmu.Guest.Smmu;
using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Guest.Tests.Cmdqv;

public sealed class CmdqvGuestTests
{
    private const ulong CmdqvBase = 0x0908_0000;
    private const uint CmdqvIrq = 0x90 + 112 + 32;

    private sealed record Machine(GuestRig Rig, Tegra241Cmdqv Model, Tegra241CmdqvDriver Driver);

    private static Machine Boot(bool guestOwned = true, bool wireIrq = false, Action<Tegra241Cmdqv>? host = null)
    {
        var rig = new GuestRig(new SmmuFeatures { Ats = true }).Boot();
        var model = new Tegra241Cmdqv(rig.Smmu, rig.Memory, Tegra241CmdqvOptions.QemuGuest);
        host?.Invoke(model);
        rig.Bus.Map(CmdqvBase, guestOwned ? new GuestOwnedVintf0(model, vmid: 0) : model, "tegra241-cmdqv");
        var driver = new Tegra241CmdqvDriver("NVDA200C:00", rig.Bus, CmdqvBase, wireIrq ? CmdqvIrq : null, rig.Driver);
        if (wireIrq) model.ErrorRaised += _ => driver.HandleInterrupt();
        driver.Probe().ShouldBeTrue(string.Join('\n', rig.Log.Entries));
        return new Machine(rig, model, driver);
    }

    [Fact]
    public void Probe_enables_vintf0_and_both_logical_queues_with_their_bases_in_guest_ram()
    {
        var m = Boot();
        m.Driver.NumVintfs.ShouldBe(1);
        m.Driver.NumVcmdqs.ShouldBe(2);
        m.Driver.HypOwn.ShouldBeFalse();
        m.Model.Enabled.ShouldBeTrue();
        for (int q = 0; q < 2; q++)
        {
            uint alloc = (uint)m.Model.Read(L.CmdqAlloc(q), 4);
            alloc.ShouldBe(Tegra241Cmdqv.EncodeCmdqAlloc(0, q, allocated: true));
            m.Model.Read(L.Vcmdq(q, VcmdqPage0Register.STATUS), 4).ShouldBe((ulong)Tegra241Cmdqv.VCMDQ_ENABLED);
            var lq = m.Driver.Lvcmdqs[q].ShouldNotBeNull();
            m.Model.Read(L.Vcmdq(q, VcmdqPage1Register.BASE), 8).ShouldBe(Tegra241Cmdqv.EncodeVcmdqBase(lq.BaseAddress, lq.Log2Entries));
        }
        m.Rig.Driver.SecondaryQueues.ShouldBeSameAs(m.Driver);
        m.Rig.Log.Entries.ShouldContain(e => e.Message.Contains("no interrupt. errors will not be reported"));
    }

    [Fact]
    public void Guest_owned_vintf_takes_invalidations_and_the_smmu_queue_keeps_configuration()
    {
        var m = Boot();
        var rig = m.Rig;
        long cfgiBefore = rig.Driver.SmmuQueueCounters.ByOpcode.GetValueOrDefault(CommandOpcode.CFGI_STE);
        var master = rig.Driver.AddMaster("nvme0", 0x08);
        var dev = new DmaDevice(rig.Driver, master);
        var ep = rig.Endpoint("nvme0", 0x08);
        var map = dev.Map(GuestRig.BufferBase, 0x2000).ShouldNotBeNull();
        ep.Write(map.Iova + 0x1000, GuestRig.Pattern(16, 1)).IsSuccess.ShouldBeTrue();
        rig.ReadRam(GuestRig.BufferBase + 0x1000, 16).ShouldBe(GuestRig.Pattern(16, 1));
        rig.Smmu.Tlb.Count.ShouldBeGreaterThan(0);
        dev.Unmap(map).ShouldBeTrue();
        rig.Smmu.Tlb.Count.ShouldBe(0);
        ep.Write(map.Iova + 0x1000, new byte[4]).IsSuccess.ShouldBeFalse();
        rig.Driver.ProcessEvents().ShouldHaveSingleItem().StreamId.ShouldBe(0x08u);

        var direct = m.Driver.DirectCounters;
        direct.ByOpcode[CommandOpcode.TLBI_NH_VA].ShouldBe(1);
        direct.Batches.ShouldBe(1);
        direct.Syncs.ShouldBe(1);
        rig.Driver.SmmuQueueCounters.ByOpcode.ContainsKey(CommandOpcode.TLBI_NH_VA).ShouldBeFalse();
        // CFGI_CD and CFGI_STE are not for a guest VINTF: they stayed on the SMMU's queue.
        direct.ByOpcode.ContainsKey(CommandOpcode.CFGI_STE).ShouldBeFalse();
        rig.Driver.SmmuQueueCounters.ByOpcode[CommandOpcode.CFGI_STE].ShouldBeGreaterThan(cfgiBefore);
        m.Model.Counters.CommandsRejected.ShouldBe(0);
        m.Model.Counters.CommandsExecuted.ShouldBe(2); // the TLBI and its CMD_SYNC
    }

    [Fact]
    public void A_hypervisor_owned_vintf_carries_every_command()
    {
        var m = Boot(guestOwned: false);
        m.Driver.HypOwn.ShouldBeTrue();
        m.Rig.Driver.AddMaster("dev", 0x30).ShouldNotBeNull();
        m.Rig.Driver.AttachBypass(m.Rig.Driver.Masters.Single());
        m.Driver.DirectCounters.ByOpcode[CommandOpcode.CFGI_STE].ShouldBeGreaterThan(0);
    }

    [Fact]
    public void Atc_inv_needs_the_hosts_sid_slot_without_it_the_queue_stops_and_the_guest_recovers()
    {
        var m = Boot();
        var rig = m.Rig;
        var master = rig.Driver.AddMaster("gpu", 0x40, ats: true);
        var dev = new DmaDevice(rig.Driver, master);
        var map = dev.Map(GuestRig.BufferBase, 0x1000).ShouldNotBeNull();
        // No SID_MATCH slot for vSID 0x40: the CMDQV stops the queue on the ATC_INV.
        dev.Unmap(map).ShouldBeTrue();
        var err = m.Driver.Errors.ShouldHaveSingleItem();
        err.Command.Opcode.ShouldBe(CommandOpcode.ATC_INV);
        m.Model.Counters.UnmatchedSids.ShouldBe(1);
        rig.Log.Errors.ShouldContain(e => e.Message.Contains("skipping command in error state"));
        // Acknowledged: the queue runs again.
        m.Model.Read(L.Vcmdq(0, VcmdqPage0Register.GERROR), 4).ShouldBe(m.Model.Read(L.Vcmdq(0, VcmdqPage0Register.GERRORN), 4));
        // The next flush runs: its TLBI completes; its ATC_INV stops the queue again, is skipped, and the sync completes.
        rig.Driver.InvalidateAsid(dev.Domain).ShouldBeTrue();
        m.Driver.DirectCounters.ByOpcode[CommandOpcode.TLBI_NH_ASID].ShouldBe(1);
        m.Driver.Errors.Count.ShouldBe(2);
    }

    [Fact]
    public void With_the_hosts_sid_slot_atc_inv_through_the_vcmdq_clears_the_endpoints_atc()
    {
        var m = Boot(host: model =>
        {
            // The host kernel's vDEVICE: slot 0 maps vSID 0x40 to pSID 0x40.
            model.Write(L.SidReplace(0, 0), 4, Tegra241Cmdqv.EncodeSidReplace(0x40));
            model.Write(L.SidMatch(0, 0), 4, Tegra241Cmdqv.EncodeSidMatch(0x40));
        });
        var rig = m.Rig;
        var dev = new DmaDevice(rig.Driver, rig.Driver.AddMaster("gpu", 0x40, ats: true));
        var ep = rig.Endpoint("gpu", 0x40, ats: true);
        ep.AtsEnabled = true;
        var map = dev.Map(GuestRig.BufferBase, 0x1000).ShouldNotBeNull();
        ep.Write(map.Iova, new byte[4]).IsSuccess.ShouldBeTrue();
        ep.Atc.Count.ShouldBe(1);
        dev.Unmap(map).ShouldBeTrue();
        ep.Atc.Count.ShouldBe(0);
        m.Driver.Errors.ShouldBeEmpty();
        m.Driver.DirectCounters.ByOpcode[CommandOpcode.ATC_INV].ShouldBe(1);
    }

    [Fact]
    public void The_interrupt_handler_reads_the_error_maps_and_acknowledges()
    {
        var m = Boot(wireIrq: true);
        var rig = m.Rig;
        var dev = new DmaDevice(rig.Driver, rig.Driver.AddMaster("gpu", 0x40, ats: true));
        var map = dev.Map(GuestRig.BufferBase, 0x1000).ShouldNotBeNull();
        dev.Unmap(map);
        m.Driver.InterruptsHandled.ShouldBe(1);
        m.Driver.Errors.ShouldHaveSingleItem().Error.ShouldBe(CommandError.CERROR_ILL);
        rig.Log.Entries.ShouldContain(e => e.Message.StartsWith("unexpected error reported. vintf_map: 0000000000000001"));
        m.Model.Read((ulong)CmdqvRegister.VINTF_ERR_MAP, 4).ShouldBe(0UL);
    }

    [Fact]
    public void Each_cpu_uses_its_own_logical_queue()
    {
        var m = Boot();
        var dev = new DmaDevice(m.Rig.Driver, m.Rig.Driver.AddMaster("nvme0", 0x08));
        m.Driver.CurrentCpu = 1;
        dev.FlushAll().ShouldBeTrue();
        m.Driver.Lvcmdqs[1]!.Counters.ByOpcode[CommandOpcode.TLBI_NH_ASID].ShouldBe(1);
        m.Driver.Lvcmdqs[0]!.Counters.Batches.ShouldBe(0);
        m.Model.QueueCounters(1).CommandsExecuted.ShouldBe(2);
        m.Driver.BypassVcmdq = true;
        dev.FlushAll().ShouldBeTrue();
        m.Rig.Driver.SmmuQueueCounters.ByOpcode[CommandOpcode.TLBI_NH_ASID].ShouldBe(1);
    }

    [Fact]
    public void A_mixed_command_list_is_split_where_the_queue_cannot_carry_the_next_command()
    {
        // arm_smmu_cmdq_batch_add: a batch stays on its queue while that queue supports the next command;
        // the SMMU's queue supports everything, so once a batch moved there it stays there.
        var m = Boot();
        var main = m.Rig.Driver.SmmuQueueCounters;
        long batches = main.Batches, commands = main.Commands;
        m.Rig.Driver.IssueCommandsWithSync([Command.TlbiNhAsid(0, 5), Command.TlbiNhVa(0, 5, 0x1000, leaf: true), Command.CfgiSte(2), Command.TlbiNhAsid(0, 6)]).ShouldBeTrue();
        (main.Batches - batches).ShouldBe(1);
        (main.Commands - commands).ShouldBe(2);
        var direct = m.Driver.DirectCounters;
        direct.Batches.ShouldBe(1);
        direct.Commands.ShouldBe(2);
        direct.Syncs.ShouldBe(1);
    }
}
