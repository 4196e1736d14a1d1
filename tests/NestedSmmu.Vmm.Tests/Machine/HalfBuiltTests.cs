using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.Machine;
using NestedSmmu.Vmm.Tests.Config;

namespace NestedSmmu.Vmm.Tests.Realize;

/// <summary>
/// Nothing is left half-built: a realize or a hot-plug the kernel refuses part-way gives back every
/// host page and leaves the iommufd object table consistent, with nothing of the failed machine bound
/// (the same machine realizes, the same device plugs, once the obstacle is gone).
/// </summary>
public sealed class HalfBuiltTests
{
    /// <summary>Three accel vSMMUs (two with cmdqv) with a device each, and a free root port for hot-plug.</summary>
    private static readonly string[] Machine =
    [
        .. GraceMachines.Base(), .. GraceMachines.Gpu0OnSmmu0, .. GraceMachines.Nic0OnSmmu3,
        "-device", "pxb-pcie,id=pcie.3,bus_nr=16,bus=pcie.0",
        "-device", "arm-smmuv3,primary-bus=pcie.3,id=smmuv3.2,accel=on,cmdqv=off",
        "-device", "pcie-root-port,id=rp4,bus=pcie.3,chassis=4",
        "-device", "vfio-pci,host=0000:01:00.0,bus=rp4,id=nic2,iommufd=iommufd0",
    ];

    [Theory]
    [InlineData("0009:01:00.0")] // the first device: nothing plugged yet
    [InlineData("0005:01:00.0")] // the second: gpu0's vIOMMU and guest CMDQV exist
    [InlineData("0000:01:00.0")] // the last: two vSMMUs bound, their CMDQVs built
    public void A_realize_refused_at_any_device_unwinds_everything(string held)
    {
        var host = EmulatedHost.FromEmbedded("grace");
        ulong before = host.Diagnostics.HostMemoryAllocated;
        MachineCheck check = MachineValidator.Check(Machine, TestHosts.Grace);
        check.Error.ShouldBeNull();
        using EmulatedIommufd fd = host.Open();
        using EmulatedIommufd other = host.Open();
        DeviceId holder = other.BindDevice(held);

        // The other context holds the device's cdev: vfio_df_open refuses a second open (EINVAL).
        Should.Throw<IommufdException>(() => Vm.Realize(check, TestHosts.Grace, fd)).Errno.ShouldBe(Errno.EINVAL);
        host.Diagnostics.HostMemoryAllocated.ShouldBe(before, $"host pages left after a realize refused at {held}");
        host.Diagnostics.ObjectTableProblem(fd).ShouldBeNull();

        // Nothing of the failed machine is bound: with the device free, the same machine realizes and tears down cleanly.
        other.UnbindDevice(holder);
        Vm vm = Vm.Realize(check, TestHosts.Grace, fd);
        vm.Devices.Count(d => d.Host is not null).ShouldBe(3);
        vm.Dispose();
        host.Diagnostics.HostMemoryAllocated.ShouldBe(before);
        host.Diagnostics.ObjectTableProblem(fd).ShouldBeNull();
    }

    [Fact]
    public void A_hot_plug_the_kernel_refuses_leaves_no_trace()
    {
        var host = EmulatedHost.FromEmbedded("grace");
        MachineCheck check = MachineValidator.Check(Machine, TestHosts.Grace);
        using EmulatedIommufd fd = host.Open();
        using Vm vm = Vm.Realize(check, TestHosts.Grace, fd);
        vm.Boot();
        ulong before = host.Diagnostics.HostMemoryAllocated;
        int devices = vm.Devices.Count;
        const string nic1 = "vfio-pci,host=0005:01:00.1,bus=rp3,id=nic1,iommufd=iommufd0";

        using EmulatedIommufd other = host.Open();
        DeviceId holder = other.BindDevice("0005:01:00.1");
        Should.Throw<IommufdException>(() => vm.HotPlug(nic1)).Errno.ShouldBe(Errno.EINVAL);
        vm.Device("nic1").ShouldBeNull();
        vm.Devices.Count.ShouldBe(devices);
        host.Diagnostics.HostMemoryAllocated.ShouldBe(before);
        host.Diagnostics.ObjectTableProblem(fd).ShouldBeNull();

        other.UnbindDevice(holder);
        vm.HotPlug(nic1).HotPlugged.ShouldBeTrue();
        host.Diagnostics.ObjectTableProblem(fd).ShouldBeNull();
    }
}
