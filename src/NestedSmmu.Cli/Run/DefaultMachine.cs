using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Machine;

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

    /// <summary>Bus numbers are 8 bits (pxb-pcie's bus_nr is a uint8_t; PCIe Base Specification 7.2.2).</summary>
    private const int MaxBusNr = 0xFF;

    /// <param name="profile">The host.</param>
    /// <param name="include">Which host functions the VM gets (all when null): two VMs on one host split them.</param>
    public static IReadOnlyList<string> Arguments(HostProfile profile, Func<PciDeviceProfile, bool>? include = null) =>
        Arguments(profile, out _, include);

    /// <summary>As <see cref="Arguments(HostProfile, Func{PciDeviceProfile, bool}?)"/>, with what the machine had to leave out and why.</summary>
    public static IReadOnlyList<string> Arguments(HostProfile profile, out IReadOnlyList<string> notes, Func<PciDeviceProfile, bool>? include = null)
    {
        var said = new List<string>();
        notes = said;
        var a = new List<string>
        {
            "-machine", "virt,accel=kvm,gic-version=3", "-cpu", "host", "-smp", "4", "-m", Memory,
            // accel=on is for ACPI guests (QEMU: "SMMUv3 with accel=on not supported for DT"): firmware boots it.
            "-bios", "AAVMF_CODE.fd",
            "-object", "iommufd,id=iommufd0",
        };
        var groups = profile.Smmus
            .Select(smmu => (Smmu: smmu, Devices: profile.Devices.Where(d => d.Smmu == smmu.Name && (include?.Invoke(d) ?? true)).ToList()))
            .Where(g => g.Devices.Count > 0)
            .ToList();
        // Expanders 0x10 apart while that fits in 8 bits; a larger host (16 SMMUs, say) gets them
        // packed instead: each takes its root bus and one secondary bus per root port.
        bool strided = groups.Count == 0 || groups.Count * BusStride + groups[^1].Devices.Count <= MaxBusNr;
        // The virt board's platform bus has 64 IRQ lines: each arm-smmuv3 takes 4 and a CMDQV one
        // more (QEMU's platform_bus_map_irq refuses the rest: "Can not fit IRQ line"), so 16
        // vSMMUs leave none for CMDQVs; those that do not fit get cmdqv=off.
        int cmdqvLeft = Math.Max(0, VirtIrqMap.PlatformBusIrqs - groups.Count * VirtBoard.SmmuIrqCount);
        int cmdqvDropped = 0;
        int vsmmu = 0, port = 0, busNr = BusStride;
        foreach (var (smmu, devices) in groups)
        {
            string bus = $"pcie.{vsmmu + 1}";
            a.AddRange(["-device", $"pxb-pcie,id={bus},bus_nr={busNr},bus=pcie.0"]);
            busNr = strided ? busNr + BusStride : busNr + devices.Count + 1;
            bool cmdqv = smmu.HasCmdqv && cmdqvLeft > 0;
            if (cmdqv) cmdqvLeft--;
            else if (smmu.HasCmdqv) cmdqvDropped++;
            a.AddRange(["-device", $"arm-smmuv3,primary-bus={bus},id=smmuv3.{vsmmu},accel=on,cmdqv={(cmdqv ? "on" : "off")}"]);
            foreach (PciDeviceProfile d in devices)
            {
                port++;
                a.AddRange(["-device", $"pcie-root-port,id=rp{port},bus={bus},chassis={port}"]);
                a.AddRange(["-device", $"vfio-pci,host={d.Address},bus=rp{port},id={d.Name},iommufd=iommufd0"]);
            }
            vsmmu++;
        }
        if (cmdqvDropped > 0)
            said.Add($"cmdqv=off on {cmdqvDropped} vSMMU(s) whose host SMMU has a CMDQV: the virt board's platform bus has {VirtIrqMap.PlatformBusIrqs} IRQ lines, " +
                $"{groups.Count} arm-smmuv3 take {VirtBoard.SmmuIrqCount} each and a CMDQV one more");
        return a;
    }
}
