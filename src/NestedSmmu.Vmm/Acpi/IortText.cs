using NestedSmmu.Hardware.Firmware;
using System.Buffers.Binary;
using System.Globalization;

namespace NestedSmmu.Vmm.Acpi;

/// <summary>A readable listing of an IORT's nodes and ID mappings, decoded from the table's bytes.</summary>
public static class IortText
{
    /// <summary>One line per node and per ID mapping; node offsets in brackets, as mappings refer to them.</summary>
    public static IEnumerable<string> Describe(ReadOnlySpan<byte> iort)
    {
        var lines = new List<string>();
        int count = (int)U32(iort, IortLayout.NodeCount);
        int offset = (int)U32(iort, IortLayout.NodeArrayOffset);
        var names = new Dictionary<int, string>();
        var nodes = new List<(int Offset, IortNodeType Type)>();
        for (int i = 0; i < count && offset < iort.Length; i++)
        {
            var type = (IortNodeType)iort[offset + IortLayout.Node.Type];
            nodes.Add((offset, type));
            names[offset] = $"{Name(type)} [0x{offset:x3}]";
            offset += BinaryPrimitives.ReadUInt16LittleEndian(iort[(offset + IortLayout.Node.Length)..]);
        }
        foreach (var (at, type) in nodes)
        {
            var node = iort[at..];
            uint id = U32(node, IortLayout.Node.Identifier);
            string detail = type switch
            {
                IortNodeType.SmmuV3 => string.Create(CultureInfo.InvariantCulture,
                    $" base 0x{BinaryPrimitives.ReadUInt64LittleEndian(node[IortLayout.SmmuV3.BaseAddress..]):x8}, GSIV event {U32(node, IortLayout.SmmuV3.EventGsiv)} pri {U32(node, IortLayout.SmmuV3.PriGsiv)} gerr {U32(node, IortLayout.SmmuV3.GerrGsiv)} sync {U32(node, IortLayout.SmmuV3.SyncGsiv)}"),
                IortNodeType.RootComplex => $", PCI segment {U32(node, IortLayout.RootComplex.PciSegment)}, ATS {(U32(node, IortLayout.RootComplex.AtsAttribute) != 0 ? "yes" : "no")}",
                IortNodeType.ReservedMemoryRange => RmrRanges(node),
                _ => "",
            };
            lines.Add($"{names[at]} id {id}{detail}");
            int mappings = (int)U32(node, IortLayout.Node.MappingCount);
            int array = (int)U32(node, IortLayout.Node.MappingArrayOffset);
            for (int m = 0; m < mappings; m++)
            {
                var map = node[(array + m * IortLayout.IdMapping.Size)..];
                uint input = U32(map, IortLayout.IdMapping.InputBase);
                uint last = input + U32(map, IortLayout.IdMapping.IdCount);
                int target = (int)U32(map, IortLayout.IdMapping.OutputReference);
                string single = (U32(map, IortLayout.IdMapping.Flags) & IortLayout.IdMapping.SingleMapping) != 0 ? " (single)" : "";
                lines.Add($"    IDs 0x{input:x4}-0x{last:x4} -> {names.GetValueOrDefault(target, $"[0x{target:x3}]")} from 0x{U32(map, IortLayout.IdMapping.OutputBase):x4}{single}");
            }
        }
        return lines;
    }

    private static string RmrRanges(ReadOnlySpan<byte> node)
    {
        int count = (int)U32(node, IortLayout.Rmr.RangeCount);
        int array = (int)U32(node, IortLayout.Rmr.RangeArrayOffset);
        var ranges = new List<string>();
        for (int i = 0; i < count; i++)
        {
            var r = node[(array + i * IortLayout.Rmr.RangeSize)..];
            ranges.Add($"0x{BinaryPrimitives.ReadUInt64LittleEndian(r[IortLayout.Rmr.RangeBase..]):x} +0x{BinaryPrimitives.ReadUInt64LittleEndian(r[IortLayout.Rmr.RangeLength..]):x}");
        }
        return ", reserved " + string.Join(", ", ranges);
    }

    private static string Name(IortNodeType type) => type switch
    {
        IortNodeType.ItsGroup => "ITS group",
        IortNodeType.SmmuV3 => "SMMUv3",
        IortNodeType.RootComplex => "root complex",
        IortNodeType.ReservedMemoryRange => "RMR",
        _ => type.ToString(),
    };

    private static uint U32(ReadOnlySpan<byte> span, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(span[offset..]);
}
