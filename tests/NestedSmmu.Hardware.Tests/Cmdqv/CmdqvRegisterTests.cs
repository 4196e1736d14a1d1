using NestedSmmu.Hardware.Cmdqv;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Hardware.Tests.Cmdqv;

public sealed class CmdqvRegisterTests
{
    // PARAM vectors. 0x4011: QEMU's guest-visible PARAM (VER 1, NUM_CMDQ_LOG2 1, NUM_VI_LOG2 0,
    // NUM_SID_PER_VI_LOG2 4), hw/arm/tegra241-cmdqv. 0x4471: this model's default (16 VINTFs,
    // 128 VCMDQs, 16 SIDs), encoded with Linux's field positions (VER 3:0, NUM_VCMDQ_LOG2 7:4,
    // NUM_VINTF_LOG2 11:8, NUM_SID_PER_VM_LOG2 15:12).
    [Theory]
    [InlineData(0, 1, 4, 1, 0x4011u)]
    [InlineData(4, 7, 4, 1, 0x4471u)]
    [InlineData(6, 7, 0, 1, 0x0671u)]
    [InlineData(2, 3, 2, 2, 0x2232u)]
    public void Param_reflects_the_options(int vintfLog2, int vcmdqLog2, int sidLog2, int version, uint expected)
    {
        var rig = new CmdqvRig(new Tegra241CmdqvOptions { NumVintfLog2 = vintfLog2, NumVcmdqLog2 = vcmdqLog2, NumSidPerVmLog2 = sidLog2, Version = version });
        uint param = rig.Read32((ulong)CmdqvRegister.PARAM);
        param.ShouldBe(expected);

        // Decode the way Linux's probe does.
        int vintfs = 1 << (int)Tegra241Cmdqv.CMDQV_NUM_VINTF_LOG2.Get(param);
        int vcmdqs = 1 << (int)Tegra241Cmdqv.CMDQV_NUM_VCMDQ_LOG2.Get(param);
        vintfs.ShouldBe(rig.Cmdqv.NumVintfs);
        vcmdqs.ShouldBe(rig.Cmdqv.NumVcmdqs);
        (vcmdqs / vintfs).ShouldBe(rig.Cmdqv.LvcmdqsPerVintf);
        (1 << (int)Tegra241Cmdqv.CMDQV_NUM_SID_PER_VM_LOG2.Get(param)).ShouldBe(rig.Cmdqv.SidsPerVintf);
        ((int)Tegra241Cmdqv.CMDQV_VER.Get(param)).ShouldBe(version);
    }

    // Frame sizes: QEMU maps its 1-VINTF CMDQV as a 0x50000 region; Linux puts VINTF i's logical
    // page 0 at 0x30000 + 128K i, so 2^n VINTFs need 0x30000 + 2^n * 0x20000.
    [Theory]
    [InlineData(0, 0x50000UL)]
    [InlineData(4, 0x230000UL)]
    [InlineData(6, 0x830000UL)]
    public void Frame_covers_every_vintf_logical_page(int vintfLog2, ulong size)
    {
        var cmdqv = new CmdqvRig(new Tegra241CmdqvOptions { NumVintfLog2 = vintfLog2, NumVcmdqLog2 = 7 }).Cmdqv;
        cmdqv.Size.ShouldBe(size);
        L.VintfPage1(cmdqv.NumVintfs - 1).ShouldBe(size - L.PageSize);
    }

    [Fact]
    public void Layout_matches_linux_offsets()
    {
        // Offsets from tegra241-cmdqv.c: CMDQ_ALLOC(q) 0x200 + 4q, VINTF(v) 0x1000 + 0x100 v,
        // VCMDQ page 0/1 at 64K/128K + 0x80 q, VINTFi_LVCMDQ_PAGE0(i, q) 0x30000 + 128K i + 0x80 q.
        L.CmdqAlloc(5).ShouldBe(0x214UL);
        L.CmdqErrMap(3).ShouldBe(0x30UL);
        L.Vintf(2, VintfRegister.STATUS).ShouldBe(0x1204UL);
        L.SidMatch(1, 15).ShouldBe(0x117CUL);
        L.SidReplace(1, 0).ShouldBe(0x1180UL);
        L.LvcmdqErrMap64(0, 1).ShouldBe(0x10C8UL);
        L.Vcmdq(3, VcmdqPage0Register.PROD).ShouldBe(0x10184UL);
        L.Vcmdq(3, VcmdqPage1Register.CONS_INDX_BASE).ShouldBe(0x20188UL);
        L.Lvcmdq(2, 1, VcmdqPage0Register.GERRORN).ShouldBe(0x70094UL);
        L.Lvcmdq(2, 1, VcmdqPage1Register.BASE).ShouldBe(0x80080UL);
    }

    [Theory]
    [InlineData(7, 7, 4, 1)]
    [InlineData(-1, 7, 4, 1)]
    [InlineData(4, 8, 4, 1)]
    [InlineData(4, 3, 4, 1)]
    [InlineData(4, 7, 5, 1)]
    [InlineData(4, 7, 4, 16)]
    public void Impossible_options_are_refused_with_a_message(int vintfLog2, int vcmdqLog2, int sidLog2, int version)
    {
        var options = new Tegra241CmdqvOptions { NumVintfLog2 = vintfLog2, NumVcmdqLog2 = vcmdqLog2, NumSidPerVmLog2 = sidLog2, Version = version };
        var ex = Should.Throw<ArgumentException>(() => new CmdqvRig(options));
        ex.ParamName.ShouldNotBeNull();
        ex.Message.ShouldContain(" = ");
    }

    [Fact]
    public void Reset_values_follow_qemu_and_enable_toggles_status()
    {
        var rig = new CmdqvRig();
        rig.Read32((ulong)CmdqvRegister.CONFIG).ShouldBe(0x0002_0083u);
        rig.Read32((ulong)CmdqvRegister.STATUS).ShouldBe(Tegra241Cmdqv.CMDQV_ENABLED);

        rig.EnableCmdqv(false);
        rig.Read32((ulong)CmdqvRegister.STATUS).ShouldBe(0u);
        rig.Cmdqv.Enabled.ShouldBeFalse();
        // The batching fields are kept as written.
        rig.Read32((ulong)CmdqvRegister.CONFIG).ShouldBe(0x0002_0082u);

        rig.EnableCmdqv();
        rig.Read32((ulong)CmdqvRegister.STATUS).ShouldBe(Tegra241Cmdqv.CMDQV_ENABLED);
    }

    [Fact]
    public void Param_and_status_are_read_only()
    {
        var rig = new CmdqvRig();
        uint param = rig.Read32((ulong)CmdqvRegister.PARAM);
        rig.Write32((ulong)CmdqvRegister.PARAM, 0xFFFF_FFFF);
        rig.Write32((ulong)CmdqvRegister.STATUS, 0);
        rig.Read32((ulong)CmdqvRegister.PARAM).ShouldBe(param);
        rig.Read32((ulong)CmdqvRegister.STATUS).ShouldBe(Tegra241Cmdqv.CMDQV_ENABLED);
    }

    [Fact]
    public void Cmdq_alloc_maps_a_global_queue_to_a_vintf_logical_slot()
    {
        var rig = new CmdqvRig();
        uint value = Tegra241Cmdqv.EncodeCmdqAlloc(vintf: 3, lvcmdq: 1);
        value.ShouldBe((3u << 15) | (1u << 1) | 1u);
        rig.Write32(L.CmdqAlloc(25), value | 0xFFE0_7F00); // reserved bits are dropped
        rig.Read32(L.CmdqAlloc(25)).ShouldBe(value);

        // VINTF STATUS counts the queues allocated to it.
        uint status = rig.Read32(L.Vintf(3, VintfRegister.STATUS));
        Tegra241Cmdqv.VINTF_NUM_LVCMDQ.Get(status).ShouldBe(1UL);

        // The VINTF's logical page 1 now reaches VCMDQ 25's BASE, and vice versa.
        rig.Cmdqv.Write(L.Lvcmdq(3, 1, VcmdqPage1Register.BASE), 8, Tegra241Cmdqv.EncodeVcmdqBase(0x4000_0000, 4));
        rig.Cmdqv.Read(L.Vcmdq(25, VcmdqPage1Register.BASE), 8).ShouldBe(0x4000_0004UL);

        // Clearing ALLOCATED unmaps the logical slot: it reads as zero and ignores writes.
        rig.Write32(L.CmdqAlloc(25), Tegra241Cmdqv.EncodeCmdqAlloc(3, 1, allocated: false));
        rig.Cmdqv.Read(L.Lvcmdq(3, 1, VcmdqPage1Register.BASE), 8).ShouldBe(0UL);
        rig.Cmdqv.Write(L.Lvcmdq(3, 1, VcmdqPage1Register.BASE), 8, 0x1234_5000);
        rig.Cmdqv.Read(L.Vcmdq(25, VcmdqPage1Register.BASE), 8).ShouldBe(0x4000_0004UL);
        Tegra241Cmdqv.VINTF_NUM_LVCMDQ.Get(rig.Read32(L.Vintf(3, VintfRegister.STATUS))).ShouldBe(0UL);
    }

    [Fact]
    public void Vintf_config_holds_vmid_and_hyp_own_and_enable_sets_status()
    {
        var rig = new CmdqvRig();
        uint config = Tegra241Cmdqv.EncodeVintfConfig(enable: false, vmid: 0xBEEF, hypOwn: true);
        config.ShouldBe((1u << 17) | (0xBEEFu << 1));
        rig.Write32(L.Vintf(1, VintfRegister.CONFIG), config);
        rig.Read32(L.Vintf(1, VintfRegister.CONFIG)).ShouldBe(config);
        (rig.Read32(L.Vintf(1, VintfRegister.STATUS)) & Tegra241Cmdqv.VINTF_ENABLED).ShouldBe(0u);

        rig.Write32(L.Vintf(1, VintfRegister.CONFIG), config | Tegra241Cmdqv.VINTF_EN);
        (rig.Read32(L.Vintf(1, VintfRegister.STATUS)) & Tegra241Cmdqv.VINTF_ENABLED).ShouldBe(Tegra241Cmdqv.VINTF_ENABLED);

        // A disabled CMDQV disables every VINTF.
        rig.EnableCmdqv(false);
        (rig.Read32(L.Vintf(1, VintfRegister.STATUS)) & Tegra241Cmdqv.VINTF_ENABLED).ShouldBe(0u);
    }

    [Fact]
    public void Sid_slots_hold_match_and_replace()
    {
        var rig = new CmdqvRig();
        rig.MapSid(vintf: 2, slot: 15, vsid: 0x42, psid: 0x1_0008);
        rig.Read32(L.SidMatch(2, 15)).ShouldBe((0x42u << 1) | 1u);
        rig.Read32(L.SidReplace(2, 15)).ShouldBe(0x1_0008u);
        // Beyond PHYS_SID [19:0] and VIRT_SID [20:1] nothing is kept.
        rig.Write32(L.SidReplace(2, 0), 0xFFFF_FFFF);
        rig.Read32(L.SidReplace(2, 0)).ShouldBe(0xF_FFFFu);
        rig.Write32(L.SidMatch(2, 0), 0xFFFF_FFFF);
        rig.Read32(L.SidMatch(2, 0)).ShouldBe(0x1F_FFFFu);
    }

    [Fact]
    public void Sid_slots_beyond_num_sid_per_vm_do_not_exist()
    {
        var rig = new CmdqvRig(new Tegra241CmdqvOptions { NumSidPerVmLog2 = 1 });
        rig.MapSid(0, 1, 7, 9);
        rig.Read32(L.SidMatch(0, 1)).ShouldBe(Tegra241Cmdqv.EncodeSidMatch(7));
        rig.Write32(L.SidMatch(0, 2), Tegra241Cmdqv.EncodeSidMatch(7));
        rig.Read32(L.SidMatch(0, 2)).ShouldBe(0u);
    }

    [Fact]
    public void Queue_enable_needs_allocation_an_enabled_vintf_and_the_cmdqv()
    {
        var rig = new CmdqvRig();
        ulong status = L.Vcmdq(9, VcmdqPage0Register.STATUS);
        rig.Write32(L.Vcmdq(9, VcmdqPage0Register.CONFIG), Tegra241Cmdqv.VCMDQ_EN);
        rig.Read32(status).ShouldBe(0u); // not allocated

        rig.Allocate(9, vintf: 1, lvcmdq: 0);
        rig.Read32(status).ShouldBe(0u); // VINTF 1 disabled

        rig.ConfigureVintf(1, vmid: 5, hypOwn: false);
        rig.Read32(status).ShouldBe(Tegra241Cmdqv.VCMDQ_ENABLED);
        rig.Read32(L.Lvcmdq(1, 0, VcmdqPage0Register.STATUS)).ShouldBe(Tegra241Cmdqv.VCMDQ_ENABLED);

        rig.EnableCmdqv(false);
        rig.Read32(status).ShouldBe(0u);
        rig.EnableCmdqv();
        rig.Write32(L.Vcmdq(9, VcmdqPage0Register.CONFIG), 0);
        rig.Read32(status).ShouldBe(0u);
    }

    [Fact]
    public void Base_is_fixed_while_the_queue_is_enabled()
    {
        var rig = new CmdqvRig();
        rig.BringUpHost(log2Entries: 4);
        ulong baseValue = rig.Cmdqv.Read(L.Vcmdq(0, VcmdqPage1Register.BASE), 8);
        baseValue.ShouldBe(Tegra241Cmdqv.EncodeVcmdqBase(CmdqvRig.BufferOf(0), 4));
        rig.Cmdqv.Write(L.Vcmdq(0, VcmdqPage1Register.BASE), 8, Tegra241Cmdqv.EncodeVcmdqBase(0x7000_0000, 2));
        rig.Cmdqv.Read(L.Vcmdq(0, VcmdqPage1Register.BASE), 8).ShouldBe(baseValue);

        rig.Write32(L.Vcmdq(0, VcmdqPage0Register.CONFIG), 0);
        // Two 32-bit halves (BASE_L, BASE_H) build the same value as one 64-bit write.
        ulong wanted = Tegra241Cmdqv.EncodeVcmdqBase(0x0000_8765_4321_0000, 19);
        rig.Write32(L.Vcmdq(0, VcmdqPage1Register.BASE), (uint)wanted);
        rig.Write32(L.Vcmdq(0, VcmdqPage1Register.BASE_H), (uint)(wanted >> 32));
        rig.Cmdqv.Read(L.Vcmdq(0, VcmdqPage1Register.BASE), 8).ShouldBe(wanted);
        rig.Read32(L.Vcmdq(0, VcmdqPage1Register.BASE_H)).ShouldBe(0x8765u);
        // ADDR stops at bit 47.
        rig.Cmdqv.Write(L.Vcmdq(0, VcmdqPage1Register.BASE), 8, ulong.MaxValue);
        rig.Cmdqv.Read(L.Vcmdq(0, VcmdqPage1Register.BASE), 8).ShouldBe(0x0000_FFFF_FFFF_FFFFUL);
    }

    [Fact]
    public void Cons_is_writable_only_while_the_queue_is_disabled()
    {
        var rig = new CmdqvRig();
        rig.BringUpHost(log2Entries: 4);
        rig.Write32(L.Vcmdq(0, VcmdqPage0Register.CONS), 3);
        rig.Cons(0).ShouldBe(0u);
        rig.Write32(L.Vcmdq(0, VcmdqPage0Register.CONFIG), 0);
        rig.Write32(L.Vcmdq(0, VcmdqPage0Register.CONS), 3);
        rig.Cons(0).ShouldBe(3u);
    }

    [Fact]
    public void Vintf_int_mask_is_a_64_bit_pair_limited_to_existing_vintfs()
    {
        var rig = new CmdqvRig();
        rig.Cmdqv.Write((ulong)CmdqvRegister.VINTF_INT_MASK, 8, ulong.MaxValue);
        rig.Read32((ulong)CmdqvRegister.VINTF_INT_MASK).ShouldBe(0xFFFFu);
        rig.Read32((ulong)CmdqvRegister.VINTF_INT_MASK_H).ShouldBe(0u);
    }

    [Fact]
    public void Reset_forgets_allocation_and_configuration()
    {
        var rig = new CmdqvRig();
        rig.BringUpGuest(vintf: 1, vmid: 5, queue: 8);
        rig.MapSid(1, 0, 1, 2);
        rig.Cmdqv.Reset();
        rig.Read32(L.CmdqAlloc(8)).ShouldBe(0u);
        rig.Read32(L.Vintf(1, VintfRegister.CONFIG)).ShouldBe(0u);
        rig.Read32(L.SidMatch(1, 0)).ShouldBe(0u);
        rig.Cmdqv.Read(L.Vcmdq(8, VcmdqPage1Register.BASE), 8).ShouldBe(0UL);
        rig.Read32((ulong)CmdqvRegister.CONFIG).ShouldBe(Tegra241Cmdqv.CONFIG_ResetValue);
    }
}
