namespace NestedSmmu.Guest.Firmware;

/// <summary>
/// A Tegra241 CMDQV as ACPI describes it: a Device with _HID "NVDA200C" whose _UID equals the
/// identifier of the SMMUv3 IORT node it serves, its register frame (the first address-space memory
/// resource) and its interrupt (the first one, if any), as Linux's tegra241_cmdqv_find_acpi_resource reads them.
/// </summary>
public sealed record CmdqvAcpiNode(string Path, ulong Uid, ulong Base, ulong Length, uint? Interrupt)
{
    /// <summary>The ACPI hardware ID of the Tegra241 CMDQV.</summary>
    public const string HardwareId = "NVDA200C";

    /// <summary>
    /// Every NVDA200C device with a usable memory resource; <paramref name="problems"/> receives one
    /// message per device that has none (Linux: "failed to get memory resource entry").
    /// </summary>
    public static List<CmdqvAcpiNode> FindAll(IEnumerable<AcpiDevice> devices, List<string>? problems = null)
    {
        var found = new List<CmdqvAcpiNode>();
        foreach (var d in devices)
        {
            if (d.Hid != HardwareId) continue;
            if (d.Uid is not ulong uid)
            {
                problems?.Add($"{d.Path}: {HardwareId} without an integer _UID cannot be matched to an SMMUv3 node.");
                continue;
            }
            var mem = d.Resources.OfType<AcpiMemoryResource>().FirstOrDefault(r => r.FromAddressSpace);
            if (mem is null)
            {
                problems?.Add($"{d.Path}: failed to get memory resource entry");
                continue;
            }
            uint? irq = d.Resources.OfType<AcpiInterruptResource>().FirstOrDefault(r => r.Interrupts.Count > 0)?.Interrupts[0];
            found.Add(new CmdqvAcpiNode(d.Path, uid, mem.Base, mem.Length, irq));
        }
        return found;
    }

    /// <summary>The CMDQV serving the SMMUv3 with IORT identifier <paramref name="smmuIdentifier"/>, if any.</summary>
    public static CmdqvAcpiNode? ForSmmu(IEnumerable<CmdqvAcpiNode> nodes, uint smmuIdentifier) =>
        nodes.FirstOrDefault(n => n.Uid == smmuIdentifier);
}
