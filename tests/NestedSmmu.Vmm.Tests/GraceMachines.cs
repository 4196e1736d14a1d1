namespace NestedSmmu.Vmm.Tests;

/// <summary>
/// Pieces of accel command lines for the embedded <c>grace</c> host that several tests build on, so
/// each test states only what its machine adds.
/// </summary>
internal static class GraceMachines
{
    /// <summary>The board, firmware, memory and the iommufd object every accel machine needs.</summary>
    public static string[] Base(string memory = "256M", string machine = "virt,accel=kvm") =>
        ["-machine", machine, "-bios", "AAVMF_CODE.fd", "-m", memory, "-object", "iommufd,id=iommufd0"];

    /// <summary>smmuv3.0 (cmdqv=on) on the expander pcie.1 (bus 1) with gpu0 (0009:01:00.0, behind smmu0) on root port rp1.</summary>
    public static readonly string[] Gpu0OnSmmu0 =
    [
        "-device", "pxb-pcie,id=pcie.1,bus_nr=1,bus=pcie.0",
        "-device", "arm-smmuv3,primary-bus=pcie.1,id=smmuv3.0,accel=on,cmdqv=on",
        "-device", "pcie-root-port,id=rp1,bus=pcie.1,chassis=1",
        "-device", "vfio-pci,host=0009:01:00.0,bus=rp1,id=gpu0,iommufd=iommufd0",
    ];

    /// <summary>smmuv3.1 (cmdqv=on) on the expander pcie.2 (bus 8) with nic0 (0005:01:00.0, behind smmu3) on rp2, and rp3 free for hot-plug.</summary>
    public static readonly string[] Nic0OnSmmu3 =
    [
        "-device", "pxb-pcie,id=pcie.2,bus_nr=8,bus=pcie.0",
        "-device", "arm-smmuv3,primary-bus=pcie.2,id=smmuv3.1,accel=on,cmdqv=on",
        "-device", "pcie-root-port,id=rp2,bus=pcie.2,chassis=2",
        "-device", "vfio-pci,host=0005:01:00.0,bus=rp2,id=nic0,iommufd=iommufd0",
        "-device", "pcie-root-port,id=rp3,bus=pcie.2,chassis=3",
    ];
}
