using System.Buffers.Binary;
using System.Text;

namespace NestedSmmu.Vmm.Fdt;

/// <summary>One devicetree node read back from a blob: its name, properties in blob order, children.</summary>
public sealed record FdtNode(string Name, IReadOnlyList<FdtProperty> Properties, IReadOnlyList<FdtNode> Children)
{
    /// <summary>The property named <paramref name="name"/>, or null.</summary>
    public FdtProperty? Property(string name) => Properties.FirstOrDefault(p => p.Name == name);

    /// <summary>The node at a path of unit names below this one (<c>intc@8000000/its@8080000</c>), or null.</summary>
    public FdtNode? Find(string path)
    {
        FdtNode? node = this;
        foreach (string part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            node = node.Children.FirstOrDefault(c => c.Name == part);
            if (node is null) return null;
        }
        return node;
    }
}

/// <summary>One property: its name and raw value.</summary>
public sealed record FdtProperty(string Name, byte[] Value)
{
    /// <summary>The value as big-endian 32-bit cells.</summary>
    public uint[] Cells()
    {
        var cells = new uint[Value.Length / 4];
        for (int i = 0; i < cells.Length; i++) cells[i] = BinaryPrimitives.ReadUInt32BigEndian(Value.AsSpan(i * 4));
        return cells;
    }

    /// <summary>The value as a NUL-separated string list.</summary>
    public string[] Strings() => Encoding.ASCII.GetString(Value).TrimEnd('\0').Split('\0');
}

/// <summary>Reads a flattened devicetree blob (DTSpec v0.4 chapter 5) into nodes, checking the header.</summary>
public static class FdtReader
{
    /// <summary>Reads the tree; throws <see cref="FormatException"/> on a malformed blob.</summary>
    public static FdtNode Read(ReadOnlySpan<byte> blob)
    {
        if (blob.Length < FdtFormat.HeaderSize || BinaryPrimitives.ReadUInt32BigEndian(blob) != FdtFormat.Magic)
            throw new FormatException("Not a flattened devicetree (bad magic).");
        static uint Field(ReadOnlySpan<byte> header, int offset) => BinaryPrimitives.ReadUInt32BigEndian(header[offset..]);
        if (Field(blob, FdtFormat.LastCompatibleVersionOffset) > FdtFormat.Version)
            throw new FormatException($"Devicetree version {Field(blob, FdtFormat.VersionOffset)} is not readable as version {FdtFormat.Version}.");
        int structOffset = (int)Field(blob, FdtFormat.StructOffsetOffset);
        int structSize = (int)Field(blob, FdtFormat.StructSizeOffset);
        var strings = blob.Slice((int)Field(blob, FdtFormat.StringsOffsetOffset), (int)Field(blob, FdtFormat.StringsSizeOffset));
        var structure = blob.Slice(structOffset, structSize);

        int pos = 0;
        static uint Next(ReadOnlySpan<byte> s, ref int at)
        {
            uint token = BinaryPrimitives.ReadUInt32BigEndian(s[at..]);
            at += 4;
            return token;
        }
        var stack = new Stack<(string Name, List<FdtProperty> Props, List<FdtNode> Children)>();
        FdtNode? root = null;
        while (true)
        {
            uint token = Next(structure, ref pos);
            switch (token)
            {
                case FdtFormat.BeginNode:
                {
                    int end = structure[pos..].IndexOf((byte)0);
                    string name = Encoding.ASCII.GetString(structure.Slice(pos, end));
                    pos = AlignUp(pos + end + 1);
                    stack.Push((name, [], []));
                    break;
                }
                case FdtFormat.EndNode:
                {
                    var (name, props, children) = stack.Pop();
                    var node = new FdtNode(name, props, children);
                    if (stack.Count == 0) root = node;
                    else stack.Peek().Children.Add(node);
                    break;
                }
                case FdtFormat.Prop:
                {
                    int length = (int)Next(structure, ref pos);
                    int nameOffset = (int)Next(structure, ref pos);
                    int nameEnd = strings[nameOffset..].IndexOf((byte)0);
                    string name = Encoding.ASCII.GetString(strings.Slice(nameOffset, nameEnd));
                    stack.Peek().Props.Add(new FdtProperty(name, structure.Slice(pos, length).ToArray()));
                    pos = AlignUp(pos + length);
                    break;
                }
                case FdtFormat.Nop:
                    break;
                case FdtFormat.End:
                    return root ?? throw new FormatException("Devicetree has no root node.");
                default:
                    throw new FormatException($"Unknown devicetree token 0x{token:x} at structure offset {pos - 4}.");
            }
        }
    }

    private static int AlignUp(int value) => (value + FdtFormat.TokenAlignment - 1) & ~(FdtFormat.TokenAlignment - 1);
}
