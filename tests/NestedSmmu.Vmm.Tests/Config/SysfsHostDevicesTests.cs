using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Tests.Config;

/// <summary>Reading a sysfs tree (built on disk with real symbolic links, laid out as Linux lays it out).</summary>
public sealed class SysfsHostDevicesTests
{
    [Fact]
    public void Vfio_functions_are_listed_with_their_iommu_and_group()
    {
        string root = Path.Combine(Path.GetTempPath(), "nestedsmmu-sysfs", Guid.NewGuid().ToString("N"));
        string devices = Path.Combine(root, "bus/pci/devices");
        string platform = Path.Combine(root, "devices/platform/arm-smmu-v3.0.auto/iommu/smmu3.0x0000000011000000");
        string groups = Path.Combine(root, "kernel/iommu_groups");
        Directory.CreateDirectory(platform);
        Directory.CreateDirectory(Path.Combine(groups, "12"));
        Directory.CreateDirectory(Path.Combine(groups, "13"));
        void Function(string bdf, bool vfio, string? group)
        {
            string d = Path.Combine(devices, bdf);
            Directory.CreateDirectory(d);
            if (vfio) Directory.CreateDirectory(Path.Combine(d, "vfio-dev", "vfio0"));
            File.CreateSymbolicLink(Path.Combine(d, "iommu"), platform);
            if (group is not null) File.CreateSymbolicLink(Path.Combine(d, "iommu_group"), Path.Combine(groups, group));
        }
        try
        {
            Function("0009:01:00.0", true, "12");
            Function("0009:01:00.1", true, "12");
            Function("0008:01:00.0", false, "13");
            IReadOnlyList<HostDeviceLocation> found = SysfsHostDevices.Read(root);
            found.ShouldBe([
                new HostDeviceLocation("0009:01:00.0", "smmu3.0x0000000011000000", "12"),
                new HostDeviceLocation("0009:01:00.1", "smmu3.0x0000000011000000", "12")]);
            SysfsHostDevices.Read(Path.Combine(root, "missing")).ShouldBeEmpty();
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
