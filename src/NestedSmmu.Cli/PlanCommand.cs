using System.CommandLine;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Linux;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.Plan;
using CliCommand = System.CommandLine.Command;

namespace NestedSmmu.Cli;

/// <summary>
/// `nestedsmmu plan --host PROFILE|FILE|SYSFS [--device BDF ...] [--cmdqv on|off|auto] [--format qemu|libvirt|json]`:
/// from a host's IOMMU topology, the machine that puts every passed-through device under the
/// vSMMU of its own physical SMMU (<see cref="MachinePlanner"/>), printed as QEMU arguments,
/// libvirt XML or machine JSON. Exit 0 planned, 2 refused (one <c>error:</c> line saying why).
/// </summary>
internal static class PlanCommand
{
    private const string EmulatedPrefix = "emulated:";

    private const string Example =
        "nestedsmmu plan --host grace --device 0009:01:00.0 --device 0005:01:00.0 --cmdqv on\n" +
        "  nestedsmmu plan --host /sys --format libvirt";

    public static CliCommand Create(TextWriter stdout, TextWriter stderr)
    {
        var hostOption = new Option<string>("--host")
        {
            Description = $"The host: an embedded emulated host profile ({string.Join(", ", HostProfile.EmbeddedNames)}), a host profile JSON file, " +
                          "or a sysfs root directory (/sys on the host itself: devices bound to vfio-pci, their iommu and iommu_group links, numa_node, config).",
            DefaultValueFactory = _ => HostProfile.DefaultName,
        };
        var deviceOption = new Option<string[]>("--device")
        {
            Description = "A host PCI function to pass through (0009:06:00.0); repeat it. Without it: every passthrough-capable function.",
            AllowMultipleArgumentsPerToken = false,
        };
        var cmdqvOption = new Option<string>("--cmdqv")
        {
            Description = "Each vSMMU's cmdqv property: on (refused where a physical SMMU has no Tegra241 CMDQV), off, or auto.",
            DefaultValueFactory = _ => "auto",
        };
        cmdqvOption.AcceptOnlyFromAmong("on", "off", "auto");
        var formatOption = new Option<string>("--format")
        {
            Description = "qemu: arguments to paste after qemu-system-aarch64; libvirt: the domain's <devices> fragment; json: the machine JSON.",
            DefaultValueFactory = _ => "qemu",
        };
        formatOption.AcceptOnlyFromAmong("qemu", "libvirt", "json");
        var jsonOption = new Option<bool>("--json") { Description = "The same as --format json." };
        var iommufdOption = new Option<string>("--iommufd")
        {
            Description = "With a sysfs --host: where the SMMUs' GET_HW_INFO comes from: /dev/iommu (the default, the host itself) or " +
                          $"{EmulatedPrefix}PROFILE|FILE (an emulated host whose devices match the tree, to plan for a copied tree).",
            DefaultValueFactory = _ => LinuxIommufd.DefaultPath,
        };
        var firmwareOption = new Option<string>("--firmware")
        {
            Description = "The UEFI image for -bios (accel=on needs an ACPI boot). The default is the name upstream QEMU installs in its data " +
                          "directory; Debian and Ubuntu ship /usr/share/qemu-efi-aarch64/QEMU_EFI.fd (package qemu-efi-aarch64) instead, " +
                          "Fedora /usr/share/edk2/aarch64/QEMU_EFI.fd.",
            DefaultValueFactory = _ => PlanRequest.DefaultFirmware,
        };
        var memoryOption = new Option<string>("--memory")
        {
            Description = "Guest RAM for -m, in QEMU's syntax.",
            DefaultValueFactory = _ => PlanRequest.DefaultMemory,
        };
        var cmd = new CliCommand("plan",
            "Plan a VM for a host's IOMMU topology: one pxb-pcie and one arm-smmuv3 accel=on per physical SMMU in use, one pcie-root-port per device, " +
            "each vfio-pci under the vSMMU of its own SMMU; the result passes `nestedsmmu check`.\n" +
            "Examples:\n  " + Example)
        { hostOption, deviceOption, cmdqvOption, formatOption, jsonOption, iommufdOption, firmwareOption, memoryOption };
        cmd.SetAction(parse =>
        {
            string hostName = parse.GetValue(hostOption) ?? HostProfile.DefaultName;
            string[] devices = parse.GetValue(deviceOption) ?? [];
            HostView host;
            try
            {
                host = Directory.Exists(hostName)
                    ? FromSysfs(hostName, parse.GetValue(iommufdOption) ?? LinuxIommufd.DefaultPath, devices)
                    : ProfileHostView.From(HostProfileArgument.Load(hostName, "a sysfs directory"));
            }
            catch (PlanException e)
            {
                stderr.WriteLine("error: " + e.Message);
                return 2;
            }
            catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException or ArgumentException or IommufdException)
            {
                stderr.WriteLine($"error: host '{hostName}': {e.Message}");
                return 2;
            }
            var request = new PlanRequest
            {
                Devices = devices,
                Cmdqv = parse.GetValue(cmdqvOption) switch { "on" => OnOffAuto.On, "off" => OnOffAuto.Off, _ => OnOffAuto.Auto },
                Firmware = parse.GetValue(firmwareOption) ?? PlanRequest.DefaultFirmware,
                Memory = parse.GetValue(memoryOption) ?? PlanRequest.DefaultMemory,
            };
            MachinePlan plan;
            try
            {
                plan = MachinePlanner.Plan(host, request);
            }
            catch (PlanException e)
            {
                stderr.WriteLine("error: " + e.Message);
                return 2;
            }
            foreach (string note in plan.Notes) stderr.WriteLine("note: " + note);
            string format = parse.GetValue(jsonOption) ? "json" : parse.GetValue(formatOption) ?? "qemu";
            stdout.Write(format switch
            {
                "json" => MachineSpecJson.Write(plan.Spec) + Environment.NewLine,
                "libvirt" => LibvirtDomainXml.Format(plan),
                _ => QemuText(plan.QemuArguments),
            });
            return 0;
        });
        return cmd;
    }

    // Locations from sysfs; each SMMU's GET_HW_INFO by binding one of its devices to an iommufd.
    private static HostView FromSysfs(string root, string iommufd, IReadOnlyList<string> named)
    {
        IReadOnlyList<SysfsPciFunction> all = SysfsHostDevices.ReadAll(root);
        if (all.Count == 0) throw new ArgumentException($"no PCI functions under {Path.Combine(root, SysfsHostDevices.PciDevices)}: not a sysfs root");
        foreach (string name in named)
        {
            string? address = HostView.CanonicalAddress(name);
            if (all.FirstOrDefault(f => f.Location.Address == address) is { VfioReady: false } f)
                throw new PlanException($"{f.Location.Address} is not bound to vfio-pci (no vfio-dev in its sysfs directory): " +
                    "bind it to vfio-pci (a kernel with VFIO device cdevs) before planning");
        }
        var locations = all.Where(f => f.VfioReady).Select(f => f.Location).ToList();
        string description = $"sysfs host '{root}'";
        if (locations.Count == 0) return new HostView(description, [], []); // nothing to probe: the planner says why
        if (iommufd.StartsWith(EmulatedPrefix, StringComparison.Ordinal))
        {
            var emulated = new EmulatedHost(HostProfileArgument.Load(iommufd[EmulatedPrefix.Length..]));
            using IIommufd fd = emulated.Open();
            return HostView.Probe(fd, description, locations);
        }
        using (LinuxIommufd fd = LinuxIommufd.Open(iommufd))
            return HostView.Probe(fd, description, locations);
    }

    // One option and its argument per line, continued with a backslash: pasteable into a shell after qemu-system-aarch64.
    private static string QemuText(IReadOnlyList<string> args)
    {
        var lines = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            bool pair = i + 1 < args.Count && !args[i + 1].StartsWith('-');
            lines.Add(pair ? $"{Quote(args[i])} {Quote(args[++i])}" : Quote(args[i]));
        }
        return string.Join(" \\" + Environment.NewLine, lines) + Environment.NewLine;
    }

    private static string Quote(string w) =>
        w.Length > 0 && w.All(c => char.IsAsciiLetterOrDigit(c) || "-_=,.:/@+%".Contains(c)) ? w : "'" + w.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
