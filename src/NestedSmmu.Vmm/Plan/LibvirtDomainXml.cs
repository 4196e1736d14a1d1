using System.Globalization;
using System.Xml.Linq;

namespace NestedSmmu.Vmm.Plan;

/// <summary>
/// The plan as a libvirt domain XML fragment (the <c>&lt;devices&gt;</c> element) describing the
/// same topology, so libvirt's PCI address allocation knows every controller (seed 003: libvirt
/// must see the pxb-pcie buses, not have QEMU create them behind its back). Element and attribute
/// names, and where each is documented:
/// <list type="bullet">
/// <item><c>&lt;controller type='pci' model='pcie-expander-bus'&gt;</c> with <c>&lt;model name='pxb-pcie'/&gt;</c>,
/// <c>&lt;target busNr='N'&gt;&lt;node&gt;K&lt;/node&gt;&lt;/target&gt;</c>: libvirt docs/formatdomain.rst, "Controllers"
/// (PCI controllers: busNr and node of the expander buses).</item>
/// <item><c>&lt;controller type='pci' model='pcie-root-port'&gt;</c> with <c>&lt;target chassis='C'/&gt;</c> and a PCI
/// <c>&lt;address&gt;</c> whose <c>bus</c> is the expander's controller index: the same section, and libvirt's
/// tests/qemuxmlconfdata/iommu-smmuv3-pci-bus-accel.xml.</item>
/// <item><c>&lt;iommu model='smmuv3'&gt;&lt;driver pciBus='INDEX' accel='on' cmdqv='...'/&gt;&lt;/iommu&gt;</c>, one per
/// vSMMU: formatdomain.rst "IOMMU devices" (<c>pciBus</c> since libvirt 11.10.0, <c>accel</c> and its
/// ats/ril/ssidsize/oas attributes from the same series, <c>cmdqv</c> from the "qemu: add IOMMU
/// attribute cmdqv for smmuv3" series on the libvirt list) and the test file above.</item>
/// <item><c>&lt;hostdev mode='subsystem' type='pci' managed='yes'&gt;</c> with <c>&lt;driver iommufd='yes'/&gt;</c>,
/// <c>&lt;source&gt;&lt;address domain bus slot function/&gt;&lt;/source&gt;</c> and its guest <c>&lt;address&gt;</c> on its root
/// port: formatdomain.rst "Host device assignment" (the iommufd attribute of the hostdev driver).</item>
/// </list>
/// Controller indexes: 0 is pcie-root, then each expander followed by its root ports.
/// </summary>
public static class LibvirtDomainXml
{
    /// <summary>The fragment, indented, preceded by a comment naming the host and what else the domain needs.</summary>
    public static string Format(MachinePlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var devices = new XElement("devices",
            new XElement("controller", new XAttribute("type", "pci"), new XAttribute("index", 0), new XAttribute("model", "pcie-root")));
        var iommus = new List<XElement>();
        var hostdevs = new List<XElement>();
        int index = 1;
        foreach (PlannedVsmmu v in plan.Vsmmus)
        {
            int pxbIndex = index++;
            var target = new XElement("target", new XAttribute("busNr", v.BusNr));
            if (v.NumaNode is { } node) target.Add(new XElement("node", node));
            devices.Add(new XElement("controller", new XAttribute("type", "pci"), new XAttribute("index", pxbIndex),
                new XAttribute("model", "pcie-expander-bus"), new XElement("model", new XAttribute("name", "pxb-pcie")), target));
            foreach (PlannedDevice d in v.Devices)
            {
                int portIndex = index++;
                devices.Add(new XElement("controller", new XAttribute("type", "pci"), new XAttribute("index", portIndex),
                    new XAttribute("model", "pcie-root-port"), new XElement("model", new XAttribute("name", "pcie-root-port")),
                    new XElement("target", new XAttribute("chassis", d.Chassis)),
                    GuestAddress(pxbIndex, d.Slot)));
                hostdevs.Add(new XElement("hostdev", new XAttribute("mode", "subsystem"), new XAttribute("type", "pci"), new XAttribute("managed", "yes"),
                    new XElement("driver", new XAttribute("iommufd", "yes")),
                    new XElement("source", HostAddress(d.HostAddress)),
                    GuestAddress(portIndex, 0)));
            }
            iommus.Add(new XElement("iommu", new XAttribute("model", "smmuv3"),
                new XElement("driver", new XAttribute("pciBus", pxbIndex), new XAttribute("accel", "on"), new XAttribute("cmdqv", MachinePlanner.Word(v.Cmdqv)))));
        }
        foreach (XElement h in hostdevs) devices.Add(h);
        foreach (XElement i in iommus) devices.Add(i);
        string note = $" NestedSmmu plan for {plan.Host}: one pxb-pcie and one accelerated vSMMU per physical SMMU " +
            $"({string.Join(", ", plan.Vsmmus.Select(v => $"{v.PhysicalSmmu}: {string.Join(" ", v.Devices.Select(d => d.HostAddress + (d.AtsCapability == false ? " (no ATS capability)" : "")))}"))}). " +
            "The domain also needs <os firmware='efi'> (accel=on needs an ACPI boot)" +
            (plan.GuestNumaNodes > 0 ? $" and {plan.GuestNumaNodes} guest NUMA cells in <cpu><numa> for the expander buses' <node>" : "") + ". ";
        return new XComment(note) + Environment.NewLine + devices.ToString(SaveOptions.None) + Environment.NewLine;
    }

    private static XElement GuestAddress(int bus, int slot) => new("address", new XAttribute("type", "pci"), new XAttribute("domain", "0x0000"),
        new XAttribute("bus", Hex(bus, 2)), new XAttribute("slot", Hex(slot, 2)), new XAttribute("function", "0x0"));

    // ssss:bb:dd.f as libvirt's <source><address> (no type attribute there).
    private static XElement HostAddress(string address)
    {
        string[] p = address.Split(':');
        string[] df = p[2].Split('.');
        return new XElement("address", new XAttribute("domain", "0x" + p[0]), new XAttribute("bus", "0x" + p[1]),
            new XAttribute("slot", "0x" + df[0]), new XAttribute("function", "0x" + df[1]));
    }

    private static string Hex(int value, int digits) => "0x" + value.ToString("x" + digits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
}
