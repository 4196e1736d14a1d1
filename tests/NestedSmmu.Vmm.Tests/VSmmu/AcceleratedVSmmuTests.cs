using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Vmm.Tests.VSmmu;

/// <summary>
/// The accelerated vSMMU end to end on the emulated grace host: the guest programs its vSMMUs
/// through MMIO and guest RAM only; the host side is checked through the emulated kernel's
/// diagnostics (physical STEs, TLBs, device DMA) and the journal of iommufd calls.
/// </summary>
public sealed class AcceleratedVSmmuTests
{
    private const ushort Asid = 5;
    private const ulong Va = 0x1000_0000, Va2 = 0x1000_1000, UnmappedVa = 0x2000_0000;
    private const ulong DataIpa = GuestRamBase + 0x10_0000, DataIpa2 = GuestRamBase + 0x20_0000;
    private const ulong GuestRamBase = Machine.GuestRam.VirtRamBase;
    private const ulong Pattern = 0x0123_4567_89AB_CDEF, Pattern2 = 0xFEDC_BA98_7654_3210;

    [Fact]
    public void First_device_allocates_a_nest_parent_per_physical_SMMU_a_vIOMMU_per_vSMMU_and_the_abort_and_bypass_HWPTs()
    {
        using var rig = new AccelRig();

        // nic0/nic1 sit behind smmu3, nic2/nic3 behind smmu4: the kernel keeps a nest parent on the
        // SMMU it was made for (arm_smmu_attach_dev: EINVAL), so each physical SMMU gets one.
        rig.Context.NestParentsAllocated.ShouldBe(2, "every device attached to the first nest parent the kernel accepted");
        rig.Context.NestParentOf(rig.Nic1).ShouldBe(rig.Context.NestParentOf(rig.Nic0));
        rig.Context.NestParentOf(rig.Nic3).ShouldBe(rig.Context.NestParentOf(rig.Nic2));
        rig.Context.NestParentOf(rig.Nic2).ShouldNotBe(rig.Context.NestParentOf(rig.Nic0));
        rig.A.Viommu.ShouldNotBeNull();
        rig.B.Viommu.ShouldNotBeNull();
        rig.A.Viommu!.Id.ShouldNotBe(rig.B.Viommu!.Id);
        rig.Fd.Calls.Count(c => c.StartsWith("AllocViommu", StringComparison.Ordinal)).ShouldBe(2, "the second device of a vSMMU reuses its vIOMMU");
        // GBPA resets to bypass: with the SMMU disabled every device is on the bypass HWPT, which the
        // kernel makes the parent's plain stage-2 STE with the vIOMMU's VMID.
        rig.A.AttachedHwptOf(AccelRig.Nic0Vsid).ShouldBe(rig.A.BypassHwpt);
        StreamTableEntry ste = rig.Diag.ReadSte("nic0");
        ste.Config.ShouldBe(SteConfig.Stage2);
        rig.A.VdeviceOf(AccelRig.Nic0Vsid).ShouldBeNull("vDEVICEs come with the guest's first CFGI_STE");

        // The guest sets GBPA.ABORT (with UPDATE): every device of that vSMMU moves to the abort HWPT.
        rig.GuestA.Write32(SmmuRegister.GBPA, SmmuV3.GBPA_UPDATE | SmmuV3.GBPA_ABORT);
        rig.GuestA.Read32(SmmuRegister.GBPA).ShouldBe(SmmuV3.GBPA_ABORT, "UPDATE completes at once and reads 0");
        rig.A.AttachedHwptOf(AccelRig.Nic1Vsid).ShouldBe(rig.A.AbortHwpt);
        rig.Diag.ReadSte("nic1").Config.ShouldBe(SteConfig.Abort);
        rig.DmaRead("nic1", 0x1000).Result.IsSuccess.ShouldBeFalse();
        rig.Diag.ReadSte("nic2").Config.ShouldBe(SteConfig.Stage2, "the other vSMMU's GBPA is its own");
    }

    [Fact]
    public void Guest_S1_STE_with_CFGI_STE_creates_a_vDEVICE_and_a_nested_HWPT_and_device_DMA_follows_the_guest_tables()
    {
        using var rig = new AccelRig();
        rig.GuestA.Init();
        rig.GuestB.Init();
        var (tablesA, cdA) = rig.GuestA.AddressSpace(Asid);
        tablesA.Map(Va, DataIpa);
        var (tablesB, cdB) = rig.GuestB.AddressSpace(Asid);
        tablesB.Map(Va, DataIpa2);
        rig.Ram.WriteUInt64(DataIpa, Pattern);
        rig.Ram.WriteUInt64(DataIpa2, Pattern2);

        rig.GuestA.TranslateStream(AccelRig.Nic0Vsid, cdA);
        rig.GuestB.TranslateStream(AccelRig.Nic3Vsid, cdB);

        rig.A.CommandQueueError.ShouldBe(CommandError.None);
        rig.A.VdeviceOf(AccelRig.Nic0Vsid).ShouldNotBeNull();
        rig.A.NestedHwptOf(AccelRig.Nic0Vsid).ShouldNotBeNull();
        rig.A.AttachedHwptOf(AccelRig.Nic0Vsid).ShouldBe(rig.A.NestedHwptOf(AccelRig.Nic0Vsid));
        rig.Fd.Calls.ShouldContain($"AllocVdevice 0x{AccelRig.Nic0Vsid:X} = {rig.A.VdeviceOf(AccelRig.Nic0Vsid)}");
        // In the emulated kernel: the physical STEs are nested, with the guest's CD table and the vIOMMUs' VMIDs.
        StreamTableEntry nic0 = rig.Diag.ReadSte("nic0"), nic3 = rig.Diag.ReadSte("nic3");
        nic0.Config.ShouldBe(SteConfig.Nested);
        nic0.S1ContextPtr.ShouldBe(cdA);
        nic0.MEV.ShouldBeTrue();
        nic3.Config.ShouldBe(SteConfig.Nested);
        nic3.S1ContextPtr.ShouldBe(cdB);
        nic0.S2TTB.ShouldNotBe(nic3.S2TTB, "a nest parent per physical SMMU");
        rig.Diag.Smmu("smmu3").VmidsInUse.ShouldContain(nic0.S2VMID);
        rig.Diag.Smmu("smmu4").VmidsInUse.ShouldContain(nic3.S2VMID);
        // nic1's guest STE is still all zeroes (V = 0): enabling the SMMU put it on the abort HWPT.
        rig.A.AttachedHwptOf(AccelRig.Nic1Vsid).ShouldBe(rig.A.AbortHwpt);
        rig.Diag.ReadSte("nic1").Config.ShouldBe(SteConfig.Abort);

        // Device DMA lands where each guest's page tables say.
        var (r0, v0) = rig.DmaRead("nic0", Va);
        r0.IsSuccess.ShouldBeTrue(r0.Translation.ToString());
        v0.ShouldBe(Pattern);
        var (r3, v3) = rig.DmaRead("nic3", Va);
        r3.IsSuccess.ShouldBeTrue(r3.Translation.ToString());
        v3.ShouldBe(Pattern2);
        Span<byte> w = stackalloc byte[8];
        BitConverter.TryWriteBytes(w, 0xC0FFEEUL).ShouldBeTrue();
        rig.Diag.Dma("nic0", Va + 8, AccessKind.Write, w).IsSuccess.ShouldBeTrue();
        rig.Ram.ReadUInt64(DataIpa + 8).ShouldBe(0xC0FFEEUL);
    }

    [Fact]
    public void A_guest_fault_comes_back_into_the_guest_event_queue_with_the_vSID_and_raises_the_event_interrupt()
    {
        using var rig = new AccelRig();
        rig.GuestA.Init();
        var (tables, cd) = rig.GuestA.AddressSpace(Asid);
        tables.Map(Va, DataIpa);
        rig.GuestA.TranslateStream(AccelRig.Nic1Vsid, cd);
        rig.A.Veventq.ShouldNotBeNull();
        rig.A.Veventq!.Depth.ShouldBe(1u << rig.GuestA.EventqLog2);

        rig.DmaRead("nic1", UnmappedVa).Result.Translation.FaultType.ShouldBe(EventType.F_TRANSLATION);

        // The guest reads EVENTQ_PROD (a trap: the vEVENTQ is serviced first) and finds the record.
        List<EventRecord> events = rig.GuestA.DrainEvents();
        events.Count.ShouldBe(1);
        events[0].Type.ShouldBe(EventType.F_TRANSLATION);
        events[0].SID.ShouldBe(AccelRig.Nic1Vsid, "the physical SID 0x101 became the vSID");
        events[0].InputAddress.ShouldBe(UnmappedVa);
        rig.A.Counters.EventsDelivered.ShouldBe(1);
        rig.Interrupts.ShouldContain((rig.A.Name, SmmuInterrupt.EventQueue));
        rig.GuestB.DrainEvents().ShouldBeEmpty("vSMMU B's guest queue is its own");
    }

    [Fact]
    public void Lost_host_events_become_the_guest_visible_event_queue_overflow()
    {
        using var rig = new AccelRig(eventqLog2: 1);
        rig.GuestA.Init();
        var (_, cd) = rig.GuestA.AddressSpace(Asid);
        rig.GuestA.TranslateStream(AccelRig.Nic0Vsid, cd);
        rig.A.Veventq!.Depth.ShouldBe(2u);

        // Five faults with no trap in between: the vEVENTQ (depth 2) keeps two and reports the rest lost.
        for (ulong i = 0; i < 5; i++) rig.DmaRead("nic0", UnmappedVa + i * 0x1000);

        uint prod = rig.GuestA.Read32(SmmuRegister.EVENTQ_PROD);
        (prod & SmmuV3.Q_OVFLG).ShouldNotBe(0u, "OVFLG now differs from OVACKFLG");
        rig.A.Counters.Overflows.ShouldBe(1);
        rig.A.Counters.EventsDelivered.ShouldBe(2);
        rig.A.Log.ShouldContain(l => l.Contains("overflowed", StringComparison.Ordinal));
        List<EventRecord> events = rig.GuestA.DrainEvents();
        events.Select(e => e.InputAddress).ShouldBe([UnmappedVa, UnmappedVa + 0x1000]);
        (rig.GuestA.Read32(SmmuRegister.EVENTQ_CONS) & SmmuV3.Q_OVFLG).ShouldNotBe(0u, "the guest acknowledged it");
    }

    [Fact]
    public void Guest_TLBIs_are_forwarded_in_one_batch_per_CMD_SYNC_and_take_effect_on_the_physical_TLB()
    {
        using var rig = new AccelRig();
        rig.GuestA.Init();
        var (tables, cd) = rig.GuestA.AddressSpace(Asid);
        tables.Map(Va, DataIpa);
        tables.Map(Va2, DataIpa2);
        rig.GuestA.TranslateStream(AccelRig.Nic0Vsid, cd);
        rig.DmaRead("nic0", Va).Result.IsSuccess.ShouldBeTrue();
        rig.DmaRead("nic0", Va2).Result.IsSuccess.ShouldBeTrue();
        ushort vmid = rig.Diag.ReadSte("nic0").S2VMID;
        rig.Diag.TlbEntries("smmu3").Count(e => e.Vmid == vmid).ShouldBe(2);
        long batches = rig.A.Counters.Batches, forwarded = rig.A.Counters.CommandsForwarded;

        // The guest unmaps Va and invalidates it; two more TLBIs for other ASIDs and a second sync
        // follow in the same PROD write. The VMID field is the guest's (0): the kernel puts the vIOMMU's in.
        tables.Unmap(Va);
        rig.GuestA.Submit(
            Command.TlbiNhVa(0, Asid, Va, leaf: true), Command.TlbiNhAsid(0, 99), Command.Sync(),
            Command.TlbiNhAsid(0, 98), Command.Sync());

        rig.A.Counters.Batches.ShouldBe(batches + 2);
        rig.A.Counters.CommandsForwarded.ShouldBe(forwarded + 3);
        rig.Fd.Calls.TakeLast(2).ShouldBe([$"Invalidate {rig.A.Viommu!.Id} x2", $"Invalidate {rig.A.Viommu.Id} x1"]);
        rig.A.CommandQueueError.ShouldBe(CommandError.None);
        (rig.GuestA.Read32(SmmuRegister.CMDQ_CONS)).ShouldBe(rig.GuestA.Read32(SmmuRegister.CMDQ_PROD), "the queue drained");
        IReadOnlyList<TlbEntry> after = rig.Diag.TlbEntries("smmu3");
        after.ShouldNotContain(e => e.Vmid == vmid && e.InputBase == Va);
        after.ShouldContain(e => e.Vmid == vmid && e.InputBase == Va2, "the other VA stays cached");
        rig.DmaRead("nic0", Va).Result.IsSuccess.ShouldBeFalse("without the stale TLB entry the walk sees the unmap");
        rig.DmaRead("nic0", Va2).Result.IsSuccess.ShouldBeTrue();
    }

    [Fact]
    public void An_STE_config_the_host_cannot_nest_stops_the_command_queue_with_CERROR_ILL()
    {
        using var rig = new AccelRig();
        rig.GuestA.Init();
        HwptId? before = rig.A.AttachedHwptOf(AccelRig.Nic0Vsid);
        rig.GuestA.WriteSte(AccelRig.Nic0Vsid, StreamTableEntry.Create(SteConfig.Stage2, s2T0sz: 25, s2Sl0: 1, s2Ttb: GuestRamBase));
        rig.GuestA.Submit(Command.CfgiSte(AccelRig.Nic0Vsid), Command.Sync(SyncSignal.Irq));

        uint cons = rig.GuestA.Read32(SmmuRegister.CMDQ_CONS);
        ((CommandError)(SmmuV3.CMDQ_CONS_ERR.Get(cons))).ShouldBe(CommandError.CERROR_ILL);
        (rig.GuestA.Read32(SmmuRegister.GERROR) ^ rig.GuestA.Read32(SmmuRegister.GERRORN)).ShouldBe(SmmuV3.GERROR_CMDQ_ERR);
        rig.Interrupts.ShouldContain((rig.A.Name, SmmuInterrupt.GlobalError));
        rig.Interrupts.ShouldNotContain((rig.A.Name, SmmuInterrupt.CmdSync), "the sync after the bad command did not run");
        rig.A.Log.ShouldContain($"Invalid STE config for sid 0x{AccelRig.Nic0Vsid:X}");
        rig.A.AttachedHwptOf(AccelRig.Nic0Vsid).ShouldBe(before);

        // The guest fixes the STE, acknowledges the error: the queue resumes at the CFGI_STE and runs the sync.
        rig.GuestA.WriteSte(AccelRig.Nic0Vsid, StreamTableEntry.Create(SteConfig.Bypass));
        rig.GuestA.Write32(SmmuRegister.GERRORN, rig.GuestA.Read32(SmmuRegister.GERROR));
        rig.A.CommandQueueError.ShouldBe(CommandError.None);
        rig.A.AttachedHwptOf(AccelRig.Nic0Vsid).ShouldBe(rig.A.BypassHwpt);
        rig.Interrupts.ShouldContain((rig.A.Name, SmmuInterrupt.CmdSync));
        rig.Diag.ReadSte("nic0").Config.ShouldBe(SteConfig.Stage2, "bypass for the guest is the parent's stage 2 on the host");
    }

    [Fact]
    public void Illegal_commands_and_queue_fetches_outside_RAM_are_command_queue_errors_not_exceptions()
    {
        using var rig = new AccelRig();
        rig.GuestA.Init();
        // TLBI_S2_IPA needs stage 2, which an accelerated vSMMU does not advertise.
        rig.GuestA.Submit(Command.TlbiS2Ipa(1, 0x1000));
        rig.A.CommandQueueError.ShouldBe(CommandError.CERROR_ILL);
        rig.GuestA.Write32(SmmuRegister.GERRORN, rig.GuestA.Read32(SmmuRegister.GERROR));
        rig.A.CommandQueueError.ShouldBe(CommandError.CERROR_ILL, "acknowledging resumes at the same illegal command");

        // A queue base outside guest RAM: CERROR_ABT.
        rig.GuestB.Write64(SmmuRegister.CMDQ_BASE, 0x1000 | GuestSmmuDriver.CmdqLog2);
        rig.GuestB.Write32(SmmuRegister.CR0, SmmuV3.CR0_CMDQEN);
        rig.GuestB.Write32(SmmuRegister.CMDQ_PROD, 1);
        rig.B.CommandQueueError.ShouldBe(CommandError.CERROR_ABT);
    }

    [Fact]
    public void Detach_of_the_last_device_tears_down_in_order_and_a_hot_plugged_device_reuses_the_vIOMMU()
    {
        using var rig = new AccelRig();
        rig.GuestA.Init();
        var (_, cd) = rig.GuestA.AddressSpace(Asid);
        rig.GuestA.TranslateStream(AccelRig.Nic0Vsid, cd);
        rig.GuestA.TranslateStream(AccelRig.Nic1Vsid, cd);
        ViommuId viommu = rig.A.Viommu!.Id;
        HwptId abort = rig.A.AbortHwpt!.Value, bypass = rig.A.BypassHwpt!.Value;
        HwptId nested1 = rig.A.NestedHwptOf(AccelRig.Nic1Vsid)!.Value;
        VdeviceId vdev1 = rig.A.VdeviceOf(AccelRig.Nic1Vsid)!.Value;
        VeventqId veventq = rig.A.Veventq!.Id;
        HwptId parent = rig.Context.NestParentOf(rig.Nic1)!.Value;

        rig.A.DetachDevice(AccelRig.Nic0Vsid).ShouldBeTrue();
        rig.A.Viommu.ShouldNotBeNull("nic1 still uses it");

        rig.Fd.Calls.Clear();
        rig.A.DetachDevice(AccelRig.Nic1Vsid).ShouldBeTrue();
        rig.Fd.Calls.ShouldBe([
            $"AttachDevice {rig.Nic1} -> {parent}",
            $"Destroy {nested1}",
            $"Destroy {vdev1}",
            $"Destroy {veventq}",
            $"Destroy {bypass}",
            $"Destroy {abort}",
            $"Destroy {viommu}",
            $"DetachDevice {rig.Nic1}",
            $"Destroy {parent}",
        ]);
        rig.A.Viommu.ShouldBeNull();
        rig.A.Log.ShouldBeEmpty("every DESTROY succeeded, in dependency order");
        rig.Context.NestParents.ShouldBe([rig.Context.NestParentOf(rig.Nic2)!.Value],
            "smmu3's nest parent went with its last device; vSMMU B's devices (smmu4) keep theirs");

        // Hot plug after boot: the vSMMU is enabled, so the new device aborts until the guest's CFGI_STE.
        rig.A.AttachDevice(rig.Nic0, AccelRig.Nic0Vsid);
        rig.A.AttachedHwptOf(AccelRig.Nic0Vsid).ShouldBe(rig.A.AbortHwpt);
        rig.A.AttachDevice(rig.Nic1, AccelRig.Nic1Vsid);
        rig.Fd.Calls.Count(c => c.StartsWith("AllocViommu", StringComparison.Ordinal)).ShouldBe(1, "one new vIOMMU for both");
        rig.GuestA.TranslateStream(AccelRig.Nic1Vsid, cd);
        rig.Diag.ReadSte("nic1").Config.ShouldBe(SteConfig.Nested);
    }

    [Fact]
    public void Guest_reset_of_CR0_and_a_system_reset_move_devices_to_the_GBPA_HWPT_and_free_the_vEVENTQ()
    {
        using var rig = new AccelRig();
        rig.GuestA.Init();
        var (_, cd) = rig.GuestA.AddressSpace(Asid);
        rig.GuestA.TranslateStream(AccelRig.Nic0Vsid, cd);
        VeventqId veventq = rig.A.Veventq!.Id;

        rig.GuestA.Write32(SmmuRegister.CR0, 0);
        rig.GuestA.Read32(SmmuRegister.CR0ACK).ShouldBe(0u);
        rig.A.Veventq.ShouldBeNull();
        rig.Fd.Calls.ShouldContain($"Destroy {veventq}");
        rig.A.AttachedHwptOf(AccelRig.Nic0Vsid).ShouldBe(rig.A.BypassHwpt, "disabled, GBPA bypass");
        rig.A.NestedHwptOf(AccelRig.Nic0Vsid).ShouldBeNull("the nested HWPT is freed once it is no longer attached");

        rig.GuestA.Init();
        rig.GuestA.Write32(SmmuRegister.GBPA, SmmuV3.GBPA_UPDATE | SmmuV3.GBPA_ABORT);
        rig.A.Reset();
        rig.GuestA.Read32(SmmuRegister.GBPA).ShouldBe(SmmuV3.GbpaResetValue);
        rig.A.Enabled.ShouldBeFalse();
        rig.A.AttachedHwptOf(AccelRig.Nic0Vsid).ShouldBe(rig.A.BypassHwpt);
        rig.A.Veventq.ShouldBeNull();
    }

    [Fact]
    public void Every_MMIO_access_is_a_trap_counted_on_its_register_page_and_page_1_aliases_page_0()
    {
        using var rig = new AccelRig();
        rig.GuestA.Init();
        rig.A.Traps.Reads(0).ShouldBe(rig.GuestA.MmioReads);
        rig.A.Traps.Writes(0).ShouldBe(rig.GuestA.MmioWrites);
        rig.A.Traps.Reads(1).ShouldBe(0);

        ulong page1 = (ulong)SmmuRegister.Page1;
        rig.Bus.Read(AccelRig.FrameA + page1 + (ulong)SmmuRegister.IDR0, 4).ShouldBe((ulong)rig.A.Features.Idr0);
        rig.Bus.Write(AccelRig.FrameA + page1 + (ulong)SmmuRegister.EVENTQ_CONS, 4, 0);
        rig.A.Traps.Reads(1).ShouldBe(1);
        rig.A.Traps.Writes(1).ShouldBe(1);
        rig.A.Traps.Total.ShouldBe(rig.GuestA.MmioReads + rig.GuestA.MmioWrites + 2);
        rig.B.Traps.Total.ShouldBe(0, "the other vSMMU saw none");

        // 8-byte access to a pair of 32-bit registers and to a 64-bit one; the 4-byte halves of a 64-bit register.
        rig.Bus.Read(AccelRig.FrameA + (ulong)SmmuRegister.CMDQ_PROD, 8).ShouldBe(
            rig.Bus.Read(AccelRig.FrameA + (ulong)SmmuRegister.CMDQ_PROD, 4) | (rig.Bus.Read(AccelRig.FrameA + (ulong)SmmuRegister.CMDQ_CONS, 4) << 32));
        rig.Bus.Read(AccelRig.FrameA + (ulong)SmmuRegister.STRTAB_BASE + 4, 4).ShouldBe(rig.GuestA.StreamTable >> 32);
        rig.Bus.Read(AccelRig.FrameA + (ulong)SmmuRegister.STRTAB_BASE, 4).ShouldBe(rig.GuestA.StreamTable & 0xFFFF_FFFF);
        rig.Bus.Read(AccelRig.FrameA + 2, 4).ShouldBe(0UL, "unaligned reads as zero");
    }

    [Fact]
    public void SID_based_invalidations_are_forwarded_only_for_devices_with_a_vDEVICE_and_reach_the_physical_device()
    {
        using var rig = new AccelRig();
        rig.GuestA.Init(enable: false);
        rig.A.VdeviceOf(AccelRig.Nic0Vsid).ShouldNotBeNull("the guest's CFGI_ALL made the vDEVICEs");
        long forwarded = rig.A.Counters.CommandsForwarded;
        long atcBefore = rig.Diag.AtcInvalidations("nic0");

        rig.GuestA.Submit(
            Command.AtcInv(AccelRig.Nic0Vsid, null, 0, 52), Command.CfgiCd(AccelRig.Nic0Vsid, 0), Command.CfgiCdAll(AccelRig.Nic1Vsid),
            Command.CfgiCd(0x7F, 0), Command.AtcInv(0x7F, null, 0, 52), Command.Sync());

        rig.A.Counters.CommandsForwarded.ShouldBe(forwarded + 3, "StreamID 0x7F has no device behind this vSMMU");
        rig.Diag.AtcInvalidations("nic0").ShouldBe(atcBefore + 1, "the kernel mapped vSID 0x100 to nic0's pSID");
        rig.A.CommandQueueError.ShouldBe(CommandError.None);
    }

    [Fact]
    public void A_command_the_host_refuses_stops_the_queue_at_that_command_with_CERROR_ILL()
    {
        using var rig = new AccelRig();
        rig.GuestA.Init();
        uint prodBefore = rig.GuestA.Read32(SmmuRegister.CMDQ_PROD);
        // nic1's VFIO cdev closes under the VM: the kernel forces its vDEVICE down, so its vSID is unknown to the host.
        rig.Fd.UnbindDevice(rig.Nic1);

        rig.GuestA.Submit(Command.TlbiNhAll(0), Command.CfgiCdAll(AccelRig.Nic1Vsid), Command.TlbiNhAll(0), Command.Sync());

        rig.A.CommandQueueError.ShouldBe(CommandError.CERROR_ILL);
        (rig.GuestA.Read32(SmmuRegister.CMDQ_CONS) & 0xFF_FFFF).ShouldBe(prodBefore + 1, "CONS points at the refused CFGI_CD_ALL");
        rig.A.Log[^1].ShouldContain("EIO");
        rig.Fd.Calls[^1].ShouldBe($"Invalidate {rig.A.Viommu!.Id} x3");
    }

    [Fact]
    public void A_CMDQV_vSMMU_gets_a_TEGRA241_CMDQV_vIOMMU_announces_it_and_nests_through_it()
    {
        using var rig = new AccelRig(attach: false);
        using var cmdqv = new AcceleratedVSmmu("smmuv3.2", new VSmmuProperties(Accel: true, Ats: true, OasBits: 48, Cmdqv: true),
            rig.Ram, rig.Context);
        var created = new List<ViommuAllocation>();
        var destroying = new List<ViommuAllocation>();
        cmdqv.ViommuCreated += created.Add;
        cmdqv.ViommuDestroying += destroying.Add;
        rig.Bus.Map(AccelRig.FrameB + 0x20000, cmdqv, cmdqv.Name);
        cmdqv.AttachDevice(rig.Nic0, AccelRig.Nic0Vsid);

        cmdqv.Viommu!.Type.ShouldBe(Iommufd.Uapi.ViommuType.Tegra241Cmdqv);
        created.ShouldBe([cmdqv.Viommu]);
        cmdqv.ViommuCreator.ShouldBe(rig.Nic0);
        cmdqv.Viommu.AsTegra241Cmdqv().VintfMmapLength.ShouldBe(0x10000UL, "the VINTF page the guest-visible CMDQV maps");
        var guest = new GuestSmmuDriver(rig.Bus, AccelRig.FrameB + 0x20000, rig.Ram, rig.Ram.Base + AccelRig.RamSize / 2);
        guest.Init();
        var (_, cd) = guest.AddressSpace(Asid);
        guest.TranslateStream(AccelRig.Nic0Vsid, cd);
        rig.Diag.ReadSte("nic0").Config.ShouldBe(SteConfig.Nested);
        ViommuAllocation viommu = cmdqv.Viommu;

        cmdqv.DetachDevice(AccelRig.Nic0Vsid);
        destroying.ShouldBe([viommu], "listeners free their VINTF resources before the vIOMMU goes");
        cmdqv.Viommu.ShouldBeNull();
        rig.Fd.Calls.ShouldContain($"Destroy {viommu.Id}");
        cmdqv.Log.ShouldBeEmpty("every DESTROY succeeded");
    }
}
