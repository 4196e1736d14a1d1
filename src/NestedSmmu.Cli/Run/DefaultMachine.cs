using NestedSmmu.Iommufd.Emulated;

namespace NestedSmmu.Cli.Run;

/// <summary>
/// The machine `nestedsmmu run` builds when given no QEMU arguments: for each physical SMMU of the
/// host with devices behind it, a pxb-pcie root complex with an accelerated vSMMU (cmdqv=on where
/// the host SMMU has a CMDQV, every other property auto) and each of its functions behind its own
/// root port as vfio-pci; KVM and firmware as QEMU's accel=on needs them.
/// </summary>
internal static class DefaultMachine
{
    /// <summary>-m of the default machine: the VM's RAM cap, so nothing is capped.</summary>
    public const string Memory = "1G";

    /// <summary>
    /// Root bus numbers of the expanders: 0x10 apart, so each pxb-pcie has room for the secondary buses
    /// of its root ports below the next one (QEMU refuses overlapping bus ranges).
    /// </summary>
    private const int BusStride = 0x10;

    /// <param name="profile">The host.</param>
    /// <param name="include">Which host functions the VM gets (all when null): two VMs on one host split them.</param>
    public static IReadOnlyList<string> Arguments(HostProfile profile, Func<PciDeviceProfile, bool>? include = null)
    {
        var a = new List<string>
        {
            "-machine", "virt,accel=kvm,gic-version=3", "-cpu", "host", "-smp", "4", "-m", Memory,
            // accel=on is for ACPI guests (QEMU: "SMMUv3 with accel=on not supported for DT"): firmware boots it.
            "-bios", "AAVMF_CODE.fd",
            "-object", "iommufd,id=iommufd0",
        };
        int vsmmu = 0, port = 0;
        foreach (SmmuProfile smmu in profile.Smmus)
        {
            var devices = profile.Devices.Where(d => d.Smmu == smmu.Name && (include?.Invoke(d) ?? true)).ToList();
            if (devices.Count == 0) continue;
            string bus = $"pcie.{vsmmu + 1}";
            a.AddRange(["-device", $"pxb-pcie,id={bus},bus_nr={(vsmmu + 1) * BusStride},bus=pcie.0"]);
            a.AddRange(["-device", $"arm-smmuv3,primary-bus={bus},id=smmuv3.{vsmmu},accel=on,cmdqv={(smmu.HasCmdqv ? "on" : "off")}"]);
            foreach (PciDeviceProfile d in devices)
            {
                port++;
                a.AddRange(["-device", $"pcie-root-port,id=rp{port},bus={bus},chassis={port}"]);
                a.AddRange(["-device", $"vfio-pci,host={d.Address},bus=rp{port},id={d.Name},iommufd=iommufd0"]);
            }
            vsmmu++;
        }
        return a;
    }
}
