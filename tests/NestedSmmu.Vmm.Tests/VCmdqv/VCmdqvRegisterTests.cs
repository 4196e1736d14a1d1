using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Iommufd;
using NestedSmmu.Vmm.VCmdqv;
using G = NestedSmmu.Vmm.VCmdqv.GuestCmdqvLayout;
using Hw = NestedSmmu.Hardware.Cmdqv.Tegra241Cmdqv;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Vmm.Tests.VCmdqv;

/// <summary>The trapped register file: reset values, read-only registers, access widths, the cache for unallocated queues, setup failures.</summary>
public sealed class VCmdqvRegisterTests
{
    // Reset values and offsets: QEMU's tegra241_cmdqv_init_regs and hw/arm/tegra241-cmdqv.h (qemu.md §4).
    [Theory]
    [InlineData(0x0000u, 0x0002_0083u)] // CONFIG: CMDQV_EN, PER_CMD_OFFSET 1, MAX_CLK_BATCH 8, MAX_CMD_BATCH 32
    [InlineData(0x0004u, 0x0000_4011u)] // PARAM: VER 1, NUM_CMDQ_LOG2 1, NUM_VI_LOG2 0, NUM_SID_PER_VI_LOG2 4
    [InlineData(0x0008u, 0x0000_0001u)] // STATUS: CMDQV_ENABLED
    [InlineData(0x0014u, 0u)] // VI_ERR_MAP_0
    [InlineData(0x001Cu, 0u)] // VI_INT_MASK_0
    [InlineData(0x0024u, 0u)] // CMDQ_ERR_MAP_0
    [InlineData(0x0200u, 0u)] // CMDQ_ALLOC_MAP_0
    [InlineData(0x1000u, 0u)] // VINTF0_CONFIG
    [InlineData(0x1004u, 0u)] // VINTF0_STATUS
    [InlineData(0x10C0u, 0u)] // VINTF0_LVCMDQ_ERR_MAP_0
    [InlineData(0x1_0000u, 0u)] // VCMDQ0_CONS_INDX
    [InlineData(0x2_0000u, 0u)] // VCMDQ0_BASE_L
    public void Registers_come_out_of_reset_with_QEMUs_values(uint offset, uint expected)
    {
        using var bed = new CmdqvGuestBed();
        bed.R32(offset).ShouldBe(expected);
    }

    [Fact]
    public void The_region_is_five_trapped_64K_pages_on_the_guest_bus()
    {
        using var bed = new CmdqvGuestBed();
        Tegra241VCmdqv.Size.ShouldBe(0x50000UL);
        bed.Bus.Regions.Select(r => r.Base - CmdqvGuestBed.CmdqvBase).ShouldBe([0x0UL, 0x10000, 0x20000, 0x30000, 0x40000]);
        bed.Bus.Regions.ShouldAllBe(r => r.Device.Size == 0x10000);
        foreach (CmdqvPage page in Enum.GetValues<CmdqvPage>())
        {
            long before = bed.Cmdqv.Counters.Traps(page);
            bed.R32(G.PageBase(page));
            bed.Cmdqv.Counters.Traps(page).ShouldBe(before + 1, $"{page} is trapped");
        }
    }

    [Fact]
    public void Read_only_registers_ignore_writes_and_HYP_OWN_is_forced_to_zero()
    {
        using var bed = new CmdqvGuestBed();
        bed.W32((ulong)CmdqvRegister.PARAM, 0xFFFF_FFFF);
        bed.W32(G.ViErrMap(0), 1);
        bed.W32(L.CmdqErrMap(0), 1);
        bed.W32(G.Vintf0Status, 1);
        bed.W32(G.LvcmdqErrMap(0), 1);
        (bed.R32((ulong)CmdqvRegister.PARAM), bed.R32(G.ViErrMap(0)), bed.R32(L.CmdqErrMap(0)), bed.R32(G.Vintf0Status), bed.R32(G.LvcmdqErrMap(0)))
            .ShouldBe((G.Param, 0u, 0u, 0u, 0u));

        bed.W32(G.Vintf0Config, Hw.VINTF_HYP_OWN | (uint)Hw.VINTF_VMID.Encode(9));
        bed.R32(G.Vintf0Config).ShouldBe((uint)Hw.VINTF_VMID.Encode(9));
        bed.W32(L.SidMatch(0, 15), Hw.EncodeSidMatch(0x42));
        bed.W32(L.SidReplace(0, 15), 0x1234);
        (bed.R32(L.SidMatch(0, 15)), bed.R32(L.SidReplace(0, 15))).ShouldBe((Hw.EncodeSidMatch(0x42), 0x1234u));
        bed.W32(G.ViIntMask(1), 0xABCD);
        bed.R32(G.ViIntMask(1)).ShouldBe(0xABCDu);
    }

    [Fact]
    public void Eight_byte_writes_land_only_at_BASE_and_CONS_INDX_BASE_and_odd_widths_are_not_decoded()
    {
        using var bed = new CmdqvGuestBed();
        ulong baseOffset = G.Offset(CmdqvPage.VcmdqPage1, 1, VcmdqPage1Register.BASE);
        ulong dram = G.Offset(CmdqvPage.VcmdqPage1, 1, VcmdqPage1Register.CONS_INDX_BASE);
        bed.W64(baseOffset, 0x0000_1234_5678_9A08);
        bed.W64(dram, 0x0000_00AB_CDEF_0000);
        bed.R64(baseOffset).ShouldBe(0x0000_1234_5678_9A08UL, "a 64-bit read at BASE_L returns the whole register");
        bed.R32(baseOffset).ShouldBe(0x5678_9A08u);
        bed.R32(baseOffset + 4).ShouldBe(0x1234u, "BASE_H");
        bed.R64(dram).ShouldBe(0x0000_00AB_CDEF_0000UL);
        // The VINTF page 1 aperture aliases the direct one.
        bed.R64(G.Offset(CmdqvPage.VintfPage1, 1, VcmdqPage1Register.BASE)).ShouldBe(0x0000_1234_5678_9A08UL);

        bed.W64((ulong)CmdqvRegister.CONFIG, 0);
        bed.R32((ulong)CmdqvRegister.CONFIG).ShouldBe(G.ConfigReset, "an 8-byte write to the config page is ignored");
        bed.W64(G.Offset(CmdqvPage.VcmdqPage0, 0, VcmdqPage0Register.CONS), 0x5_0000_0005);
        bed.R32(G.Offset(CmdqvPage.VcmdqPage0, 0, VcmdqPage0Register.CONS)).ShouldBe(0u, "page 0 takes 32-bit writes only");
        bed.W64(baseOffset + 4, 0);
        bed.R64(baseOffset).ShouldBe(0x0000_1234_5678_9A08UL, "not at BASE_H");

        bed.Bus.Write(CmdqvGuestBed.CmdqvBase + (ulong)CmdqvRegister.CONFIG, 2, 0);
        bed.Bus.Read(CmdqvGuestBed.CmdqvBase + (ulong)CmdqvRegister.PARAM, 1).ShouldBe(0UL);
        bed.R32((ulong)CmdqvRegister.CONFIG).ShouldBe(G.ConfigReset);
        bed.R64(0x2).ShouldBe(0UL, "misaligned");
    }

    [Fact]
    public void An_unallocated_queue_is_served_from_the_cache_and_its_writes_reach_the_hardware_at_allocation()
    {
        using var bed = new CmdqvGuestBed();
        // A guest that programs page 0 before anything is allocated: everything is cached.
        bed.Page0(CmdqvPage.VcmdqPage0, 0, VcmdqPage0Register.CONS, 0);
        bed.Page0(CmdqvPage.VcmdqPage0, 0, VcmdqPage0Register.PROD, 0);
        bed.Page0(CmdqvPage.VcmdqPage0, 0, VcmdqPage0Register.CONFIG, Hw.VCMDQ_EN);
        bed.Page0(CmdqvPage.VcmdqPage0, 0, VcmdqPage0Register.STATUS).ShouldBe(Hw.VCMDQ_ENABLED, "cached CONFIG.EN shows as EN_OK");
        bed.Page0(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.CONFIG).ShouldBe(Hw.VCMDQ_EN, "the VINTF page 0 aperture aliases the cache");
        bed.Cmdqv.HwQueueOf(0).ShouldBeNull();

        bed.BringUp();

        // The cached CONFIG.EN went to the host page: the hardware queue runs.
        int global = bed.Vintf.LogicalQueues[0]!.Value;
        bed.Diag.ReadCmdqvRegister(CmdqvGuestBed.Smmu, L.Vcmdq(global, VcmdqPage0Register.STATUS)).ShouldBe(Hw.VCMDQ_ENABLED);
        // Trapped page 0 accesses of an allocated queue go to the host page too.
        long direct = bed.Cmdqv.Counters.TotalDirect;
        bed.Page0(CmdqvPage.VcmdqPage0, 0, VcmdqPage0Register.STATUS).ShouldBe(Hw.VCMDQ_ENABLED);
        bed.Page0(CmdqvPage.VcmdqPage0, 1, VcmdqPage0Register.CONFIG, Hw.VCMDQ_EN);
        bed.Diag.ReadCmdqvRegister(CmdqvGuestBed.Smmu, L.Vcmdq(global + 1, VcmdqPage0Register.CONFIG)).ShouldBe(Hw.VCMDQ_EN);
        bed.Cmdqv.Counters.TotalDirect.ShouldBe(direct, "the direct aperture is trapped, not direct");
    }

    [Fact]
    public void A_refused_HW_QUEUE_ALLOC_sets_CMDQ_INIT_ERR_with_QEMUs_message()
    {
        using var bed = new CmdqvGuestBed();
        bed.W32(L.CmdqAlloc(0), Hw.EncodeCmdqAlloc(0, 0));
        bed.W32(G.Vintf0Config, Hw.VINTF_EN);
        // BASE outside guest RAM: the kernel finds no mapping at that IOVA.
        ulong outside = CmdqvGuestBed.RamGpa + CmdqvGuestBed.RamSize;
        bed.W64(G.Offset(CmdqvPage.VcmdqPage1, 0, VcmdqPage1Register.BASE), Hw.EncodeVcmdqBase(outside, CmdqvGuestBed.QueueLog2Entries));

        bed.Cmdqv.HwQueueOf(0).ShouldBeNull();
        (bed.Page0(CmdqvPage.VcmdqPage0, 0, VcmdqPage0Register.GERROR) & Hw.VCMDQ_GERROR_CMDQ_INIT_ERR).ShouldBe(Hw.VCMDQ_GERROR_CMDQ_INIT_ERR);
        bed.Page0(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.GERROR).ShouldBe(0u, "VINTF page 0 is the host page now: the queue has no HW slot there");
        bed.Page0(CmdqvPage.VcmdqPage0, 0, VcmdqPage0Register.CONFIG, Hw.VCMDQ_EN);
        bed.Page0(CmdqvPage.VcmdqPage0, 0, VcmdqPage0Register.STATUS).ShouldBe(0u, "an init error keeps EN_OK clear");
        string message = bed.Cmdqv.Messages.ShouldHaveSingleItem();
        message.ShouldStartWith("IOMMU_HW_QUEUE_ALLOC failed: No such file or directory");
        message.ShouldContain("is not inside guest RAM");

        // A good BASE sets the queue up and clears the error.
        bed.W64(G.Offset(CmdqvPage.VcmdqPage1, 0, VcmdqPage1Register.BASE), Hw.EncodeVcmdqBase(CmdqvGuestBed.QueueGpa[0], CmdqvGuestBed.QueueLog2Entries));
        bed.Cmdqv.HwQueueOf(0).ShouldNotBeNull();
        bed.Page0(CmdqvPage.VcmdqPage0, 0, VcmdqPage0Register.STATUS).ShouldBe(Hw.VCMDQ_ENABLED, "the cached CONFIG.EN was synced");
    }

    [Fact]
    public void A_queue_larger_than_the_host_allows_names_the_backing_in_its_message()
    {
        using var bed = new CmdqvGuestBed(backendPageSize: 0x1000);
        bed.W32(L.CmdqAlloc(0), Hw.EncodeCmdqAlloc(0, 0));
        bed.W32(G.Vintf0Config, Hw.VINTF_EN);
        // 2^20 entries: beyond the VCMDQ's LOG2SIZE maximum of 19, which the kernel refuses (EINVAL).
        bed.W64(G.Offset(CmdqvPage.VcmdqPage1, 0, VcmdqPage1Register.BASE), Hw.EncodeVcmdqBase(0, 20) | CmdqvGuestBed.RamGpa);

        string message = bed.Cmdqv.Messages.ShouldHaveSingleItem();
        message.ShouldStartWith("IOMMU_HW_QUEUE_ALLOC failed: Invalid argument");
        message.ShouldContain("VCMDQ0");
        message.ShouldContain("4 KiB host page of guest RAM 'ram0'");
    }

    [Fact]
    public void Queues_are_freed_in_descending_order_and_a_lower_queue_can_be_rebuilt_under_a_running_one()
    {
        using var bed = new CmdqvGuestBed();
        bed.BringUp();
        bed.Page0(CmdqvPage.VintfPage0, 1, VcmdqPage0Register.CONFIG, Hw.VCMDQ_EN);
        bed.WriteCommand(1, 0, Hardware.Smmu.Command.Sync());
        bed.Page0(CmdqvPage.VintfPage0, 1, VcmdqPage0Register.PROD, 1);

        // Moving queue 0's BASE re-allocates it; queue 1 steps down and back up around it, keeping its state.
        bed.W64(G.Offset(CmdqvPage.VcmdqPage1, 0, VcmdqPage1Register.BASE), Hw.EncodeVcmdqBase(CmdqvGuestBed.QueueGpa[0] + 0x2_0000, CmdqvGuestBed.QueueLog2Entries));

        bed.Cmdqv.Messages.ShouldBeEmpty("no EBUSY: queue 1 went before queue 0");
        bed.Cmdqv.HwQueueOf(1).ShouldNotBeNull();
        (bed.Page0(CmdqvPage.VintfPage0, 1, VcmdqPage0Register.CONS), bed.Page0(CmdqvPage.VintfPage0, 1, VcmdqPage0Register.PROD),
            bed.Page0(CmdqvPage.VintfPage0, 1, VcmdqPage0Register.STATUS)).ShouldBe((1u, 1u, Hw.VCMDQ_ENABLED));

        // Unmapping queue 0 (ALLOC cleared) while queue 1 is allocated: the kernel wants index 0 below index 1.
        bed.W32(L.CmdqAlloc(0), 0);
        bed.Cmdqv.HwQueueOf(0).ShouldBeNull();
        bed.Cmdqv.HwQueueOf(1).ShouldBeNull();
        (bed.Page0(CmdqvPage.VcmdqPage0, 1, VcmdqPage0Register.GERROR) & Hw.VCMDQ_GERROR_CMDQ_INIT_ERR).ShouldBe(Hw.VCMDQ_GERROR_CMDQ_INIT_ERR);
        bed.Cmdqv.Messages.ShouldHaveSingleItem().ShouldBe("IOMMU_HW_QUEUE_ALLOC failed: Input/output error");

        // Disabling the CMDQV frees whatever is left and clears STATUS.
        bed.W32(L.CmdqAlloc(0), Hw.EncodeCmdqAlloc(0, 0));
        bed.Cmdqv.HwQueueOf(0).ShouldNotBeNull();
        bed.W32((ulong)CmdqvRegister.CONFIG, 0);
        bed.R32((ulong)CmdqvRegister.STATUS).ShouldBe(0u);
        bed.Cmdqv.HwQueueOf(0).ShouldBeNull();
        bed.Vintf.LogicalQueues.ShouldAllBe(q => q == null);
    }

    [Fact]
    public void Disabling_VINTF0_unmaps_the_host_page_and_frees_the_queues()
    {
        using var bed = new CmdqvGuestBed();
        bed.BringUp();
        bed.Bus.TryFind(CmdqvGuestBed.CmdqvBase + G.PageBase(CmdqvPage.VintfPage0), out var mapped).ShouldBeTrue();
        mapped.Name.ShouldEndWith("vintf-page0");

        bed.W32(G.Vintf0Config, 0);

        bed.Cmdqv.VintfPageMapped.ShouldBeFalse();
        (bed.R32(G.Vintf0Status) & Hw.VINTF_ENABLED).ShouldBe(0u);
        bed.Vintf.LogicalQueues.ShouldAllBe(q => q == null);
        bed.Bus.TryFind(CmdqvGuestBed.CmdqvBase + G.PageBase(CmdqvPage.VintfPage0), out var trapped).ShouldBeTrue();
        trapped.Name.ShouldEndWith(nameof(CmdqvPage.VintfPage0));
        bed.Cmdqv.Messages.ShouldBeEmpty();
    }
    [Fact]
    public void Direct_accesses_are_counted_per_guest_queue_and_the_host_VINTFs_other_slots_apart()
    {
        using var bed = new CmdqvGuestBed();
        bed.BringUp();
        var edges = new List<string>();
        bed.Irq.Pulsed += line => edges.Add(line.Name);
        long traps = bed.Cmdqv.Counters.TotalTraps;

        bed.Page0(CmdqvPage.VintfPage0, 1, VcmdqPage0Register.PROD, 0);
        bed.Page0(CmdqvPage.VintfPage0, 1, VcmdqPage0Register.CONS);
        // Logical queue 2 of the host VINTF: on the mapped page, but no queue of the guest's (and not allocated: reads 0).
        bed.Page0(CmdqvPage.VintfPage0, 2, VcmdqPage0Register.CONS).ShouldBe(0u);

        (bed.Cmdqv.Counters.Direct(0), bed.Cmdqv.Counters.Direct(1), bed.Cmdqv.Counters.DirectProdWrites(1), bed.Cmdqv.Counters.DirectOther)
            .ShouldBe((0L, 2L, 1L, 1L));
        bed.Cmdqv.Counters.TotalDirect.ShouldBe(3);
        bed.Cmdqv.Counters.TotalTraps.ShouldBe(traps);
        edges.ShouldBeEmpty();
        bed.Cmdqv.PollEvents().ShouldBe(0);
    }
}
