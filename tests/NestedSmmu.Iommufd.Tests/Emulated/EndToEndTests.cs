using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// The whole nested path through <see cref="IIommufd"/> alone (plus the diagnostics to make
/// devices DMA and to look at the TLBs): two vIOMMUs on two physical SMMUs share one nest-parent
/// stage 2, each with its own VMID; a device DMA through a nested STE (guest CD and stage-1
/// tables in guest RAM mapped through the IOAS) lands at the right host address; an unmapped
/// IOVA becomes an F_TRANSLATION vEVENT with the vSID; a guest TLBI_NH_VA through the vIOMMU
/// removes exactly its entries.
/// </summary>
public sealed class EndToEndTests
{
    private const ulong Vsid0 = 0x10, Vsid1 = 0x11, VsidOther = 0x20;
    private const ushort Asid = 7, OtherAsid = 9;
    private const ulong Va = 0x1000_0000, Va2 = 0x1000_1000, UnmappedVa = 0x2000_0000;
    private const ulong DataIpa = TestBed.GuestRamBase + 0x10_0000;
    private const ulong DataIpa2 = TestBed.GuestRamBase + 0x20_0000;
    private const ulong Pattern = 0x1122_3344_5566_7788, Pattern2 = 0x0BAD_F00D_0BAD_F00D;

    [Fact]
    public void Two_vIOMMUs_on_two_SMMUs_have_their_own_nest_parents_and_VMIDs_and_translate_nested_DMA()
    {
        using var bed = new TestBed(selftest: false);
        IIommufd fd = bed.Fd;

        // Another VM on smmu0 first, so VMIDs differ between the two SMMUs below.
        Vm other = bed.CreateVm("other-ram");
        var (otherDev, _, otherViommu) = bed.NestedSetup(other, "nic0");

        Vm vm = bed.CreateVm();
        DeviceId gpu0 = fd.BindDevice("gpu0");
        DeviceId gpu1 = fd.BindDevice("0001:01:00.0");
        // One IOAS, one nest parent per SMMU: Linux's S2 domain serves the SMMU it was made on only
        // (arm_vsmmu_init and arm_smmu_attach_dev answer EINVAL for another one).
        HwptId parent0 = fd.AllocPagingHwpt(gpu0, vm.Ioas, HwptAllocFlags.NestParent);
        Should.Throw<IommufdException>(() => fd.AllocViommu(gpu1, parent0, ViommuType.ArmSmmuV3)).Errno.ShouldBe(Errno.EINVAL);
        Should.Throw<IommufdException>(() => fd.AttachDevice(gpu1, parent0)).Errno.ShouldBe(Errno.EINVAL);
        HwptId parent1 = fd.AllocPagingHwpt(gpu1, vm.Ioas, HwptAllocFlags.NestParent);
        ViommuId v0 = fd.AllocViommu(gpu0, parent0, ViommuType.ArmSmmuV3).Id;
        ViommuId v1 = fd.AllocViommu(gpu1, parent1, ViommuType.ArmSmmuV3).Id;
        fd.AllocVdevice(v0, gpu0, Vsid0);
        fd.AllocVdevice(v1, gpu1, Vsid1);

        // The guest: one stage-1 address space per device, sharing the data page.
        GuestAddressSpace as0 = vm.CreateAddressSpace(Asid);
        as0.Map(Va, DataIpa);
        as0.Map(Va2, DataIpa2);
        GuestAddressSpace as1 = vm.CreateAddressSpace(Asid);
        as1.Map(Va, DataIpa);
        ulong cd0 = vm.WriteCdTable(as0.Cd);
        ulong cd1 = vm.WriteCdTable(as1.Cd);
        vm.WriteGuest(DataIpa, Pattern);
        vm.WriteGuest(DataIpa2, Pattern2);

        HwptId n0 = fd.AllocNestedHwpt(gpu0, v0, TestBed.TranslateVste(cd0));
        HwptId n1 = fd.AllocNestedHwpt(gpu1, v1, TestBed.TranslateVste(cd1));
        fd.AttachDevice(gpu0, n0).ShouldBe((ObjectId)n0);
        fd.AttachDevice(gpu1, n1).ShouldBe((ObjectId)n1);

        // Physical STEs: nested, each with its own vIOMMU's VMID on its own SMMU and its own S2 table.
        StreamTableEntry ste0 = bed.Diag.ReadSte("gpu0");
        StreamTableEntry ste1 = bed.Diag.ReadSte("gpu1");
        (ste0.Config, ste1.Config).ShouldBe((SteConfig.Nested, SteConfig.Nested));
        ste0.S1ContextPtr.ShouldBe(cd0);
        ste0.MEV.ShouldBeTrue();
        ste0.S2TTB.ShouldNotBe(ste1.S2TTB);
        ste0.S2VMID.ShouldBe((ushort)2, "smmu0's VMID 1 belongs to the other VM");
        ste1.S2VMID.ShouldBe((ushort)1);
        bed.Diag.Smmu("smmu0").VmidsInUse.ShouldBe([(ushort)1, (ushort)2]);
        bed.Diag.Smmu("smmu1").VmidsInUse.ShouldBe([(ushort)1]);

        // DMA through both nested translations reaches the guest's data page in host memory.
        var (r0, value0) = bed.DmaRead("gpu0", Va);
        r0.IsSuccess.ShouldBeTrue(r0.Translation.ToString());
        r0.Translation.PhysicalAddress.ShouldBe(vm.HostPa(DataIpa));
        value0.ShouldBe(Pattern);
        var (r1, value1) = bed.DmaRead("gpu1", Va + 8);
        r1.Translation.PhysicalAddress.ShouldBe(vm.HostPa(DataIpa) + 8);
        value1.ShouldBe(0UL);

        // A DMA write lands in guest RAM.
        Span<byte> w = stackalloc byte[8];
        BitConverter.TryWriteBytes(w, 0xFEEDFACEUL).ShouldBeTrue();
        bed.Diag.Dma("gpu1", Va + 16, AccessKind.Write, w).IsSuccess.ShouldBeTrue();
        vm.ReadGuest(DataIpa + 16).ShouldBe(0xFEEDFACEUL);

        _ = (otherDev, otherViommu);
    }

    [Fact]
    public void An_unmapped_IOVA_becomes_an_F_TRANSLATION_vEVENT_carrying_the_vSID()
    {
        using var bed = new TestBed(selftest: false);
        Vm vm = bed.CreateVm();
        var (dev, _, viommu) = bed.NestedSetup(vm, "gpu0");
        bed.Fd.AllocVdevice(viommu, dev, Vsid0);
        using IVeventQueue q = bed.Fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, depth: 4);
        GuestAddressSpace as0 = vm.CreateAddressSpace(Asid);
        as0.Map(Va, DataIpa);
        bed.Fd.AttachDevice(dev, bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.TranslateVste(vm.WriteCdTable(as0.Cd))));

        var (result, _) = bed.DmaRead("gpu0", UnmappedVa);

        result.IsSuccess.ShouldBeFalse();
        result.Translation.FaultType.ShouldBe(EventType.F_TRANSLATION);
        q.HasEvents.ShouldBeTrue();
        IReadOnlyList<Vevent> events = q.ReadAll();
        events.Count.ShouldBe(1);
        ArmSmmuV3Vevent e = events[0].AsArmSmmuV3();
        e.EventId.ShouldBe((byte)EventType.F_TRANSLATION);
        e.Sid.ShouldBe((uint)Vsid0, "the physical SID 0x100 is replaced by the vSID");
        e.Evt2.ShouldBe(UnmappedVa, "evt[2] (input address) passes unchanged");
        var record = new EventRecord(e.Evt0, e.Evt1, e.Evt2, e.Evt3);
        record.S2.ShouldBeFalse();
        events[0].Sequence.ShouldBe(0u);
    }

    [Fact]
    public void A_guest_TLBI_NH_VA_through_the_vIOMMU_removes_exactly_its_entries()
    {
        using var bed = new TestBed(selftest: false);
        IIommufd fd = bed.Fd;

        // VM B on smmu0 (nic0): same ASID and VA as VM A, different VMID.
        Vm vmB = bed.CreateVm("ram-b");
        var (nic0, _, vB) = bed.NestedSetup(vmB, "nic0");
        fd.AllocVdevice(vB, nic0, VsidOther);
        GuestAddressSpace asB = vmB.CreateAddressSpace(Asid);
        asB.Map(Va, DataIpa);
        fd.AttachDevice(nic0, fd.AllocNestedHwpt(nic0, vB, TestBed.TranslateVste(vmB.WriteCdTable(asB.Cd))));

        // VM A on smmu0 (gpu0): SSID 0 uses ASID 7, SSID 1 uses ASID 9, both map the same VAs.
        Vm vmA = bed.CreateVm("ram-a");
        var (gpu0, _, vA) = bed.NestedSetup(vmA, "gpu0");
        fd.AllocVdevice(vA, gpu0, Vsid0);
        GuestAddressSpace a7 = vmA.CreateAddressSpace(Asid);
        a7.Map(Va, DataIpa);
        a7.Map(Va2, DataIpa2);
        GuestAddressSpace a9 = vmA.CreateAddressSpace(OtherAsid);
        a9.Map(Va, DataIpa);
        ulong cdTable = vmA.WriteCdTable(a7.Cd, a9.Cd);
        var vste = TestBed.TranslateVste(cdTable);
        // S1CDMax = 1 (two CDs), S1DSS = SSID0: untagged traffic uses CD 0.
        vste = vste with { Word0 = vste.Word0 | (1UL << 59), Word1 = vste.Word1 | 2 };
        fd.AttachDevice(gpu0, fd.AllocNestedHwpt(gpu0, vA, vste));

        ushort vmidA = bed.Diag.ReadSte("gpu0").S2VMID, vmidB = bed.Diag.ReadSte("nic0").S2VMID;
        vmidA.ShouldNotBe(vmidB);

        bed.DmaRead("gpu0", Va).Result.IsSuccess.ShouldBeTrue();
        bed.DmaRead("gpu0", Va2).Result.IsSuccess.ShouldBeTrue();
        bed.DmaRead("gpu0", Va, pasid: 1).Result.IsSuccess.ShouldBeTrue();
        bed.DmaRead("nic0", Va).Result.IsSuccess.ShouldBeTrue();
        IReadOnlyList<TlbEntry> before = bed.Diag.TlbEntries("smmu0");
        before.Count(e => e.Vmid == vmidA && e.Asid == Asid).ShouldBe(2);
        before.Count(e => e.Vmid == vmidA && e.Asid == OtherAsid).ShouldBe(1);
        before.Count(e => e.Vmid == vmidB && e.Asid == Asid).ShouldBe(1);

        // The guest invalidates VA for ASID 7; its VMID field says 0: the kernel inserts vA's VMID.
        InvalidateResult r = bed.Invalidate(vA, Command.TlbiNhVa(0, Asid, Va, leaf: true));

        r.Succeeded.ShouldBeTrue();
        r.EntriesHandled.ShouldBe(1u);
        IReadOnlyList<TlbEntry> after = bed.Diag.TlbEntries("smmu0");
        after.Count.ShouldBe(before.Count - 1);
        after.ShouldNotContain(e => e.Vmid == vmidA && e.Asid == Asid && e.InputBase == Va);
        after.ShouldContain(e => e.Vmid == vmidA && e.Asid == Asid && e.InputBase == Va2, "another VA of the same ASID stays");
        after.ShouldContain(e => e.Vmid == vmidA && e.Asid == OtherAsid && e.InputBase == Va, "the same VA in another ASID stays");
        after.ShouldContain(e => e.Vmid == vmidB && e.Asid == Asid && e.InputBase == Va, "the other VM's VMID stays");
    }
}
