using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// Domains on a host with two SMMUs: Linux keeps a paging domain on the SMMU it was allocated
/// for (arm_smmu_attach_dev, arm_vsmmu_init: EINVAL for another), as the real kernel answered
/// with two QEMU SMMUs (tests/vectors/real-kernel/linux-acpi2.txt).
/// </summary>
public sealed class MultiSmmuDomainTests
{
    [Fact]
    public void A_device_of_another_SMMU_gets_its_own_auto_domain_and_cannot_attach_to_the_first_SMMUs_domains()
    {
        using var bed = new TestBed(selftest: false);
        Vm vm = bed.CreateVm();
        IIommufd fd = bed.Fd;
        DeviceId gpu0 = fd.BindDevice("gpu0"), nic0 = fd.BindDevice("nic0"), gpu1 = fd.BindDevice("gpu1");

        ObjectId auto0 = fd.AttachDevice(gpu0, vm.Ioas);
        fd.AttachDevice(nic0, vm.Ioas).ShouldBe(auto0, "nic0 sits behind smmu0 too: the auto domain is reused");
        // iommufd_device_auto_get_domain moves on when the driver answers EINVAL and allocates
        ObjectId auto1 = fd.AttachDevice(gpu1, vm.Ioas);
        auto1.ShouldNotBe(auto0, "gpu1 sits behind smmu1");
        // Plain paging domains are stage 1 (arm_smmu_domain_alloc_paging_flags): each device's
        // table is in CD 0 of its host CD table.
        ulong gpu1Table = bed.Diag.ReadHostCd("gpu1")!.Value.TTB0;
        gpu1Table.ShouldNotBe(bed.Diag.ReadHostCd("gpu0")!.Value.TTB0);

        HwptId paging = fd.AllocPagingHwpt(gpu0, vm.Ioas);
        HwptId parent = fd.AllocPagingHwpt(gpu0, vm.Ioas, HwptAllocFlags.NestParent);
        Should.Throw<IommufdException>(() => fd.AttachDevice(gpu1, paging)).Errno.ShouldBe(Errno.EINVAL);
        Should.Throw<IommufdException>(() => fd.AttachDevice(gpu1, parent)).Errno.ShouldBe(Errno.EINVAL);
        Should.Throw<IommufdException>(() => fd.AllocViommu(gpu1, parent, ViommuType.ArmSmmuV3)).Errno.ShouldBe(Errno.EINVAL);
        fd.AttachDevice(nic0, paging).ShouldBe((ObjectId)paging, "a device of the domain's own SMMU may use it");
        bed.Diag.ReadHostCd("gpu1")!.Value.TTB0.ShouldBe(gpu1Table, "a refused attach leaves the device where it was");
    }
}
