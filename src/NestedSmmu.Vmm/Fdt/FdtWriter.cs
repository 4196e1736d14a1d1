using System.Buffers.Binary;
using System.Text;

namespace NestedSmmu.Vmm.Fdt;

/// <summary>
/// Writes a flattened devicetree (DTSpec v0.4 chapter 5): header, memory reservation block,
/// structure block and strings block (property names stored once each). Nodes and properties are
/// written in call order.
/// </summary>
public sealed class FdtWriter
{
    private readonly List<byte> _struct = [];
    private readonly List<byte> _strings = [];
    private readonly Dictionary<string, int> _stringOffsets = new(StringComparer.Ordinal);
    private readonly List<(ulong Address, ulong Size)> _reserved = [];
    private int _depth;

    /// <summary>Adds a memory reservation entry (5.3).</summary>
    public FdtWriter Reserve(ulong address, ulong size)
    {
        _reserved.Add((address, size));
        return this;
    }

    /// <summary>FDT_BEGIN_NODE with the unit name ("" for the root).</summary>
    public FdtWriter BeginNode(string name)
    {
        Token(FdtFormat.BeginNode);
        _struct.AddRange(Encoding.ASCII.GetBytes(name));
        _struct.Add(0);
        Align();
        _depth++;
        return this;
    }

    /// <summary>FDT_END_NODE.</summary>
    public FdtWriter EndNode()
    {
        if (_depth == 0) throw new InvalidOperationException("EndNode without BeginNode.");
        Token(FdtFormat.EndNode);
        _depth--;
        return this;
    }

    /// <summary>A property with raw bytes.</summary>
    public FdtWriter Property(string name, ReadOnlySpan<byte> value)
    {
        if (_depth == 0) throw new InvalidOperationException("A property must be inside a node.");
        Token(FdtFormat.Prop);
        Token((uint)value.Length);
        Token((uint)NameOffset(name));
        _struct.AddRange(value);
        Align();
        return this;
    }

    /// <summary>An empty property (a boolean such as dma-coherent).</summary>
    public FdtWriter Empty(string name) => Property(name, []);

    /// <summary>A property of big-endian 32-bit cells.</summary>
    public FdtWriter Cells(string name, params uint[] cells)
    {
        var bytes = new byte[cells.Length * 4];
        for (int i = 0; i < cells.Length; i++) BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(i * 4), cells[i]);
        return Property(name, bytes);
    }

    /// <summary>A string, or a string list (each NUL-terminated, 2.2.4.1).</summary>
    public FdtWriter Strings(string name, params string[] values) =>
        Property(name, values.SelectMany(v => Encoding.ASCII.GetBytes(v).Append((byte)0)).ToArray());

    /// <summary>Closes the tree and returns the blob: header, reservations, structure, strings.</summary>
    public byte[] Finish(uint bootCpuId = 0)
    {
        if (_depth != 0) throw new InvalidOperationException($"{_depth} node(s) still open.");
        Token(FdtFormat.End);

        int memReserve = Align(FdtFormat.HeaderSize, FdtFormat.MemReserveAlignment);
        int structOffset = memReserve + (_reserved.Count + 1) * FdtFormat.MemReserveEntrySize;
        int stringsOffset = structOffset + _struct.Count;
        int total = stringsOffset + _strings.Count;

        var blob = new byte[total];
        var span = blob.AsSpan();
        BinaryPrimitives.WriteUInt32BigEndian(span[FdtFormat.MagicOffset..], FdtFormat.Magic);
        BinaryPrimitives.WriteUInt32BigEndian(span[FdtFormat.TotalSizeOffset..], (uint)total);
        BinaryPrimitives.WriteUInt32BigEndian(span[FdtFormat.StructOffsetOffset..], (uint)structOffset);
        BinaryPrimitives.WriteUInt32BigEndian(span[FdtFormat.StringsOffsetOffset..], (uint)stringsOffset);
        BinaryPrimitives.WriteUInt32BigEndian(span[FdtFormat.MemReserveOffsetOffset..], (uint)memReserve);
        BinaryPrimitives.WriteUInt32BigEndian(span[FdtFormat.VersionOffset..], FdtFormat.Version);
        BinaryPrimitives.WriteUInt32BigEndian(span[FdtFormat.LastCompatibleVersionOffset..], FdtFormat.LastCompatibleVersion);
        BinaryPrimitives.WriteUInt32BigEndian(span[FdtFormat.BootCpuIdOffset..], bootCpuId);
        BinaryPrimitives.WriteUInt32BigEndian(span[FdtFormat.StringsSizeOffset..], (uint)_strings.Count);
        BinaryPrimitives.WriteUInt32BigEndian(span[FdtFormat.StructSizeOffset..], (uint)_struct.Count);
        for (int i = 0; i < _reserved.Count; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(span[(memReserve + i * FdtFormat.MemReserveEntrySize)..], _reserved[i].Address);
            BinaryPrimitives.WriteUInt64BigEndian(span[(memReserve + i * FdtFormat.MemReserveEntrySize + 8)..], _reserved[i].Size);
        }
        _struct.CopyTo(blob, structOffset);
        _strings.CopyTo(blob, stringsOffset);
        return blob;
    }

    private int NameOffset(string name)
    {
        if (_stringOffsets.TryGetValue(name, out int offset)) return offset;
        offset = _strings.Count;
        _strings.AddRange(Encoding.ASCII.GetBytes(name));
        _strings.Add(0);
        _stringOffsets[name] = offset;
        return offset;
    }

    private void Token(uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        _struct.AddRange(b);
    }

    private void Align()
    {
        while (_struct.Count % FdtFormat.TokenAlignment != 0) _struct.Add(0);
    }

    private static int Align(int value, int alignment) => (value + alignment - 1) / alignment * alignment;
}
