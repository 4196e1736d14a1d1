using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Hardware.Tests.Cmdqv;

/// <summary>What the VCMDQs let through and how they rewrite it: the guest filter, VMID and SID substitution.</summary>
public sealed class CmdqvCommandTests
{
    private const uint SidVm5 = 1, SidVm6 = 2;
    private const ushort Vmid5 = 5, Vmid6 = 6;
    private const ushort Asid = 1;
    private const ulong Va = 0x1000_0000, OtherVa = 0x2000_0000;
    private const int GuestVintf = 1, GuestQueue = 8;

    /// <summary>Two VMs' streams with the same ASID and VA, so only the VMID tells their IOTLB entries apart.</summary>
    private static CmdqvRig RigWithTwoVms()
    {
        var rig = new CmdqvRig();
        rig.AddStage1Stream(SidVm5, Vmid5, Asid);
        rig.AddStage1Stream(SidVm6, Vmid6, Asid);
        rig.MapPage(Va, CmdqvRig.DataPages);
        rig.MapPage(OtherVa, CmdqvRig.DataPages + 0x1000);
        foreach (uint sid in new[] { SidVm5, SidVm6 })
        {
            rig.Translate(sid, Va).IsSuccess.ShouldBeTrue();
            rig.Translate(sid, OtherVa).IsSuccess.ShouldBeTrue();
        }
        rig.TlbHas(Vmid5, Asid, Va).ShouldBeTrue();
        rig.TlbHas(Vmid6, Asid, Va).ShouldBeTrue();
        return rig;
    }

    [Fact]
    public void Guest_tlbi_nh_va_removes_only_its_own_vmid_entry()
    {
        var rig = RigWithTwoVms();
        rig.BringUpGuest(GuestVintf, Vmid5, GuestQueue);

        rig.Submit(GuestQueue, Command.TlbiNhVa(Vmid5, Asid, Va), Command.Sync());

        rig.TlbHas(Vmid5, Asid, Va).ShouldBeFalse();
        rig.TlbHas(Vmid5, Asid, OtherVa).ShouldBeTrue();
        rig.TlbHas(Vmid6, Asid, Va).ShouldBeTrue();
        rig.Cons(GuestQueue).ShouldBe(2u);
        rig.Errors.ShouldBeEmpty();
        rig.Cmdqv.QueueCounters(GuestQueue).CommandsExecuted.ShouldBe(2);
        rig.Cmdqv.VintfCounters(GuestVintf).VmidSubstitutions.ShouldBe(1);
    }

    [Fact]
    public void Guest_tlbi_naming_another_vmid_still_hits_its_own()
    {
        var rig = RigWithTwoVms();
        rig.BringUpGuest(GuestVintf, Vmid5, GuestQueue);

        // The guest writes VMID 6 into the command; the VINTF replaces it with 5.
        rig.Submit(GuestQueue, Command.TlbiNhVa(Vmid6, Asid, Va));

        rig.TlbHas(Vmid6, Asid, Va).ShouldBeTrue();
        rig.TlbHas(Vmid5, Asid, Va).ShouldBeFalse();
        rig.Errors.ShouldBeEmpty();
    }

    [Fact]
    public void Guest_tlbi_nh_asid_is_pinned_to_the_vintf_vmid()
    {
        var rig = RigWithTwoVms();
        rig.BringUpGuest(GuestVintf, Vmid6, GuestQueue);

        rig.Submit(GuestQueue, Command.TlbiNhAsid(Vmid5, Asid));

        rig.TlbHas(Vmid6, Asid, Va).ShouldBeFalse();
        rig.TlbHas(Vmid6, Asid, OtherVa).ShouldBeFalse();
        rig.TlbHas(Vmid5, Asid, Va).ShouldBeTrue();
        rig.TlbHas(Vmid5, Asid, OtherVa).ShouldBeTrue();
    }

    [Fact]
    public void Host_vintf_runs_commands_unchanged()
    {
        var rig = RigWithTwoVms();
        rig.BringUpHost();

        // HYP_OWN = 1: no VMID substitution, and configuration commands are allowed.
        rig.Submit(0, QueueAlias.Global, Command.TlbiNhVa(Vmid6, Asid, Va));
        rig.TlbHas(Vmid6, Asid, Va).ShouldBeFalse();
        rig.TlbHas(Vmid5, Asid, Va).ShouldBeTrue();

        rig.Smmu.CachedStreamCount.ShouldBe(2);
        rig.Submit(0, QueueAlias.Global, Command.CfgiSte(SidVm5), Command.TlbiNhAll(Vmid5), Command.Sync());
        rig.Smmu.CachedStreamCount.ShouldBe(1);
        rig.TlbHas(Vmid5, Asid, OtherVa).ShouldBeFalse();
        rig.Errors.ShouldBeEmpty();
        rig.Cmdqv.VintfCounters(0).CommandsExecuted.ShouldBe(4);
        rig.Cmdqv.VintfCounters(0).VmidSubstitutions.ShouldBe(0);
    }

    public static TheoryData<string> GuestForbidden => new()
    {
        nameof(Command.CfgiSte), nameof(Command.TlbiNhAll), nameof(Command.TlbiNhVaa), nameof(Command.TlbiS12Vmall),
        nameof(Command.TlbiS2Ipa), nameof(Command.TlbiNsnhAll), nameof(Command.CfgiCd), nameof(Command.CfgiAll),
        nameof(Command.PrefetchConfig), nameof(Command.Resume),
    };

    private static Command Forbidden(string name) => name switch
    {
        nameof(Command.CfgiSte) => Command.CfgiSte(SidVm5),
        nameof(Command.TlbiNhAll) => Command.TlbiNhAll(Vmid5),
        nameof(Command.TlbiNhVaa) => Command.TlbiNhVaa(Vmid5, Va),
        nameof(Command.TlbiS12Vmall) => Command.TlbiS12Vmall(Vmid6),
        nameof(Command.TlbiS2Ipa) => Command.TlbiS2Ipa(Vmid6, Va),
        nameof(Command.TlbiNsnhAll) => Command.TlbiNsnhAll(),
        nameof(Command.CfgiCd) => Command.CfgiCd(SidVm5, 0),
        nameof(Command.CfgiAll) => Command.CfgiAll(),
        nameof(Command.PrefetchConfig) => Command.PrefetchConfig(SidVm5),
        nameof(Command.Resume) => Command.Resume(SidVm5, 0, 0),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(GuestForbidden))]
    public void Guest_queue_stops_on_a_command_outside_its_set(string name)
    {
        var rig = RigWithTwoVms();
        rig.BringUpGuest(GuestVintf, Vmid5, GuestQueue, lvcmdq: 0);
        var bad = Forbidden(name);

        rig.Submit(GuestQueue, Command.Sync(), bad, Command.TlbiNhVa(Vmid5, Asid, Va));

        // Stopped at the bad command, which did nothing; the command after it has not run.
        rig.Cons(GuestQueue).ShouldBe(1u | ((uint)CommandError.CERROR_ILL << 24));
        rig.ConsErr(GuestQueue).ShouldBe((uint)CommandError.CERROR_ILL);
        rig.Smmu.CachedStreamCount.ShouldBe(2);
        rig.TlbHas(Vmid6, Asid, Va).ShouldBeTrue();
        rig.TlbHas(Vmid5, Asid, Va).ShouldBeTrue();
        rig.Errors.ShouldHaveSingleItem().ShouldBe(new VcmdqError(GuestVintf, 0, GuestQueue, CommandError.CERROR_ILL, bad));
        rig.Cmdqv.VintfCounters(GuestVintf).CommandsRejected.ShouldBe(1);
    }

    [Fact]
    public void Illegal_command_raises_every_error_indication_and_ack_resumes()
    {
        var rig = RigWithTwoVms();
        const int lvcmdq = 3, queue = 11;
        rig.EnableCmdqv();
        rig.ConfigureVintf(GuestVintf, Vmid5, hypOwn: false);
        rig.Allocate(queue, GuestVintf, lvcmdq);
        rig.SetUpQueue(queue, log2Entries: 4, QueueAlias.Logical);

        rig.Submit(queue, Command.CfgiSte(SidVm6), Command.TlbiNhVa(Vmid5, Asid, Va));

        // CONS.ERR = CERROR_ILL with CONS at the command.
        rig.Cons(queue).ShouldBe((uint)CommandError.CERROR_ILL << 24);
        // GERROR.CMDQ_ERR differs from GERRORN until acknowledged.
        ((rig.Gerror(queue) ^ rig.Gerrorn(queue)) & Tegra241Cmdqv.VCMDQ_GERROR_CMDQ_ERR).ShouldBe(Tegra241Cmdqv.VCMDQ_GERROR_CMDQ_ERR);
        // The maps name the logical queue, the global queue and the VINTF.
        rig.LvcmdqErrMap(GuestVintf, 0).ShouldBe(1UL << lvcmdq);
        rig.LvcmdqErrMap(GuestVintf, 1).ShouldBe(0UL);
        rig.CmdqErrMap(0).ShouldBe(1u << queue);
        rig.CmdqErrMap(1).ShouldBe(0u);
        rig.VintfErrMap().ShouldBe(1UL << GuestVintf);
        rig.Errors.ShouldHaveSingleItem().ShouldBe(new VcmdqError(GuestVintf, lvcmdq, queue, CommandError.CERROR_ILL, Command.CfgiSte(SidVm6)));
        rig.Smmu.CachedStreamCount.ShouldBe(2);
        rig.TlbHas(Vmid5, Asid, Va).ShouldBeTrue();

        // More PROD writes do not move a stopped queue.
        rig.Submit(queue, Command.Sync());
        rig.Cons(queue).ShouldBe((uint)CommandError.CERROR_ILL << 24);

        // Acknowledging without fixing the command stops it again at once.
        rig.Acknowledge(queue, QueueAlias.Logical);
        rig.Errors.Count.ShouldBe(2);
        rig.ConsErr(queue).ShouldBe((uint)CommandError.CERROR_ILL);

        // Linux's way: replace the bad command with CMD_SYNC, then acknowledge.
        rig.Replace(queue, 0, Command.Sync());
        rig.Acknowledge(queue, QueueAlias.Logical);
        rig.Cons(queue).ShouldBe(3u);
        rig.Gerror(queue).ShouldBe(rig.Gerrorn(queue));
        rig.TlbHas(Vmid5, Asid, Va).ShouldBeFalse();
        rig.LvcmdqErrMap(GuestVintf, 0).ShouldBe(0UL);
        rig.CmdqErrMap(0).ShouldBe(0u);
        rig.VintfErrMap().ShouldBe(0UL);
        rig.Errors.Count.ShouldBe(2);
        rig.Cmdqv.QueueCounters(queue).Errors.ShouldBe(2);
        rig.Cmdqv.Counters.Interrupts.ShouldBe(2);
    }

    [Fact]
    public void A_handler_may_fix_and_acknowledge_from_inside_the_interrupt()
    {
        var rig = RigWithTwoVms();
        rig.BringUpGuest(GuestVintf, Vmid5, GuestQueue);
        rig.Cmdqv.ErrorRaised += e =>
        {
            // Like Linux's ISR: read the maps, skip the bad command, write GERROR to GERRORN.
            rig.VintfErrMap().ShouldBe(1UL << e.Vintf);
            rig.Replace(e.Queue, rig.View(e.Queue).Cons, Command.Sync());
            rig.Acknowledge(e.Queue);
        };

        rig.Submit(GuestQueue, Command.TlbiNhAll(Vmid5), Command.TlbiNhVa(Vmid5, Asid, Va));

        rig.Cons(GuestQueue).ShouldBe(2u);
        rig.TlbHas(Vmid5, Asid, Va).ShouldBeFalse();
        rig.TlbHas(Vmid5, Asid, OtherVa).ShouldBeTrue(); // TLBI_NH_ALL never ran
        rig.Errors.Count.ShouldBe(1);
    }

    [Fact]
    public void Masked_vintf_errors_show_in_the_maps_without_an_interrupt()
    {
        var rig = RigWithTwoVms();
        rig.BringUpGuest(GuestVintf, Vmid5, GuestQueue);
        rig.Write32((ulong)CmdqvRegister.VINTF_INT_MASK, 1u << GuestVintf);

        rig.Submit(GuestQueue, Command.CfgiAll());

        rig.Errors.ShouldBeEmpty();
        rig.VintfErrMap().ShouldBe(1UL << GuestVintf);
        rig.ConsErr(GuestQueue).ShouldBe((uint)CommandError.CERROR_ILL);
        rig.Cmdqv.Counters.Errors.ShouldBe(1);
        rig.Cmdqv.Counters.Interrupts.ShouldBe(0);
    }

    [Fact]
    public void Atc_inv_with_a_matched_vsid_reaches_the_physical_stream()
    {
        var rig = new CmdqvRig();
        const uint vsid = 0x10, psid = 0x2_0010, otherPsid = 0x10;
        var atc = rig.AddAtc(psid, Va);
        var decoy = rig.AddAtc(otherPsid, Va); // the pSID that happens to equal the vSID
        rig.BringUpGuest(GuestVintf, Vmid5, GuestQueue);
        rig.MapSid(GuestVintf, slot: 3, vsid, psid);

        rig.Submit(GuestQueue, Command.AtcInv(vsid, null, Va, 0), Command.Sync());

        atc.TryLookup(null, Va, out _, out _).ShouldBeFalse();
        decoy.TryLookup(null, Va, out _, out _).ShouldBeTrue();
        rig.Errors.ShouldBeEmpty();
        rig.Cmdqv.VintfCounters(GuestVintf).SidSubstitutions.ShouldBe(1);
    }

    [Fact]
    public void Atc_inv_with_an_unmatched_vsid_stops_the_queue()
    {
        var rig = new CmdqvRig();
        var atc = rig.AddAtc(0x99, Va);
        rig.BringUpGuest(GuestVintf, Vmid5, GuestQueue);
        rig.MapSid(GuestVintf, 0, vsid: 0x10, psid: 0x99);
        // A slot with ENABLE clear does not match either.
        rig.Write32(L.SidReplace(GuestVintf, 1), Tegra241Cmdqv.EncodeSidReplace(0x99));
        rig.Write32(L.SidMatch(GuestVintf, 1), Tegra241Cmdqv.EncodeSidMatch(0x11, enable: false));

        rig.Submit(GuestQueue, Command.AtcInv(0x11, null, Va, 0));

        rig.ConsErr(GuestQueue).ShouldBe((uint)CommandError.CERROR_ILL);
        rig.Errors.ShouldHaveSingleItem().Error.ShouldBe(CommandError.CERROR_ILL);
        atc.TryLookup(null, Va, out _, out _).ShouldBeTrue();
        rig.Cmdqv.Counters.UnmatchedSids.ShouldBe(1);
    }

    [Fact]
    public void Sid_matching_is_per_vintf()
    {
        var rig = new CmdqvRig();
        var atc = rig.AddAtc(0x99, Va);
        rig.MapSid(vintf: 2, 0, vsid: 0x10, psid: 0x99); // another VM's device
        rig.BringUpGuest(GuestVintf, Vmid5, GuestQueue);

        rig.Submit(GuestQueue, Command.AtcInv(0x10, null, Va, 0));

        rig.ConsErr(GuestQueue).ShouldBe((uint)CommandError.CERROR_ILL);
        atc.TryLookup(null, Va, out _, out _).ShouldBeTrue();
    }

    [Fact]
    public void Host_atc_inv_uses_the_physical_sid_as_written()
    {
        var rig = new CmdqvRig();
        var atc = rig.AddAtc(0x99, Va);
        rig.BringUpHost();
        rig.Submit(0, QueueAlias.Global, Command.AtcInv(0x99, null, Va, 0));
        atc.TryLookup(null, Va, out _, out _).ShouldBeFalse();
    }

    [Fact]
    public void Errors_the_smmu_returns_stop_the_queue_the_same_way()
    {
        // Without ATS in the SMMU, ATC_INV is illegal at the SMMU even though the VINTF admits it.
        var rig = new CmdqvRig(features: new SmmuFeatures { Ats = false });
        rig.BringUpGuest(GuestVintf, Vmid5, GuestQueue);
        rig.MapSid(GuestVintf, 0, 0x10, 0x99);

        rig.Submit(GuestQueue, Command.Sync(), Command.AtcInv(0x10, null, Va, 0));

        rig.Cons(GuestQueue).ShouldBe(1u | ((uint)CommandError.CERROR_ILL << 24));
        rig.Errors.ShouldHaveSingleItem().Command.ShouldBe(Command.AtcInv(0x10, null, Va, 0));
        rig.Cmdqv.QueueCounters(GuestQueue).CommandsRejected.ShouldBe(0);
    }

    [Fact]
    public void Malformed_allowed_command_is_illegal_at_the_smmu()
    {
        var rig = new CmdqvRig();
        rig.BringUpGuest(GuestVintf, Vmid5, GuestQueue);
        var bad = Command.Sync() with { W0 = Command.Sync().W0 | (3UL << 12) }; // CS = 0b11 is reserved
        rig.Submit(GuestQueue, bad);
        rig.ConsErr(GuestQueue).ShouldBe((uint)CommandError.CERROR_ILL);
    }

    [Fact]
    public void Guest_sync_completes_without_writing_host_memory()
    {
        var rig = new CmdqvRig();
        const ulong msi = 0x0050_0000;
        rig.BringUpGuest(GuestVintf, Vmid5, GuestQueue);

        rig.Submit(GuestQueue, Command.Sync(SyncSignal.Irq, msi, 0xCAFE));

        rig.Cons(GuestQueue).ShouldBe(1u);
        rig.Memory.IsAllocated(msi).ShouldBeFalse();
        rig.Cmdqv.Counters.SyncSignalsDropped.ShouldBe(1);
        rig.Smmu.Counters.Syncs.ShouldBe(1);
    }

    [Fact]
    public void Host_sync_msi_lands_in_host_memory()
    {
        var rig = new CmdqvRig();
        const ulong msi = 0x0050_0000;
        rig.BringUpHost();

        rig.Submit(0, QueueAlias.Global, Command.Sync(SyncSignal.Irq, msi, 0xCAFE));

        rig.Memory.ReadUInt32(msi).ShouldBe(0xCAFEu);
        rig.Cmdqv.Counters.SyncSignalsDropped.ShouldBe(0);
    }
}
