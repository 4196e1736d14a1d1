using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Smmu;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Hardware.Tests.Cmdqv;

/// <summary>VCMDQ mechanics: wrap arithmetic, the two MMIO aliases, when a queue runs, aborts, counters.</summary>
public sealed class CmdqvQueueTests
{
    private const int GuestVintf = 2, GuestQueue = 17, Lvcmdq = 1;
    private const ushort Vmid = 5;

    [Fact]
    public void Queue_wraps_and_toggles_the_wrap_bit()
    {
        var rig = new CmdqvRig();
        rig.BringUpGuest(GuestVintf, Vmid, GuestQueue, Lvcmdq, log2Entries: 2); // 4 entries: wrap bit is bit 2
        const uint wrap = 1u << 2;

        rig.Submit(GuestQueue, Command.Sync(), Command.Sync(), Command.Sync());
        rig.Cons(GuestQueue).ShouldBe(3u);
        rig.Submit(GuestQueue, Command.Sync(), Command.Sync(), Command.Sync());
        rig.Prod(GuestQueue).ShouldBe(wrap | 2u);
        rig.Cons(GuestQueue).ShouldBe(wrap | 2u);

        // A full queue (4 entries) is consumed too, and a second lap flips the wrap bit back.
        rig.Submit(GuestQueue, Command.Sync(), Command.Sync(), Command.Sync(), Command.Sync());
        rig.Cons(GuestQueue).ShouldBe(2u);
        rig.Cmdqv.QueueCounters(GuestQueue).CommandsExecuted.ShouldBe(10);
        rig.Smmu.Counters.Syncs.ShouldBe(10);
    }

    [Fact]
    public void Error_after_a_wrap_reports_the_wrapped_cons()
    {
        var rig = new CmdqvRig();
        rig.BringUpGuest(GuestVintf, Vmid, GuestQueue, Lvcmdq, log2Entries: 1); // 2 entries
        rig.Submit(GuestQueue, Command.Sync(), Command.Sync());
        rig.Submit(GuestQueue, Command.Sync(), Command.CfgiAll());
        uint cons = rig.Cons(GuestQueue);
        Tegra241Cmdqv.VCMDQ_CONS_RD.Get(cons).ShouldBe(0b11UL); // index 1, wrap set
        Tegra241Cmdqv.VCMDQ_CONS_ERR.Get(cons).ShouldBe((ulong)CommandError.CERROR_ILL);
    }

    [Theory]
    [InlineData(QueueAlias.Global, QueueAlias.Logical)]
    [InlineData(QueueAlias.Logical, QueueAlias.Global)]
    public void Global_page_and_vintf_logical_page_alias_one_queue(QueueAlias writeThrough, QueueAlias readThrough)
    {
        var rig = new CmdqvRig();
        rig.EnableCmdqv();
        rig.ConfigureVintf(GuestVintf, Vmid, hypOwn: false);
        rig.Allocate(GuestQueue, GuestVintf, Lvcmdq);
        rig.SetUpQueue(GuestQueue, log2Entries: 4, writeThrough);

        // Page 1 and page 0 state written through one alias is seen through the other.
        rig.Cmdqv.Read(rig.Page1(GuestQueue, VcmdqPage1Register.BASE, readThrough), 8)
            .ShouldBe(Tegra241Cmdqv.EncodeVcmdqBase(CmdqvRig.BufferOf(GuestQueue), 4));
        rig.Read32(rig.Page0(GuestQueue, VcmdqPage0Register.CONFIG, readThrough)).ShouldBe(Tegra241Cmdqv.VCMDQ_EN);
        rig.Read32(rig.Page0(GuestQueue, VcmdqPage0Register.STATUS, readThrough)).ShouldBe(Tegra241Cmdqv.VCMDQ_ENABLED);

        rig.Submit(GuestQueue, writeThrough, Command.Sync(), Command.Sync());
        rig.Prod(GuestQueue, readThrough).ShouldBe(2u);
        rig.Cons(GuestQueue, readThrough).ShouldBe(2u);

        rig.Submit(GuestQueue, writeThrough, Command.TlbiNhAll(Vmid));
        rig.Read32(rig.Page0(GuestQueue, VcmdqPage0Register.GERROR, readThrough)).ShouldBe(Tegra241Cmdqv.VCMDQ_GERROR_CMDQ_ERR);
        rig.Replace(GuestQueue, 2, Command.Sync());
        rig.Acknowledge(GuestQueue, writeThrough);
        rig.Read32(rig.Page0(GuestQueue, VcmdqPage0Register.GERRORN, readThrough)).ShouldBe(Tegra241Cmdqv.VCMDQ_GERROR_CMDQ_ERR);
        rig.Cons(GuestQueue, readThrough).ShouldBe(3u);
    }

    [Fact]
    public void Logical_index_follows_cmdq_alloc_not_a_fixed_formula()
    {
        var rig = new CmdqvRig();
        rig.BringUpGuest(vintf: 0, vmid: 1, queue: 100, lvcmdq: 0); // not 0 * 8 + 0
        rig.Submit(100, QueueAlias.Logical, Command.Sync());
        rig.Cons(100, QueueAlias.Global).ShouldBe(1u);
        rig.Cons(0, QueueAlias.Global).ShouldBe(0u);
    }

    [Fact]
    public void Commands_wait_until_the_queue_can_run_then_run_at_once()
    {
        var rig = new CmdqvRig();
        rig.EnableCmdqv(false);
        rig.ConfigureVintf(GuestVintf, Vmid, hypOwn: false, enable: false);
        rig.Allocate(GuestQueue, GuestVintf, Lvcmdq);
        rig.SetUpQueue(GuestQueue, log2Entries: 4, enable: false);
        rig.Submit(GuestQueue, QueueAlias.Global, Command.Sync());
        rig.Cons(GuestQueue).ShouldBe(0u);

        rig.Write32(L.Vcmdq(GuestQueue, VcmdqPage0Register.CONFIG), Tegra241Cmdqv.VCMDQ_EN);
        rig.Cons(GuestQueue).ShouldBe(0u); // VINTF and CMDQV still off
        rig.ConfigureVintf(GuestVintf, Vmid, hypOwn: false);
        rig.Cons(GuestQueue).ShouldBe(0u); // CMDQV still off
        rig.EnableCmdqv();
        rig.Cons(GuestQueue).ShouldBe(1u);

        // Unallocating stops it; allocating again resumes.
        rig.Write32(L.CmdqAlloc(GuestQueue), Tegra241Cmdqv.EncodeCmdqAlloc(GuestVintf, Lvcmdq, allocated: false));
        rig.Submit(GuestQueue, QueueAlias.Global, Command.Sync());
        rig.Cons(GuestQueue).ShouldBe(1u);
        rig.Allocate(GuestQueue, GuestVintf, Lvcmdq);
        rig.Cons(GuestQueue).ShouldBe(2u);
    }

    [Fact]
    public void Queue_in_abort_memory_stops_with_cerror_abt()
    {
        var rig = new CmdqvRig();
        rig.Memory.AddAbortRange(CmdqvRig.BufferOf(GuestQueue), 0x1000);
        rig.BringUpGuest(GuestVintf, Vmid, GuestQueue, Lvcmdq);
        rig.Write32(rig.Page0(GuestQueue, VcmdqPage0Register.PROD, QueueAlias.Logical), 1);

        rig.ConsErr(GuestQueue).ShouldBe((uint)CommandError.CERROR_ABT);
        rig.Errors.ShouldHaveSingleItem().ShouldBe(new VcmdqError(GuestVintf, Lvcmdq, GuestQueue, CommandError.CERROR_ABT, default));
        rig.CmdqErrMap(0).ShouldBe(1u << GuestQueue);
    }

    [Fact]
    public void Error_maps_cover_high_indexes()
    {
        var rig = new CmdqvRig();
        const int queue = 127, vintf = 15, lvcmdq = 100;
        rig.BringUpGuest(vintf, Vmid, queue, lvcmdq);
        rig.Submit(queue, Command.CfgiAll());

        rig.CmdqErrMap(3).ShouldBe(1u << 31);
        rig.LvcmdqErrMap(vintf, 1).ShouldBe(1UL << (lvcmdq - 64));
        rig.Read32(L.LvcmdqErrMap64(vintf, 1) + 4).ShouldBe(1u << (lvcmdq - 96));
        rig.VintfErrMap().ShouldBe(1UL << vintf);
        rig.Errors.ShouldHaveSingleItem().LogicalQueue.ShouldBe(lvcmdq);
    }

    [Fact]
    public void Counters_are_kept_per_queue_per_vintf_and_in_total()
    {
        var rig = new CmdqvRig();
        rig.BringUpHost();
        rig.BringUpGuest(GuestVintf, Vmid, GuestQueue, Lvcmdq);
        rig.BringUpGuest(GuestVintf, Vmid, GuestQueue + 1, Lvcmdq + 1);

        rig.Submit(0, QueueAlias.Global, Command.Sync(), Command.CfgiAll());
        rig.Submit(GuestQueue, Command.TlbiNhAsid(9, 1), Command.Sync());
        rig.Submit(GuestQueue + 1, Command.TlbiNhVa(9, 1, 0x1000), Command.TlbiNhAll(9));

        rig.Cmdqv.QueueCounters(0).CommandsExecuted.ShouldBe(2);
        rig.Cmdqv.QueueCounters(GuestQueue).CommandsExecuted.ShouldBe(2);
        rig.Cmdqv.QueueCounters(GuestQueue + 1).CommandsExecuted.ShouldBe(1);
        rig.Cmdqv.QueueCounters(GuestQueue + 1).Errors.ShouldBe(1);
        rig.Cmdqv.VintfCounters(GuestVintf).CommandsExecuted.ShouldBe(3);
        rig.Cmdqv.VintfCounters(GuestVintf).VmidSubstitutions.ShouldBe(2);
        rig.Cmdqv.VintfCounters(GuestVintf).ProdWrites.ShouldBe(2);
        rig.Cmdqv.Counters.CommandsExecuted.ShouldBe(5);
        rig.Cmdqv.Counters.Errors.ShouldBe(1);
        rig.Smmu.Counters.CommandsExecuted.ShouldBe(5);

        rig.Cmdqv.ResetCounters();
        rig.Cmdqv.Counters.CommandsExecuted.ShouldBe(0);
        rig.Cmdqv.QueueCounters(0).CommandsExecuted.ShouldBe(0);
        Should.Throw<ArgumentOutOfRangeException>(() => rig.Cmdqv.QueueCounters(128));
        Should.Throw<ArgumentOutOfRangeException>(() => rig.Cmdqv.VintfCounters(-1));
    }

    [Fact]
    public void Gerrorn_writes_only_acknowledge()
    {
        var rig = new CmdqvRig();
        rig.BringUpGuest(GuestVintf, Vmid, GuestQueue, Lvcmdq);
        // Setting a GERRORN bit that is not active would fake an error: ignored.
        rig.Write32(L.Vcmdq(GuestQueue, VcmdqPage0Register.GERRORN), Tegra241Cmdqv.VCMDQ_GERROR_CMDQ_ERR);
        rig.Gerrorn(GuestQueue).ShouldBe(0u);
        rig.CmdqErrMap(0).ShouldBe(0u);
        rig.Submit(GuestQueue, Command.Sync());
        rig.Cons(GuestQueue).ShouldBe(1u);
    }
}
