using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace NestedSmmu.Cli.Tests;

/// <summary>
/// A sysfs tree in a temporary directory, laid out as Linux lays it out (real directories under
/// devices/, symbolic links for bus/pci/devices/BDF, class/iommu/NAME, each function's iommu and
/// iommu_group, the group's and the IOMMU's device lists), and a host profile JSON with the same
/// SMMUs and functions, so an emulated host can answer GET_HW_INFO for the tree.
/// </summary>
internal sealed class FakeSysfs : IDisposable
{
    // PCIe extended capability IDs (include/uapi/linux/pci_regs.h): AER 0x0001, ATS 0x000F.
    private const ushort ExtCapAer = 0x0001, ExtCapAts = 0x000F;

    private readonly List<(string Name, ulong Base, bool Nesting, bool Cmdqv)> _smmus = [];
    private readonly List<(string Bdf, int Smmu, string Name)> _profileDevices = [];

    public string Root { get; } = Path.Combine(Path.GetTempPath(), "nestedsmmu-sysfs", Guid.NewGuid().ToString("N"));

    public FakeSysfs()
    {
        Directory.CreateDirectory(Path.Combine(Root, "bus/pci/devices"));
        Directory.CreateDirectory(Path.Combine(Root, "class/iommu"));
        Directory.CreateDirectory(Path.Combine(Root, "kernel/iommu_groups"));
    }

    /// <summary>Adds SMMU number <c>index</c> (arm-smmu-v3.N.auto, its IOMMU class device smmu3.0xBASE). Returns its index.</summary>
    public int Smmu(ulong mmioBase, bool nesting = true, bool cmdqv = true)
    {
        int index = _smmus.Count;
        string name = $"smmu3.0x{mmioBase:x16}";
        string classDir = Path.Combine(Root, $"devices/platform/arm-smmu-v3.{index}.auto/iommu", name);
        Directory.CreateDirectory(Path.Combine(classDir, "devices"));
        File.CreateSymbolicLink(Path.Combine(Root, "class/iommu", name), classDir);
        _smmus.Add((name, mmioBase, nesting, cmdqv));
        return index;
    }

    public string SmmuName(int index) => _smmus[index].Name;

    /// <summary>Adds a PCI function; <paramref name="smmu"/> null: no IOMMU.</summary>
    public void Function(string bdf, int? smmu, string group, int numaNode = -1, bool vfio = true, bool? ats = true, bool inProfile = true)
    {
        string segment = bdf[..4];
        string dir = Path.Combine(Root, $"devices/pci{segment}:00/{segment}:00:00.0", bdf);
        Directory.CreateDirectory(dir);
        File.CreateSymbolicLink(Path.Combine(Root, "bus/pci/devices", bdf), dir);
        File.WriteAllText(Path.Combine(dir, "numa_node"), numaNode.ToString(CultureInfo.InvariantCulture) + "\n");
        if (ats is { } hasAts) File.WriteAllBytes(Path.Combine(dir, "config"), Config(hasAts));
        if (vfio) Directory.CreateDirectory(Path.Combine(dir, "vfio-dev", "vfio" + _profileDevices.Count));
        if (smmu is { } s)
        {
            string classDir = Path.Combine(Root, "class/iommu", _smmus[s].Name);
            File.CreateSymbolicLink(Path.Combine(dir, "iommu"), classDir);
            File.CreateSymbolicLink(Path.Combine(classDir, "devices", bdf), dir);
            string groupDir = Path.Combine(Root, "kernel/iommu_groups", group);
            Directory.CreateDirectory(Path.Combine(groupDir, "devices"));
            File.CreateSymbolicLink(Path.Combine(dir, "iommu_group"), groupDir);
            File.CreateSymbolicLink(Path.Combine(groupDir, "devices", bdf), dir);
            if (inProfile) _profileDevices.Add((bdf, s, "dev" + _profileDevices.Count));
        }
    }

    // 4 KiB config space as root reads it: AER at 0x100, then ATS at 0x140 when present.
    private static byte[] Config(bool ats)
    {
        var c = new byte[4096];
        const int next = 0x140;
        BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(0x100), ExtCapAer | (1u << 16) | ((ats ? (uint)next : 0u) << 20));
        if (ats) BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(next), ExtCapAts | (1u << 16));
        return c;
    }

    /// <summary>The emulated host with the same SMMUs and functions (StreamID = requester ID), written to a file.</summary>
    public string WriteProfile(string name)
    {
        var s = new StringBuilder();
        s.Append($$"""{ "name": "{{name}}", "memory": { "base": "0x80000000", "size": "0x100000000" }, "smmus": [""");
        for (int i = 0; i < _smmus.Count; i++)
        {
            var m = _smmus[i];
            if (i > 0) s.Append(',');
            s.Append($$"""
                { "name": "{{m.Name}}", "base": "0x{{m.Base:x}}", "features": {
                  "stage1": {{(m.Nesting ? "true" : "false")}}, "stage2": true, "oasBits": 48, "gran4K": true, "gran16K": true, "gran64K": true,
                  "ats": true, "ril": true, "asid16": true, "vmid16": true, "coherentWalk": true,
                  "sidBits": 32, "ssidBits": 20, "twoLevelStreamTable": true, "twoLevelCd": true, "stallModel": 1,
                  "iidr": "0x0487043B", "aidr": "0x2" }
                """);
            if (m.Cmdqv) s.Append($$""", "cmdqv": { "base": "0x{{m.Base + 0x200000:x}}", "numVintfLog2": 4, "numVcmdqLog2": 7, "numSidPerVmLog2": 4, "version": 1 }""");
            s.Append('}');
        }
        s.Append("""], "devices": [""");
        for (int i = 0; i < _profileDevices.Count; i++)
        {
            var d = _profileDevices[i];
            if (i > 0) s.Append(',');
            string rid = d.Bdf[5..];
            int bus = Convert.ToInt32(rid[..2], 16), dev = Convert.ToInt32(rid[3..5], 16), fn = rid[6] - '0';
            s.Append($$"""{ "bdf": "{{d.Bdf}}", "name": "{{d.Name}}", "kind": "gpu", "smmu": "{{_smmus[d.Smmu].Name}}", "streamId": "0x{{(bus << 8) | (dev << 3) | fn:x}}", "ats": true }""");
        }
        s.Append("]}");
        string path = Path.Combine(Root + "-profile", name + ".json");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, s.ToString());
        return path;
    }

    public void Dispose()
    {
        if (Directory.Exists(Root)) Directory.Delete(Root, recursive: true);
        if (Directory.Exists(Root + "-profile")) Directory.Delete(Root + "-profile", recursive: true);
    }
}
