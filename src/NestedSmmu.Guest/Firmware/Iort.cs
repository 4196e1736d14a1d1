using System.Buffers.Binary;
using NestedSmmu.Hardware.Firmware;

namespace NestedSmmu.Guest.Firmware;

/// <summary>One ID mapping (DEN0049 3.4, Table 5): input IDs [InputBase, InputBase + IdCount] map to OutputBase onwards in the node at OutputReference.</summary>
/// <param name="IdCount">The number of IDs in the range minus one (as the table stores it).</param>
/// <param name="OutputReference">Offset of the output node from the start of the IORT.</param>
/// <param name="SingleMapping">Flags bit 0: one output ID for the node itself, whatever the input.</param>
public readonly record struct IortIdMapping(uint InputBase, uint IdCount, uint OutputBase, uint OutputReference, bool SingleMapping)
{
    public const int Size = 20;
}

/// <summary>A node: its type, offset in the table, identifier, and ID mappings; type-specific data in the derived records.</summary>
public abstract record IortNode(IortNodeType Type, uint Offset, byte Revision, uint Identifier, IReadOnlyList<IortIdMapping> IdMappings);

/// <summary>An ITS group (DEN0049 3.1.1.1): the GIC ITS identifiers the node's IDs reach as DeviceIDs.</summary>
public sealed record IortItsGroup(uint Offset, byte Revision, uint Identifier, IReadOnlyList<uint> ItsIdentifiers)
    : IortNode(IortNodeType.ItsGroup, Offset, Revision, Identifier, []);

/// <summary>An SMMUv3 (DEN0049 3.1.1.5): register base, flags, model and its four interrupts (GSIVs).</summary>
public sealed record IortSmmuV3(uint Offset, byte Revision, uint Identifier, IReadOnlyList<IortIdMapping> IdMappings,
    ulong BaseAddress, uint Flags, uint Model, uint EventGsiv, uint PriGsiv, uint GerrGsiv, uint SyncGsiv)
    : IortNode(IortNodeType.SmmuV3, Offset, Revision, Identifier, IdMappings)
{
    /// <summary>Flags bit 0: COHACC override (the SMMU's table walks are coherent).</summary>
    public bool CoherentAccess => (Flags & 1) != 0;
}

/// <summary>A PCI root complex (DEN0049 3.1.1.3): segment, ATS support and its RID mappings.</summary>
public sealed record IortRootComplex(uint Offset, byte Revision, uint Identifier, IReadOnlyList<IortIdMapping> IdMappings,
    uint CacheCoherency, byte MemoryAccessFlags, uint AtsAttribute, uint PciSegment, byte MemoryAddressSizeLimit)
    : IortNode(IortNodeType.RootComplex, Offset, Revision, Identifier, IdMappings)
{
    /// <summary>ATS Attribute bit 0: the root complex supports ATS.</summary>
    public bool AtsSupported => (AtsAttribute & 1) != 0;
}

/// <summary>A reserved memory range descriptor of an RMR node (DEN0049 3.1.1.7, Table 19).</summary>
public readonly record struct IortMemoryRange(ulong Base, ulong Length);

/// <summary>A Reserved Memory Range node (DEN0049 3.1.1.7): StreamIDs (through its ID mappings) that must keep reaching these ranges.</summary>
public sealed record IortRmr(uint Offset, byte Revision, uint Identifier, IReadOnlyList<IortIdMapping> IdMappings, uint Flags,
    IReadOnlyList<IortMemoryRange> Ranges)
    : IortNode(IortNodeType.ReservedMemoryRange, Offset, Revision, Identifier, IdMappings);

/// <summary>Any node type this reader does not decode further (named components, SMMUv1/v2, PMCG).</summary>
public sealed record IortOtherNode(IortNodeType NodeType, uint Offset, byte Revision, uint Identifier, IReadOnlyList<IortIdMapping> IdMappings)
    : IortNode(NodeType, Offset, Revision, Identifier, IdMappings);

/// <summary>Where a PCI requester ID's DMA goes: the SMMUv3 that translates it and the StreamID it arrives with.</summary>
public readonly record struct IortStreamRoute(IortRootComplex RootComplex, IortSmmuV3 Smmu, uint StreamId);

/// <summary>
/// The IO Remapping Table (Arm DEN0049, table revision 5 as QEMU 11 writes it), read as Linux's
/// drivers/acpi/arm64/iort.c reads it: every node, and ID translation from a root complex's
/// requester ID through its mappings to an SMMUv3 and a StreamID (iort_node_map_id).
/// </summary>
public sealed class Iort
{
    // Table layout after the ACPI header (DEN0049 Table 3): number of nodes, offset of the first node.
    private const int NodeCountOffset = AcpiTableHeader.Size, NodeArrayOffsetField = NodeCountOffset + 4;
    // Node header (DEN0049 Table 4): type, length, revision, identifier, number and offset of ID mappings.
    private const int NodeType = 0, NodeLength = 1, NodeRevision = 3, NodeIdentifier = 4, NodeMappingCount = 8, NodeMappingOffset = 12, NodeData = 16;
    // SMMUv3 node data (Table 14), from the node start.
    private const int SmmuBase = NodeData, SmmuFlags = SmmuBase + 8, SmmuVatos = SmmuFlags + 8, SmmuModel = SmmuVatos + 8,
        SmmuEvent = SmmuModel + 4, SmmuPri = SmmuEvent + 4, SmmuGerr = SmmuPri + 4, SmmuSync = SmmuGerr + 4, SmmuMinLength = SmmuSync + 4;
    // Root complex node data (Table 10): memory access properties (CCA u32, hints u8, reserved u16, flags u8), ATS attribute, segment, address size limit.
    private const int RcCca = NodeData, RcMemFlags = RcCca + 7, RcAts = RcCca + 8, RcSegment = RcAts + 4, RcAddressLimit = RcSegment + 4, RcMinLength = RcAddressLimit + 1;
    // ITS group (Table 6): count, then 32-bit identifiers.
    private const int ItsCount = NodeData, ItsIds = ItsCount + 4;
    // RMR (Table 18): flags, number and offset of memory range descriptors (20 bytes: base, length, reserved).
    private const int RmrFlags = NodeData, RmrRangeCount = RmrFlags + 4, RmrRangeOffset = RmrRangeCount + 4, RmrMinLength = RmrRangeOffset + 4;
    private const int RangeDescriptorSize = 20;
    private const uint SingleMappingFlag = 1;
    /// <summary>Linux's iort_node_map_id gives up after this many hops (MAX_NR_ID_MAPS would loop otherwise).</summary>
    private const int MaxHops = 8;

    private readonly Dictionary<uint, IortNode> _byOffset = new();

    private Iort(AcpiTableHeader header, IReadOnlyList<IortNode> nodes)
    {
        Header = header;
        Nodes = nodes;
        foreach (var n in nodes) _byOffset[n.Offset] = n;
    }

    public AcpiTableHeader Header { get; }
    public IReadOnlyList<IortNode> Nodes { get; }
    public IEnumerable<IortSmmuV3> SmmuV3Nodes => Nodes.OfType<IortSmmuV3>();
    public IEnumerable<IortRootComplex> RootComplexes => Nodes.OfType<IortRootComplex>();
    public IEnumerable<IortRmr> Rmrs => Nodes.OfType<IortRmr>();
    public IEnumerable<IortItsGroup> ItsGroups => Nodes.OfType<IortItsGroup>();

    /// <summary>The node at a table offset (what an ID mapping's output reference names).</summary>
    public IortNode? NodeAt(uint offset) => _byOffset.GetValueOrDefault(offset);

    /// <summary>Parses an IORT; a malformed table is a <see cref="FirmwareTableException"/> naming the node and field.</summary>
    public static Iort Parse(ReadOnlySpan<byte> table)
    {
        var header = AcpiTableHeader.Read(table, "IORT");
        table = table[..(int)header.Length];
        if (table.Length < NodeArrayOffsetField + 8) throw new FirmwareTableException("IORT: too short for the node count and offset.");
        uint count = U32(table, NodeCountOffset);
        uint offset = U32(table, NodeArrayOffsetField);
        var nodes = new List<IortNode>();
        for (uint i = 0; i < count; i++)
        {
            if (offset + NodeData > (uint)table.Length) throw new FirmwareTableException($"IORT: node {i} at 0x{offset:X} is past the end of the table (0x{table.Length:X}).");
            var node = table[(int)offset..];
            ushort length = BinaryPrimitives.ReadUInt16LittleEndian(node[NodeLength..]);
            if (length < NodeData || offset + length > (uint)table.Length) throw new FirmwareTableException($"IORT: node {i} at 0x{offset:X} has length {length}, outside the table.");
            nodes.Add(ParseNode(node[..length], offset, i));
            offset += length;
        }
        return new Iort(header, nodes);
    }

    private static IortNode ParseNode(ReadOnlySpan<byte> n, uint offset, uint index)
    {
        var type = (IortNodeType)n[NodeType];
        byte rev = n[NodeRevision];
        uint id = U32(n, NodeIdentifier);
        var maps = ParseMappings(n, offset, index);
        string where = $"IORT node {index} ({type}) at 0x{offset:X}";
        switch (type)
        {
            case IortNodeType.ItsGroup:
            {
                uint its = U32(n, ItsCount);
                if (ItsIds + its * 4 > (uint)n.Length) throw new FirmwareTableException($"{where}: {its} ITS identifiers do not fit its length {n.Length}.");
                var ids = new uint[its];
                for (int k = 0; k < its; k++) ids[k] = U32(n, ItsIds + 4 * k);
                return new IortItsGroup(offset, rev, id, ids);
            }
            case IortNodeType.SmmuV3:
                if (n.Length < SmmuMinLength) throw new FirmwareTableException($"{where}: length {n.Length} is shorter than an SMMUv3 node ({SmmuMinLength}).");
                return new IortSmmuV3(offset, rev, id, maps, U64(n, SmmuBase), U32(n, SmmuFlags), U32(n, SmmuModel),
                    U32(n, SmmuEvent), U32(n, SmmuPri), U32(n, SmmuGerr), U32(n, SmmuSync));
            case IortNodeType.RootComplex:
                if (n.Length < RcMinLength) throw new FirmwareTableException($"{where}: length {n.Length} is shorter than a root complex node ({RcMinLength}).");
                return new IortRootComplex(offset, rev, id, maps, U32(n, RcCca), n[RcMemFlags], U32(n, RcAts), U32(n, RcSegment), n[RcAddressLimit]);
            case IortNodeType.ReservedMemoryRange:
            {
                if (n.Length < RmrMinLength) throw new FirmwareTableException($"{where}: length {n.Length} is shorter than an RMR node ({RmrMinLength}).");
                uint rc = U32(n, RmrRangeCount), ro = U32(n, RmrRangeOffset);
                if (ro + (ulong)rc * RangeDescriptorSize > (ulong)n.Length) throw new FirmwareTableException($"{where}: {rc} memory ranges at +0x{ro:X} do not fit its length {n.Length}.");
                var ranges = new IortMemoryRange[rc];
                for (int k = 0; k < rc; k++) ranges[k] = new IortMemoryRange(U64(n, (int)ro + k * RangeDescriptorSize), U64(n, (int)ro + k * RangeDescriptorSize + 8));
                return new IortRmr(offset, rev, id, maps, U32(n, RmrFlags), ranges);
            }
            default:
                return new IortOtherNode(type, offset, rev, id, maps);
        }
    }

    private static IortIdMapping[] ParseMappings(ReadOnlySpan<byte> n, uint offset, uint index)
    {
        uint count = U32(n, NodeMappingCount), at = U32(n, NodeMappingOffset);
        if (count == 0) return [];
        if (at + (ulong)count * IortIdMapping.Size > (ulong)n.Length)
            throw new FirmwareTableException($"IORT node {index} at 0x{offset:X}: {count} ID mappings at +0x{at:X} do not fit its length {n.Length}.");
        var maps = new IortIdMapping[count];
        for (int k = 0; k < count; k++)
        {
            int m = (int)at + k * IortIdMapping.Size;
            maps[k] = new IortIdMapping(U32(n, m), U32(n, m + 4), U32(n, m + 8), U32(n, m + 12), (U32(n, m + 16) & SingleMappingFlag) != 0);
        }
        return maps;
    }

    /// <summary>
    /// The SMMUv3 and StreamID that serve requester ID <paramref name="rid"/> of PCI segment
    /// <paramref name="segment"/>; false when its DMA reaches no SMMU (straight to an ITS, or unmapped).
    /// </summary>
    public bool TryResolve(int segment, ushort rid, out IortStreamRoute route)
    {
        route = default;
        var rc = RootComplexes.FirstOrDefault(r => r.PciSegment == (uint)segment);
        if (rc is null) return false;
        IortNode node = rc;
        uint id = rid;
        for (int hop = 0; hop < MaxHops; hop++)
        {
            if (node is IortSmmuV3 smmu)
            {
                route = new IortStreamRoute(rc, smmu, id);
                return true;
            }
            if (!TryMapId(node, id, out uint outId, out uint outRef)) return false;
            node = NodeAt(outRef) ?? throw new FirmwareTableException($"IORT: a mapping of node at 0x{node.Offset:X} points at 0x{outRef:X}, where no node starts.");
            id = outId;
            if (node is IortItsGroup) return false;
        }
        return false;
    }

    /// <summary>
    /// One step of iort_node_map_id: the first mapping that covers <paramref name="id"/>. IdCount is the
    /// number of IDs minus one, but some firmware stores the count itself; as Linux does, a match on the
    /// last ID of a range yields to a later range that starts there.
    /// </summary>
    private static bool TryMapId(IortNode node, uint id, out uint outId, out uint outRef)
    {
        outId = 0;
        outRef = 0;
        bool found = false;
        foreach (var m in node.IdMappings)
        {
            if (m.SingleMapping)
            {
                if (node.Type is IortNodeType.RootComplex or IortNodeType.NamedComponent) { outId = m.OutputBase; outRef = m.OutputReference; return true; }
                continue;
            }
            if (id < m.InputBase || id > m.InputBase + (ulong)m.IdCount) continue;
            if (found && id != m.InputBase) continue;
            outId = m.OutputBase + (id - m.InputBase);
            outRef = m.OutputReference;
            if (m.IdCount > 0 && id == m.InputBase + m.IdCount && !found) { found = true; continue; }
            return true;
        }
        return found;
    }

    /// <summary>The StreamIDs an RMR node names for <paramref name="smmu"/> (its ID mappings that point at that SMMU).</summary>
    public IEnumerable<uint> RmrStreamIds(IortRmr rmr, IortSmmuV3 smmu)
    {
        foreach (var m in rmr.IdMappings)
        {
            if (m.OutputReference != smmu.Offset) continue;
            if (m.SingleMapping) { yield return m.OutputBase; continue; }
            for (ulong k = 0; k <= m.IdCount; k++) yield return m.OutputBase + (uint)k;
        }
    }

    private static uint U32(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt32LittleEndian(b[at..]);
    private static ulong U64(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt64LittleEndian(b[at..]);
}
