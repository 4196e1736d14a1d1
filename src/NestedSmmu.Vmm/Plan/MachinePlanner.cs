using System.Globalization;
using NestedSmmu.Iommufd.Uapi;
using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Plan;

/// <summary>
/// The inverse of validation (VMM.md "Plan"): from a <see cref="HostView"/> and the functions to
/// pass through, the machine that puts each device under the vSMMU of its own physical SMMU, as
/// the nested-SMMU review asked (seed 003: one vSMMU per physical SMMU, the bus topology written
/// out so a management tool sees all of it, nothing created behind the scenes): per physical SMMU
/// in use one pxb-pcie (its own root complex, NUMA node from its devices) and one arm-smmuv3
/// accel=on on it, per device one pcie-root-port and the vfio-pci on it with iommufd. The result
/// is parsed back from its own QEMU arguments and must pass <see cref="MachineValidator"/> on the
/// same host, so what is printed is what check accepts.
/// </summary>
public static class MachinePlanner
{
    /// <summary>Bus numbers below the first pxb-pcie stay with pcie.0 (its own root ports, added by hand later).</summary>
    public const int FirstBusNr = 0x10;

    /// <summary>Each pxb-pcie's range starts on a multiple of this, so a later root port fits without renumbering the next.</summary>
    public const int BusAlignment = 0x10;

    /// <summary>PCI bus numbers are 8 bits (PCIe Base Specification 7.2.2: Bus[7:0] of the requester ID).</summary>
    public const int MaxBusNr = 0xFF;

    /// <summary>Slots on a root bus (Device[4:0]); each root port takes one.</summary>
    public const int SlotsPerBus = 32;

    /// <summary>The id of the one <c>-object iommufd</c>.</summary>
    public const string IommufdId = "iommufd0";

    private const string RootBus = "pcie.0";

    /// <summary>Makes the plan.</summary>
    /// <exception cref="PlanException">The request cannot be met; the message says which device and why.</exception>
    public static MachinePlan Plan(HostView host, PlanRequest request)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(request);
        var notes = new List<string>();
        List<HostDeviceInfo> devices = request.Devices.Count == 0 ? SelectAll(host, notes) : SelectNamed(host, request.Devices);
        CheckGroupsWhole(host, devices, request.Devices.Count > 0);

        // One group per physical SMMU, in name order (sysfs names carry the MMIO base); devices in address order.
        var bySmmu = host.Smmus.OrderBy(s => s.Name, StringComparer.Ordinal)
            .Select(s => (Smmu: s, Devices: devices.Where(d => d.PhysicalSmmu == s.Name).OrderBy(d => d.Address, StringComparer.Ordinal).ToList()))
            .Where(g => g.Devices.Count > 0)
            .ToList();
        foreach ((HostSmmuInfo smmu, _) in bySmmu)
            if (request.Cmdqv == OnOffAuto.On && !UsableCmdqv(smmu))
                throw new PlanException($"--cmdqv on: physical SMMU {smmu.Name} on {host.Description} has no usable Tegra241 CMDQV" +
                    (smmu.Cmdqv is { } c && SmmuResolution.CmdqvProblem(c) is { } why ? $" ({why})" : "") +
                    $"; ask for --cmdqv auto or off, or leave out its devices ({string.Join(", ", DevicesOf(devices, smmu.Name))})");

        var vsmmus = new List<PlannedVsmmu>();
        int next = FirstBusNr;
        byte chassis = 0;
        for (int i = 0; i < bySmmu.Count; i++)
        {
            (HostSmmuInfo smmu, List<HostDeviceInfo> group) = bySmmu[i];
            if (group.Count > SlotsPerBus)
                throw new PlanException($"{group.Count} devices behind physical SMMU {smmu.Name}: one pxb-pcie root bus has {SlotsPerBus} slots for root ports");
            int busNr = next, last = busNr + group.Count;
            if (last > MaxBusNr)
                throw new PlanException($"{devices.Count} devices behind {bySmmu.Count} physical SMMUs need more bus numbers than a PCI segment has: " +
                    $"physical SMMU {smmu.Name}'s pxb-pcie would span 0x{busNr:x2}-0x{last:x2}, past 0x{MaxBusNr:x2}; pass fewer devices with --device");
            next = (last / BusAlignment + 1) * BusAlignment;
            var planned = new List<PlannedDevice>();
            for (int k = 0; k < group.Count; k++)
            {
                HostDeviceInfo d = group[k];
                chassis++;
                planned.Add(new PlannedDevice(d.Address, $"hostdev{chassis - 1}", $"rp{chassis - 1}", chassis, (byte)k, (byte)(busNr + 1 + k),
                    d.IommuGroup, d.NumaNode, d.AtsCapability));
            }
            int? numa = group.Select(d => d.NumaNode).FirstOrDefault(n => n is not null);
            foreach (HostDeviceInfo d in group.Where(d => d.NumaNode is { } n && n != numa))
                notes.Add($"{d.Address} is on host NUMA node {d.NumaNode}, but shares physical SMMU {smmu.Name}'s pxb-pcie with node {numa}");
            vsmmus.Add(new PlannedVsmmu(smmu.Name, $"pcie.{i + 1}", (byte)busNr, (byte)last, numa, $"vsmmu{i}", request.Cmdqv,
                UsableCmdqv(smmu), planned));
        }

        int numaNodes = vsmmus.Max(v => v.NumaNode) is { } maxNode ? maxNode + 1 : 0;
        IReadOnlyList<string> args = Arguments(vsmmus, numaNodes, request);
        MachineSpec spec;
        try
        {
            spec = QemuCommandLine.Parse(args);
        }
        catch (QemuConfigException e)
        {
            throw new PlanException($"the planned command line does not parse ({e.Message}): check --firmware and --memory");
        }
        MachineCheck check = MachineValidator.Check(spec, host);
        if (check.Error is { } error)
            throw new PlanException($"{host.Description} cannot back the plan: {error.Message}");
        return new MachinePlan(host.Description, spec, vsmmus, numaNodes, notes);
    }

    private static bool UsableCmdqv(HostSmmuInfo smmu) => smmu.Cmdqv is { } c && SmmuResolution.CmdqvProblem(c) is null;

    private static IEnumerable<string> DevicesOf(IEnumerable<HostDeviceInfo> devices, string smmu) =>
        devices.Where(d => d.PhysicalSmmu == smmu).Select(d => d.Address);

    // Why a function cannot be nested, or null when it can.
    private static string? Unusable(HostView host, HostDeviceInfo d)
    {
        if (d.PhysicalSmmu is not { } name) return $"{d.Address} has no IOMMU on {host.Description}: nothing can nest its DMA";
        if (d.Problem is { } problem) return $"{d.Address}: {problem}";
        if (host.FindSmmu(name) is not { } smmu) return $"{d.Address}: {host.Description} lists no SMMU '{name}' (its IOMMU could not be probed)";
        if (smmu.HwInfoType != HwInfoType.ArmSmmuV3)
            return $"{d.Address} is behind IOMMU {name}, which is not an Arm SMMUv3 (GET_HW_INFO type {(uint)smmu.HwInfoType})";
        var f = smmu.HwInfo.Features;
        if (!f.Stage1 || !f.Stage2)
            return $"{d.Address} is behind physical SMMU {name}, which cannot nest (IDR0: S1P={(f.Stage1 ? 1 : 0)} S2P={(f.Stage2 ? 1 : 0)}; " +
                   "an accel vSMMU needs both stages)";
        return null;
    }

    private static List<HostDeviceInfo> SelectAll(HostView host, List<string> notes)
    {
        var chosen = new List<HostDeviceInfo>();
        foreach (HostDeviceInfo d in host.Devices.OrderBy(d => d.Address, StringComparer.Ordinal))
        {
            if (Unusable(host, d) is { } why) notes.Add("left out " + why);
            else chosen.Add(d);
        }
        if (chosen.Count == 0)
            throw new PlanException($"{host.Description} has no function that can be passed through behind a nesting SMMU" +
                (notes.Count > 0 ? ": " + string.Join("; ", notes) : " (none is bound to vfio-pci)"));
        return chosen;
    }

    private static List<HostDeviceInfo> SelectNamed(HostView host, IReadOnlyList<string> names)
    {
        var chosen = new List<HostDeviceInfo>();
        foreach (string name in names)
        {
            string address = HostView.CanonicalAddress(name)
                ?? throw new PlanException($"'{name}' is not a PCI address (write it as 0009:06:00.0, or 06:00.0 in segment 0)");
            HostDeviceInfo d = host.FindDevice(address)
                ?? throw new PlanException($"{address} is not a passthrough-capable function on {host.Description} " +
                    $"(known: {string.Join(", ", host.Devices.Select(x => x.Address))})");
            if (chosen.Contains(d)) throw new PlanException($"{address} is asked for twice");
            if (Unusable(host, d) is { } why) throw new PlanException(why);
            chosen.Add(d);
        }
        return chosen;
    }

    // VFIO hands an IOMMU group to one user as a whole (drivers/vfio/group.c viability; iommufd attaches
    // a group's devices to one domain), so a request takes all of a group's functions or none.
    private static void CheckGroupsWhole(HostView host, List<HostDeviceInfo> chosen, bool named)
    {
        foreach (HostDeviceInfo d in chosen)
        {
            var missing = host.Devices.Where(o => o.IommuGroup == d.IommuGroup && !chosen.Contains(o)).Select(o => o.Address).ToList();
            if (missing.Count == 0) continue;
            throw new PlanException($"{d.Address} shares IOMMU group {d.IommuGroup} with {string.Join(", ", missing)}, which " +
                (named ? "the request leaves out" : "cannot be passed through") +
                ": a group goes to one VM whole; " + (named ? $"add --device {string.Join(" --device ", missing)} or leave {d.Address} out" : "leave the group out"));
        }
    }

    private static List<string> Arguments(IReadOnlyList<PlannedVsmmu> vsmmus, int numaNodes, PlanRequest request)
    {
        var a = new List<string>
        {
            // accel=on needs KVM (virt.c pre-plug) and an ACPI boot (virt.c refuses it for DT): UEFI firmware.
            "-machine", "virt,accel=kvm",
            "-cpu", "host",
            "-m", request.Memory,
            "-bios", request.Firmware,
        };
        if (numaNodes > 0)
        {
            // pxb-pcie refuses a numa_node the machine lacks (pxb_dev_realize); node 0 holds the RAM.
            a.AddRange(["-object", $"memory-backend-ram,id=mem0,size={request.Memory}", "-numa", "node,nodeid=0,memdev=mem0"]);
            for (int n = 1; n < numaNodes; n++) a.AddRange(["-numa", $"node,nodeid={n}"]);
        }
        a.AddRange(["-object", $"iommufd,id={IommufdId}"]);
        foreach (PlannedVsmmu v in vsmmus)
        {
            string numa = v.NumaNode is { } n ? $",numa_node={n}" : "";
            a.AddRange(["-device", $"pxb-pcie,id={v.PxbId},bus_nr={v.BusNr},bus={RootBus}{numa}"]);
            a.AddRange(["-device", $"arm-smmuv3,primary-bus={v.PxbId},id={v.VsmmuId},accel=on,cmdqv={Word(v.Cmdqv)}"]);
            foreach (PlannedDevice d in v.Devices)
            {
                a.AddRange(["-device", $"pcie-root-port,id={d.RootPortId},bus={v.PxbId},chassis={d.Chassis.ToString(CultureInfo.InvariantCulture)}"]);
                a.AddRange(["-device", $"vfio-pci,host={d.HostAddress},bus={d.RootPortId},id={d.Id},iommufd={IommufdId}"]);
            }
        }
        return a;
    }

    /// <summary>An OnOffAuto as QEMU (and libvirt) write it.</summary>
    internal static string Word(OnOffAuto v) => v switch { OnOffAuto.On => "on", OnOffAuto.Off => "off", _ => "auto" };
}
