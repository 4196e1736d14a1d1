using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Vmm.VCmdqv;
using G = NestedSmmu.Vmm.VCmdqv.GuestCmdqvLayout;
using Hw = NestedSmmu.Hardware.Cmdqv.Tegra241Cmdqv;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Vmm.Tests.VCmdqv;

/// <summary>
/// The acceptance scenario on the emulated 'grace' host: a guest drives the CMDQV through
/// MMIO only (enable, two queues, commands with PROD moved through the mapped page, an illegal
/// command, acknowledge, reset, unplug refusals); the host side is checked through the emulated
/// kernel's diagnostics.
/// </summary>
public sealed class VCmdqvAcceptanceTests
{
    [Fact]
    public void A_guest_drives_two_VCMDQs_through_MMIO_with_no_trap_on_the_fast_path()
    {
        using var bed = new CmdqvGuestBed();
        Tegra241VCmdqv cmdqv = bed.Cmdqv;
        int vintf = bed.Vintf.Index;
        int perVintf = bed.Diag.Cmdqv(CmdqvGuestBed.Smmu)!.LvcmdqsPerVintf;

        // ---- enable: CMDQ_ALLOC_MAP, BASE (before the VINTF is on: nothing allocated yet), then VINTF0 ----
        bed.R32((ulong)CmdqvRegister.STATUS).ShouldBe(Hw.CMDQV_ENABLED, "the CMDQV comes out of reset enabled");
        for (int q = 0; q < G.NumVcmdqs; q++) bed.W32(L.CmdqAlloc(q), Hw.EncodeCmdqAlloc(G.Vintf0, q));
        bed.W64(G.Offset(CmdqvPage.VintfPage1, 0, VcmdqPage1Register.BASE), Hw.EncodeVcmdqBase(CmdqvGuestBed.QueueGpa[0], CmdqvGuestBed.QueueLog2Entries));
        ulong base1 = Hw.EncodeVcmdqBase(CmdqvGuestBed.QueueGpa[1], CmdqvGuestBed.QueueLog2Entries);
        bed.W32(G.Offset(CmdqvPage.VcmdqPage1, 1, VcmdqPage1Register.BASE), (uint)base1);
        bed.W32(G.Offset(CmdqvPage.VcmdqPage1, 1, VcmdqPage1Register.BASE_H), (uint)(base1 >> 32));
        bed.Vintf.LogicalQueues.ShouldAllBe(q => q == null, "no HW queue before VINTF0 is enabled");
        cmdqv.VintfPageMapped.ShouldBeFalse();

        bed.W32(G.Vintf0Config, Hw.EncodeVintfConfig(enable: true, vmid: 1, hypOwn: true));

        (bed.R32(G.Vintf0Config) & Hw.VINTF_HYP_OWN).ShouldBe(0u, "HYP_OWN is forced to 0");
        (bed.R32(G.Vintf0Status) & Hw.VINTF_ENABLED).ShouldBe(Hw.VINTF_ENABLED);
        cmdqv.VintfPageMapped.ShouldBeTrue();

        // ---- the two IOMMU_HW_QUEUE_ALLOC calls and their arguments, as the kernel saw them ----
        IReadOnlyList<int?> logical = bed.Vintf.LogicalQueues;
        logical[0].ShouldBe(vintf * perVintf + 0, "HW queue index 0 is the VINTF's logical queue 0");
        logical[1].ShouldBe(vintf * perVintf + 1);
        logical.Skip(G.NumVcmdqs).ShouldAllBe(q => q == null);
        for (int q = 0; q < G.NumVcmdqs; q++)
        {
            cmdqv.HwQueueOf(q).ShouldNotBeNull();
            // The kernel pinned the guest address given as the nesting-parent IOVA and wrote its host PA and size into BASE.
            bed.Diag.ReadCmdqvRegister64(CmdqvGuestBed.Smmu, L.Vcmdq(logical[q]!.Value, VcmdqPage1Register.BASE))
                .ShouldBe(Hw.EncodeVcmdqBase(bed.HostPa(CmdqvGuestBed.QueueGpa[q]), CmdqvGuestBed.QueueLog2Entries));
            bed.Diag.KernelLog.ShouldContain($"tegra241-cmdqv smmu0: VINTF{vintf}: VCMDQ{logical[q]}/LVCMDQ{q}: inited at host PA " +
                $"0x{bed.HostPa(CmdqvGuestBed.QueueGpa[q]):x} size 0x{CmdqvGuestBed.QueueBytes:x}");
        }
        cmdqv.Messages.ShouldBeEmpty();

        // ---- the guest enables queue 0 and issues TLBI_NH_VA + CMD_SYNC, moving PROD through the mapped page ----
        bed.DmaRead(CmdqvGuestBed.Va).ShouldBeTrue();
        bed.DmaRead(CmdqvGuestBed.Va2).ShouldBeTrue();
        bed.TlbHas(CmdqvGuestBed.Va).ShouldBeTrue();
        long trapsBefore = cmdqv.Counters.TotalTraps;
        CmdqvCounters hardware = bed.Diag.CmdqvQueueCounters(CmdqvGuestBed.Smmu, logical[0]!.Value);
        // The VMM wrote the cached PROD into the new queue once, at HW_QUEUE_ALLOC; count from here.
        long doorbellsBefore = hardware.ProdWrites;

        bed.Page0(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.CONFIG, Hw.VCMDQ_EN);
        bed.Page0(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.STATUS).ShouldBe(Hw.VCMDQ_ENABLED);
        bed.WriteCommand(0, 0, Command.TlbiNhVa(0, CmdqvGuestBed.Asid, CmdqvGuestBed.Va, leaf: true));
        bed.WriteCommand(0, 1, Command.Sync());
        bed.Page0(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.PROD, 2);
        bed.Page0(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.CONS).ShouldBe(2u);

        cmdqv.Counters.TotalTraps.ShouldBe(trapsBefore, "enable, PROD and the CONS poll never left the guest");
        cmdqv.Counters.DirectProdWrites(0).ShouldBe(1);
        cmdqv.Counters.Direct(0).ShouldBe(4, "CONFIG, STATUS, PROD and CONS of queue 0");
        (hardware.ProdWrites - doorbellsBefore, hardware.CommandsExecuted, hardware.VmidSubstitutions).ShouldBe((1L, 2L, 1L), "the hardware's doorbell saw the one PROD write");
        bed.TlbHas(CmdqvGuestBed.Va).ShouldBeFalse("the guest's TLBI reached the physical SMMU with its VM's VMID");
        bed.TlbHas(CmdqvGuestBed.Va2).ShouldBeTrue();

        // ---- an illegal command for a guest VINTF: the error reaches the guest's registers and interrupt ----
        bed.WriteCommand(0, 2, Command.CfgiSte(CmdqvGuestBed.Vsid));
        bed.Page0(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.PROD, 3);
        uint cons = bed.Page0(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.CONS);
        (Hw.VCMDQ_CONS_RD.Get(cons), Hw.VCMDQ_CONS_ERR.Get(cons)).ShouldBe((2UL, (ulong)CommandError.CERROR_ILL));
        bed.Irq.Pulses.ShouldBe(0, "the VMM has not read its vEVENTQ yet");

        cmdqv.PollEvents().ShouldBe(1);

        bed.Irq.Pulses.ShouldBe(1);
        bed.R32(G.LvcmdqErrMap(0)).ShouldBe(1u, "logical queue 0");
        bed.R32(L.CmdqErrMap(0)).ShouldBe(1u);
        bed.R32(G.ViErrMap(0)).ShouldBe(G.Vintf0Bit);
        uint gerror = bed.Page0(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.GERROR);
        (gerror & Hw.VCMDQ_GERROR_CMDQ_ERR).ShouldNotBe(bed.Page0(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.GERRORN) & Hw.VCMDQ_GERROR_CMDQ_ERR);

        // ---- acknowledge and resume: the guest replaces the command and writes GERRORN = GERROR ----
        long trapsBeforeAck = cmdqv.Counters.TotalTraps;
        bed.WriteCommand(0, 2, Command.TlbiNhVa(0, CmdqvGuestBed.Asid, CmdqvGuestBed.Va2, leaf: true));
        bed.Page0(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.GERRORN, gerror);
        cmdqv.Counters.TotalTraps.ShouldBe(trapsBeforeAck);
        cons = bed.Page0(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.CONS);
        (Hw.VCMDQ_CONS_RD.Get(cons), Hw.VCMDQ_CONS_ERR.Get(cons)).ShouldBe((3UL, 0UL));
        bed.TlbHas(CmdqvGuestBed.Va2).ShouldBeFalse();
        bed.R32(G.LvcmdqErrMap(0)).ShouldBe(0u, "an acknowledged queue leaves the maps");
        bed.R32(G.ViErrMap(0)).ShouldBe(0u);

        // ---- a masked VINTF: the maps still fill, the line stays quiet ----
        bed.W32(G.ViIntMask(0), G.Vintf0Bit);
        bed.WriteCommand(0, 3, Command.TlbiNhAll(0));
        bed.Page0(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.PROD, 4);
        cmdqv.PollEvents().ShouldBe(1);
        bed.R32(G.LvcmdqErrMap(0)).ShouldBe(1u);
        bed.Irq.Pulses.ShouldBe(1);

        // ---- unplug refusals while the queues run ----
        bed.Page0(CmdqvPage.VintfPage0, 1, VcmdqPage0Register.CONFIG, Hw.VCMDQ_EN);
        cmdqv.EnabledQueues.ShouldBe([0, 1]);
        cmdqv.CheckUnplug(CmdqvGuestBed.Device, devicesOnViommu: 2).ShouldBe(CmdqvUnplugPolicy.CreatorMessage);
        string? last = cmdqv.CheckUnplug("hostdev1", devicesOnViommu: 1);
        last.ShouldNotBeNull();
        last.ShouldContain("VCMDQ0, VCMDQ1");
        last.ShouldContain("'hostdev1'");
        cmdqv.CheckUnplug("hostdev1", devicesOnViommu: 2).ShouldBeNull("not the last device");

        // ---- reset: the host page leaves the bus, the HW queues go (descending), registers return to reset values ----
        cmdqv.Reset();

        cmdqv.VintfPageMapped.ShouldBeFalse();
        bed.Vintf.LogicalQueues.ShouldAllBe(q => q == null);
        (cmdqv.HwQueueOf(0), cmdqv.HwQueueOf(1)).ShouldBe((null, null));
        bed.R32((ulong)CmdqvRegister.CONFIG).ShouldBe(G.ConfigReset);
        bed.R32(G.Vintf0Config).ShouldBe(0u);
        bed.R32(G.LvcmdqErrMap(0)).ShouldBe(0u);
        bed.R32(G.ViIntMask(0)).ShouldBe(0u);
        bed.R64(G.Offset(CmdqvPage.VcmdqPage1, 0, VcmdqPage1Register.BASE)).ShouldBe(0UL);
        long trapsAfterReset = cmdqv.Counters.Traps(CmdqvPage.VintfPage0);
        bed.Page0(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.CONS).ShouldBe(0u, "served from the cleared cache again");
        cmdqv.Counters.Traps(CmdqvPage.VintfPage0).ShouldBe(trapsAfterReset + 1, "VINTF page 0 is trapped again");
        cmdqv.EnabledQueues.ShouldBeEmpty();
        cmdqv.CheckUnplug("hostdev1", devicesOnViommu: 1).ShouldBeNull();
        cmdqv.CheckUnplug(CmdqvGuestBed.Device, devicesOnViommu: 1).ShouldBe(CmdqvUnplugPolicy.CreatorMessage, "CMDQV stays active until the vSMMU drops it");

        // The report has both sides.
        CmdqvAccessReport report = cmdqv.Counters.Snapshot();
        report.TotalTraps.ShouldBe(cmdqv.Counters.TotalTraps);
        report.DirectProdWritesByQueue.ShouldBe([3L, 0L]);
        report.TrapsByPage[CmdqvPage.Config].ShouldBeGreaterThan(0);
    }

    [Fact]
    public void Dispose_gives_the_mmap_the_vEVENTQ_and_the_HW_queues_back_so_the_vIOMMU_can_go()
    {
        using var bed = new CmdqvGuestBed();
        bed.BringUp();
        bed.Cmdqv.HwQueueOf(1).ShouldNotBeNull();
        Should.Throw<Iommufd.IommufdException>(() => bed.Fd.Destroy(bed.Viommu.Id)).Errno.ShouldBe(Iommufd.Errno.EBUSY);

        bed.Cmdqv.Dispose();

        bed.Bus.Regions.ShouldBeEmpty();
        bed.Fd.Destroy(bed.Vdevice);
        bed.Fd.DetachDevice(bed.Dev);
        bed.Fd.Destroy(bed.NestedHwpt);
        bed.Fd.Destroy(bed.Viommu.Id);
        bed.Cmdqv.Messages.ShouldBeEmpty("every kernel call on the way out succeeded (queues went in descending order)");
    }
}
