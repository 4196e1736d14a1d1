using NestedSmmu.Guest.Dma;
using NestedSmmu.Guest.Smmu;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Guest.Tests.Dma;

/// <summary>The DMA-mapping API end to end: guest maps, a Hardware PCI endpoint DMAs through the SMMU model.</summary>
public sealed class DmaDeviceTests
{
    private static (GuestRig Rig, DmaDevice Dev, NestedSmmu.Hardware.Pci.PciEndpoint Ep) Setup(SmmuFeatures? f = null, bool ats = false, ushort sid = 0x0108)
    {
        var rig = new GuestRig(f).Boot();
        var master = rig.Driver.AddMaster("nvme0", sid, ats);
        var dev = new DmaDevice(rig.Driver, master);
        var ep = rig.Endpoint("nvme0", sid, ats);
        ep.AtsEnabled = ats; // the PCI driver's ATS Control write (config space, not modelled by the guest)
        return (rig, dev, ep);
    }

    [Fact]
    public void Dma_lands_where_the_buffer_was_mapped_and_reads_back_what_the_guest_wrote()
    {
        var (rig, dev, ep) = Setup();
        ulong buffer = GuestRig.BufferBase + 0x5000;
        var m = dev.Map(buffer, 0x3000).ShouldNotBeNull();
        m.Leaves.Count.ShouldBe(3);
        m.Leaves.ShouldAllBe(l => l.Size == 0x1000);
        for (int page = 0; page < 3; page++)
        {
            var data = GuestRig.Pattern(256, page);
            ep.Write(m.Iova + (ulong)page * 0x1000 + 0x80, data).IsSuccess.ShouldBeTrue();
            rig.ReadRam(buffer + (ulong)page * 0x1000 + 0x80, 256).ShouldBe(data);
        }
        var guestData = GuestRig.Pattern(64, 9);
        rig.Memory.Write(buffer + 0x2100, guestData);
        var read = new byte[64];
        ep.Read(m.Iova + 0x2100, read).IsSuccess.ShouldBeTrue();
        read.ShouldBe(guestData);
    }

    [Fact]
    public void A_buffer_with_an_offset_keeps_it_in_the_iova()
    {
        var (rig, dev, ep) = Setup();
        ulong buffer = GuestRig.BufferBase + 0x7123;
        var m = dev.Map(buffer, 100).ShouldNotBeNull();
        (m.Iova & 0xFFF).ShouldBe(0x123UL);
        ep.Write(m.Iova, GuestRig.Pattern(100, 3)).IsSuccess.ShouldBeTrue();
        rig.ReadRam(buffer, 100).ShouldBe(GuestRig.Pattern(100, 3));
    }

    [Fact]
    public void Aligned_buffers_use_2M_and_1G_blocks_as_alignment_allows()
    {
        var (rig, dev, ep) = Setup();
        ulong buffer1G = 0x1_0000_0000; // 1 GiB aligned guest-physical RAM
        var big = dev.Map(buffer1G, (1UL << 30) + (2UL << 20) + 0x1000).ShouldNotBeNull();
        big.Leaves.Select(l => l.Size).ShouldBe([1UL << 30, 2UL << 20, 0x1000UL]);
        dev.Counters.Blocks1G.ShouldBe(1);
        dev.Counters.Blocks2M.ShouldBe(1);
        ulong probe = (1UL << 30) + 0x12340;
        ep.Write(big.Iova + probe, GuestRig.Pattern(32, 4)).IsSuccess.ShouldBeTrue();
        rig.ReadRam(buffer1G + probe, 32).ShouldBe(GuestRig.Pattern(32, 4));
        // A buffer only 4 KiB aligned gets pages, whatever its size.
        var unaligned = dev.Map(GuestRig.BufferBase + 0x1000, 2UL << 20).ShouldNotBeNull();
        unaligned.Leaves.ShouldAllBe(l => l.Size == 0x1000);
    }

    [Fact]
    public void Read_only_mapping_for_to_device_buffers()
    {
        var (_, dev, ep) = Setup();
        var m = dev.Map(GuestRig.BufferBase, 0x1000, DmaDirection.ToDevice).ShouldNotBeNull();
        ep.Read(m.Iova, new byte[8]).IsSuccess.ShouldBeTrue();
        var w = ep.Write(m.Iova, new byte[8]);
        w.IsSuccess.ShouldBeFalse();
        w.Translation.Event.Type.ShouldBe(EventType.F_PERMISSION);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void After_unmap_the_cached_translation_is_gone_and_the_fault_reaches_the_driver_with_the_streamid(bool ril)
    {
        var (rig, dev, ep) = Setup(new SmmuFeatures { Ril = ril, Ats = true });
        var m = dev.Map(GuestRig.BufferBase, 0x4000).ShouldNotBeNull();
        // Fill the SMMU's TLB, so only an invalidation can make the next DMA fault.
        for (int p = 0; p < 4; p++) ep.Write(m.Iova + (ulong)p * 0x1000, new byte[4]).IsSuccess.ShouldBeTrue();
        rig.Smmu.Tlb.Count.ShouldBeGreaterThan(0);
        dev.Unmap(m).ShouldBeTrue();
        rig.Smmu.Tlb.Count.ShouldBe(0);
        var opcodes = rig.Driver.SmmuQueueCounters.ByOpcode;
        // Four pages: one range command with RIL, four single-address commands without.
        opcodes[CommandOpcode.TLBI_NH_VA].ShouldBe(ril ? 1 : 4);
        var r = ep.Write(m.Iova + 0x2000, new byte[4]);
        r.IsSuccess.ShouldBeFalse();
        var fault = rig.Driver.ProcessEvents().ShouldHaveSingleItem();
        fault.Type.ShouldBe(EventType.F_TRANSLATION);
        fault.StreamId.ShouldBe(0x0108u);
        fault.Device.ShouldBe("nvme0");
        fault.Address.ShouldBe(m.Iova + 0x2000);
        fault.IsWrite.ShouldBeTrue();
        rig.Driver.ProcessEvents().ShouldBeEmpty();
    }

    [Fact]
    public void Unmapping_a_2M_block_with_ril_uses_a_level_2_ttl_hint_the_tlb_honours()
    {
        var (rig, dev, ep) = Setup(new SmmuFeatures { Ril = true });
        var m = dev.Map(0x8000_0000, 2UL << 20).ShouldNotBeNull();
        m.Leaves.ShouldHaveSingleItem().Size.ShouldBe(2UL << 20);
        ep.Write(m.Iova + 0x1000, new byte[4]).IsSuccess.ShouldBeTrue();
        rig.Smmu.Tlb.Count.ShouldBeGreaterThan(0);
        dev.Unmap(m).ShouldBeTrue();
        rig.Smmu.Tlb.Count.ShouldBe(0);
        ep.Write(m.Iova + 0x1000, new byte[4]).IsSuccess.ShouldBeFalse();
    }

    [Fact]
    public void Ats_devices_get_atc_inv_after_the_tlb_invalidation()
    {
        var (rig, dev, ep) = Setup(new SmmuFeatures { Ats = true }, ats: true);
        var m = dev.Map(GuestRig.BufferBase, 0x2000).ShouldNotBeNull();
        ep.Write(m.Iova, new byte[4]).IsSuccess.ShouldBeTrue();
        ep.Atc.Count.ShouldBe(1);
        dev.Unmap(m).ShouldBeTrue();
        ep.Atc.Count.ShouldBe(0);
        rig.Driver.SmmuQueueCounters.ByOpcode[CommandOpcode.ATC_INV].ShouldBe(1);
        ep.Write(m.Iova, new byte[4]).IsSuccess.ShouldBeFalse();
    }

    [Fact]
    public void Flush_all_invalidates_by_asid()
    {
        var (rig, dev, ep) = Setup();
        var m = dev.Map(GuestRig.BufferBase, 0x1000).ShouldNotBeNull();
        ep.Write(m.Iova, new byte[4]).IsSuccess.ShouldBeTrue();
        rig.Smmu.Tlb.Count.ShouldBeGreaterThan(0);
        dev.FlushAll().ShouldBeTrue();
        rig.Driver.SmmuQueueCounters.ByOpcode[CommandOpcode.TLBI_NH_ASID].ShouldBe(1);
        rig.Smmu.Tlb.Count.ShouldBe(0);
        // The mapping itself stays: the next DMA walks the tables again.
        ep.Write(m.Iova, new byte[4]).IsSuccess.ShouldBeTrue();
    }

    [Fact]
    public void Iovas_are_reused_after_unmap_and_two_devices_have_separate_spaces()
    {
        var (rig, dev, _) = Setup();
        var a = dev.Map(GuestRig.BufferBase, 0x1000).ShouldNotBeNull();
        dev.Unmap(a);
        dev.Map(GuestRig.BufferBase + 0x1000, 0x1000).ShouldNotBeNull().Iova.ShouldBe(a.Iova);
        var other = new DmaDevice(rig.Driver, rig.Driver.AddMaster("nic", 0x0200));
        other.Domain.Asid.ShouldNotBe(dev.Domain.Asid);
        var b = other.Map(GuestRig.BufferBase + 0x8000, 0x1000).ShouldNotBeNull();
        var ep2 = rig.Endpoint("nic", 0x0200);
        ep2.Write(b.Iova, GuestRig.Pattern(8, 5)).IsSuccess.ShouldBeTrue();
        rig.ReadRam(GuestRig.BufferBase + 0x8000, 8).ShouldBe(GuestRig.Pattern(8, 5));
    }

    [Fact]
    public void Detach_aborts_the_device_and_flushes_its_asid_so_the_next_device_can_reuse_it()
    {
        var (rig, dev, ep) = Setup();
        var m = dev.Map(GuestRig.BufferBase, 0x1000).ShouldNotBeNull();
        ep.Write(m.Iova, new byte[4]).IsSuccess.ShouldBeTrue();
        ushort asid = dev.Domain.Asid;
        dev.Detach().ShouldBeTrue();
        rig.Smmu.Tlb.Count.ShouldBe(0);
        rig.Driver.ReadSte(dev.StreamId).Config.ShouldBe(SteConfig.Abort);
        ep.Write(m.Iova, new byte[4]).IsSuccess.ShouldBeFalse();
        // A hot-plugged device after it gets the freed ASID and a working mapping.
        var next = new DmaDevice(rig.Driver, rig.Driver.AddMaster("hotplug", 0x0300));
        next.Domain.Asid.ShouldBe(asid);
        var n = next.Map(GuestRig.BufferBase + 0x4000, 0x1000).ShouldNotBeNull();
        rig.Endpoint("hotplug", 0x0300).Write(n.Iova, GuestRig.Pattern(8, 8)).IsSuccess.ShouldBeTrue();
        rig.ReadRam(GuestRig.BufferBase + 0x4000, 8).ShouldBe(GuestRig.Pattern(8, 8));
    }

    [Fact]
    public void An_exhausted_iova_space_makes_map_return_null()
    {
        var rig = new GuestRig().Boot();
        var dev = new DmaDevice(rig.Driver, rig.Driver.AddMaster("small", 0x0400), iovaStart: (1UL << 44) - 0x2000);
        dev.Map(GuestRig.BufferBase, 0x2000).ShouldNotBeNull();
        dev.Map(GuestRig.BufferBase, 0x1000).ShouldBeNull();
    }

    [Fact]
    public void The_standard_workload_passes_on_an_smmu_with_qemus_virt_id_registers()
    {
        // IDR0 0x0D44101B, IDR1 0x02730010, IDR3 0x1414, IDR5 0x74: QEMU's arm-smmuv3 with stage=nested.
        var (rig, dev, ep) = Setup(SmmuFeatures.QemuVirtNested);
        rig.Driver.TwoLevelStreamTable.ShouldBeTrue();
        rig.Driver.Features.Ril.ShouldBeTrue();
        var buffers = new GuestPageAllocator(rig.Memory, GuestRig.BufferBase, 0x1000_0000);
        var r = DmaWorkload.Run(dev, new EndpointEngine(ep), buffers, seed: 7);
        r.Failed.ShouldBeEmpty();
        r.FaultsSeen.ShouldBe(r.FaultsExpected);
        r.Dmas.ShouldBeGreaterThan(1000);
    }
}
