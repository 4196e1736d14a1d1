using System.Buffers.Binary;
using System.Text;

namespace NestedSmmu.Guest.Firmware;

/// <summary>One node of a flattened device tree with its raw properties.</summary>
public sealed class FdtNode
{
    private readonly Dictionary<string, byte[]> _props = new(StringComparer.Ordinal);
    private readonly List<FdtNode> _children = new();

    internal FdtNode(string name, FdtNode? parent)
    {
        Name = name;
        Parent = parent;
    }

    /// <summary>The node name with its unit address ("smmuv3@9050000").</summary>
    public string Name { get; }
    public FdtNode? Parent { get; }
    public IReadOnlyList<FdtNode> Children => _children;
    public IReadOnlyDictionary<string, byte[]> Properties => _props;
    public string Path => Parent is null ? "/" : Parent.Parent is null ? "/" + Name : Parent.Path + "/" + Name;

    internal void Add(string name, byte[] value) => _props[name] = value;
    internal void AddChild(FdtNode n) => _children.Add(n);

    public bool Has(string property) => _props.ContainsKey(property);

    /// <summary>A property as big-endian 32-bit cells (empty when absent).</summary>
    public uint[] Cells(string property)
    {
        if (!_props.TryGetValue(property, out var v)) return [];
        var cells = new uint[v.Length / sizeof(uint)];
        for (int i = 0; i < cells.Length; i++) cells[i] = BinaryPrimitives.ReadUInt32BigEndian(v.AsSpan(i * sizeof(uint)));
        return cells;
    }

    /// <summary>A string-list property (NUL-separated), empty when absent.</summary>
    public string[] Strings(string property) =>
        _props.TryGetValue(property, out var v) ? Encoding.ASCII.GetString(v).Split('\0', StringSplitOptions.RemoveEmptyEntries) : [];

    public uint? Cell(string property) => Cells(property) is { Length: > 0 } c ? c[0] : null;

    /// <summary>#address-cells / #size-cells that apply to this node's reg (its parent's; defaults 2 and 1, Devicetree spec 2.3.5).</summary>
    public int AddressCells => (int)(Parent?.Cell("#address-cells") ?? 2);
    public int SizeCells => (int)(Parent?.Cell("#size-cells") ?? 1);

    /// <summary>The reg property as (address, size) pairs.</summary>
    public List<(ulong Address, ulong Size)> Reg()
    {
        var c = Cells("reg");
        int a = AddressCells, s = SizeCells;
        var list = new List<(ulong, ulong)>();
        for (int i = 0; i + a + s <= c.Length; i += a + s) list.Add((Combine(c, i, a), Combine(c, i + a, s)));
        return list;
    }

    internal static ulong Combine(uint[] c, int at, int count)
    {
        ulong v = 0;
        for (int k = 0; k < count; k++) v = (v << 32) | c[at + k];
        return v;
    }

    public IEnumerable<FdtNode> Descendants()
    {
        foreach (var c in _children)
        {
            yield return c;
            foreach (var d in c.Descendants()) yield return d;
        }
    }
}

/// <summary>
/// A reader of flattened device trees (Devicetree Specification 0.4, chapter 5: header, structure
/// block tokens, strings block), enough for a guest to find its IOMMU: every node and property.
/// </summary>
public sealed class FlattenedDeviceTree
{
    private const uint Magic = 0xD00D_FEED;
    // Header fields (5.2), big-endian 32-bit, chained.
    private const int MagicOffset = 0, TotalSizeOffset = 4, StructOffset = 8, StringsOffset = 12, VersionOffset = 20, StringsSizeOffset = 32, StructSizeOffset = 36, HeaderSize = 40;
    // Structure block tokens (5.4.1).
    private const uint BeginNode = 1, EndNode = 2, Prop = 3, Nop = 4, End = 9;
    private const int TokenAlign = 4;

    private FlattenedDeviceTree(FdtNode root, uint version)
    {
        Root = root;
        Version = version;
    }

    public FdtNode Root { get; }
    public uint Version { get; }

    public IEnumerable<FdtNode> Nodes => Root.Descendants().Prepend(Root);

    /// <summary>The node whose phandle property is <paramref name="phandle"/>.</summary>
    public FdtNode? ByPhandle(uint phandle) => Nodes.FirstOrDefault(n => n.Cell("phandle") == phandle);

    /// <summary>Nodes whose compatible list holds <paramref name="compatible"/>.</summary>
    public IEnumerable<FdtNode> Compatible(string compatible) => Nodes.Where(n => n.Strings("compatible").Contains(compatible));

    public static FlattenedDeviceTree Parse(ReadOnlySpan<byte> blob)
    {
        if (blob.Length < HeaderSize) throw new FirmwareTableException($"FDT: {blob.Length} bytes is shorter than the header ({HeaderSize}).");
        uint magic = BE(blob, MagicOffset);
        if (magic != Magic) throw new FirmwareTableException($"FDT: bad magic 0x{magic:X8} (expected 0x{Magic:X8}).");
        uint total = BE(blob, TotalSizeOffset);
        if (total > blob.Length) throw new FirmwareTableException($"FDT: totalsize {total} is larger than the {blob.Length} bytes given.");
        uint structOff = BE(blob, StructOffset), stringsOff = BE(blob, StringsOffset), version = BE(blob, VersionOffset);
        uint stringsSize = BE(blob, StringsSizeOffset), structSize = BE(blob, StructSizeOffset);
        if (structOff + (ulong)structSize > total || stringsOff + (ulong)stringsSize > total)
            throw new FirmwareTableException("FDT: the structure or strings block lies outside totalsize.");
        var structure = blob.Slice((int)structOff, (int)structSize);
        var strings = blob.Slice((int)stringsOff, (int)stringsSize);

        FdtNode? root = null, current = null;
        int p = 0;
        while (p + 4 <= structure.Length)
        {
            uint token = BE(structure, p);
            p += 4;
            switch (token)
            {
                case BeginNode:
                {
                    int nul = structure[p..].IndexOf((byte)0);
                    if (nul < 0) throw new FirmwareTableException($"FDT: unterminated node name at 0x{structOff + p:X}.");
                    string name = Encoding.ASCII.GetString(structure.Slice(p, nul));
                    p = Align(p + nul + 1);
                    var node = new FdtNode(name, current);
                    if (current is null)
                    {
                        if (root is not null) throw new FirmwareTableException("FDT: more than one root node.");
                        root = node;
                    }
                    else current.AddChild(node);
                    current = node;
                    break;
                }
                case EndNode:
                    current = current?.Parent ?? (current is null ? throw new FirmwareTableException("FDT: FDT_END_NODE without a node.") : null);
                    break;
                case Prop:
                {
                    if (current is null) throw new FirmwareTableException("FDT: a property outside any node.");
                    uint len = BE(structure, p), nameOff = BE(structure, p + 4);
                    p += 8;
                    if (p + len > structure.Length || nameOff >= strings.Length) throw new FirmwareTableException($"FDT: property at 0x{structOff + p:X} runs outside its block.");
                    int nul = strings[(int)nameOff..].IndexOf((byte)0);
                    string pname = Encoding.ASCII.GetString(strings.Slice((int)nameOff, nul < 0 ? strings.Length - (int)nameOff : nul));
                    current.Add(pname, structure.Slice(p, (int)len).ToArray());
                    p = Align(p + (int)len);
                    break;
                }
                case Nop:
                    break;
                case End:
                    return new FlattenedDeviceTree(root ?? throw new FirmwareTableException("FDT: no root node."), version);
                default:
                    throw new FirmwareTableException($"FDT: unknown token 0x{token:X8} at 0x{structOff + p - 4:X}.");
            }
        }
        throw new FirmwareTableException("FDT: structure block ends without FDT_END.");
    }

    private static int Align(int p) => (p + TokenAlign - 1) & ~(TokenAlign - 1);
    private static uint BE(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt32BigEndian(b[at..]);
}

/// <summary>An "arm,smmu-v3" node (Documentation/devicetree/bindings/iommu/arm,smmu-v3.yaml): frame, interrupts by name, phandle.</summary>
public sealed record FdtSmmuV3(string Path, uint Phandle, ulong BaseAddress, ulong Size, IReadOnlyDictionary<string, uint> Interrupts, bool DmaCoherent);

/// <summary>One iommu-map entry of a PCIe host bridge (bindings/pci/pci-iommu.txt): RIDs [RidBase, RidBase + Length) to StreamIDs from IommuBase on the IOMMU with that phandle.</summary>
public readonly record struct FdtIommuMap(uint RidBase, uint IommuPhandle, uint IommuBase, uint Length);

/// <summary>What a guest booted with a device tree learns about its SMMUv3 (virt with iommu=smmuv3).</summary>
public sealed class FdtIommuTopology
{
    private const string SmmuV3Compatible = "arm,smmu-v3", PcieCompatible = "pci-host-ecam-generic";
    // GIC interrupt specifier (bindings/interrupt-controller/arm,gic.yaml): type (0 = SPI), number, flags; SPI n is INTID 32 + n.
    private const int GicCells = 3;
    private const uint GicSpi = 0, SpiBase = 32;

    public IReadOnlyList<FdtSmmuV3> Smmus { get; }
    public IReadOnlyList<FdtIommuMap> IommuMap { get; }

    private FdtIommuTopology(List<FdtSmmuV3> smmus, List<FdtIommuMap> map)
    {
        Smmus = smmus;
        IommuMap = map;
    }

    /// <summary>Reads the SMMUv3 nodes and the PCIe host bridge's iommu-map.</summary>
    public static FdtIommuTopology Read(FlattenedDeviceTree fdt)
    {
        var smmus = new List<FdtSmmuV3>();
        foreach (var n in fdt.Compatible(SmmuV3Compatible))
        {
            var reg = n.Reg();
            if (reg.Count == 0) throw new FirmwareTableException($"FDT: {n.Path} has no reg.");
            var names = n.Strings("interrupt-names");
            var cells = n.Cells("interrupts");
            var irqs = new Dictionary<string, uint>(StringComparer.Ordinal);
            for (int i = 0; i < names.Length && (i + 1) * GicCells <= cells.Length; i++)
            {
                uint type = cells[i * GicCells], number = cells[i * GicCells + 1];
                irqs[names[i]] = type == GicSpi ? number + SpiBase : number;
            }
            smmus.Add(new FdtSmmuV3(n.Path, n.Cell("phandle") ?? 0, reg[0].Address, reg[0].Size, irqs, n.Has("dma-coherent")));
        }
        var map = new List<FdtIommuMap>();
        foreach (var pci in fdt.Compatible(PcieCompatible))
        {
            var c = pci.Cells("iommu-map");
            for (int i = 0; i + 4 <= c.Length; i += 4) map.Add(new FdtIommuMap(c[i], c[i + 1], c[i + 2], c[i + 3]));
        }
        return new FdtIommuTopology(smmus, map);
    }

    /// <summary>The SMMU and StreamID for requester ID <paramref name="rid"/> (of_map_id): false when no entry covers it.</summary>
    public bool TryResolve(ushort rid, out FdtSmmuV3 smmu, out uint streamId)
    {
        foreach (var m in IommuMap)
        {
            if (rid < m.RidBase || rid - m.RidBase >= m.Length) continue;
            var s = Smmus.FirstOrDefault(x => x.Phandle == m.IommuPhandle);
            if (s is null) continue;
            smmu = s;
            streamId = m.IommuBase + (rid - m.RidBase);
            return true;
        }
        smmu = null!;
        streamId = 0;
        return false;
    }
}
