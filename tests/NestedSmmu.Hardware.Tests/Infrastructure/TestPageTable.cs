namespace NestedSmmu.Hardware.Tests.Infrastructure;

/// <summary>
/// An independent VMSAv8-64 translation-table builder for tests. It derives every index and
/// descriptor from the Arm ARM's rules by plain arithmetic and never calls the model's walker,
/// geometry helpers or SMMU internals, so a test can compare the model against it.
/// Tables live in the "table address space" (PA for stage 2 and stage-1-only, IPA for a nested
/// stage 1); <paramref name="toPa"/> maps that space to the physical memory the tables are
/// written in.
/// </summary>
public sealed class TestPageTable
{
    // Descriptor bits (Arm ARM D8.3).
    public const ulong Valid = 1UL << 0, TableOrPage = 1UL << 1, AF = 1UL << 10, NG = 1UL << 11;
    public const ulong S1ApEl0 = 1UL << 6, S1ApReadOnly = 1UL << 7;
    public const ulong S2ApRead = 1UL << 6, S2ApWrite = 1UL << 7;
    public const ulong ShInner = 3UL << 8;
    public const ulong S2MemAttrNormalWb = 0xFUL << 2;

    private readonly IPhysicalMemory _memory;
    private readonly TestAllocator _allocator;
    private readonly Func<ulong, ulong> _toPa;
    private readonly bool _lpa;
    private readonly List<(ulong Base, ulong Size)> _tables = new();

    public TestPageTable(IPhysicalMemory memory, TestAllocator allocator, int pageShift, int inputBits, int startLevel,
        bool stage2, Func<ulong, ulong>? toPa = null, bool lpa = false)
    {
        if (pageShift is not (12 or 14 or 16)) throw new ArgumentOutOfRangeException(nameof(pageShift));
        _memory = memory;
        _allocator = allocator;
        _toPa = toPa ?? (a => a);
        _lpa = lpa;
        PageShift = pageShift;
        InputBits = inputBits;
        StartLevel = startLevel;
        Stage2 = stage2;
        int bitsAtStart = inputBits - LevelShift(startLevel);
        if (bitsAtStart < 1) throw new ArgumentException($"start level {startLevel} resolves no bits of a {inputBits}-bit input");
        StartTableBytes = Math.Max(64UL, 8UL << bitsAtStart);
        ConcatenatedTables = bitsAtStart > Stride ? 1 << (bitsAtStart - Stride) : 1;
        Root = NewTable(StartTableBytes);
    }

    public int PageShift { get; }
    public int InputBits { get; }
    public int StartLevel { get; }
    public bool Stage2 { get; }
    public ulong Root { get; }
    public ulong StartTableBytes { get; }
    public int ConcatenatedTables { get; }
    public int Stride => PageShift - 3;
    public ulong PageSize => 1UL << PageShift;
    /// <summary>Every table this builder allocated, in the table address space.</summary>
    public IReadOnlyList<(ulong Base, ulong Size)> Tables => _tables;

    public int LevelShift(int level) => PageShift + (3 - level) * Stride;
    public ulong LeafSize(int level) => 1UL << LevelShift(level);

    /// <summary>Address of the descriptor for <paramref name="ia"/> at <paramref name="level"/> in a table at <paramref name="table"/>.</summary>
    public ulong DescriptorAddress(ulong table, int level, ulong ia)
    {
        int shift = LevelShift(level);
        int bits = level == StartLevel ? InputBits - shift : Stride;
        ulong index = (ia >> shift) & ((1UL << bits) - 1);
        return table + index * 8;
    }

    /// <summary>Encodes an output or next-level address, with OA[51:48] in [15:12] for 64 KiB LPA.</summary>
    public ulong EncodeAddress(ulong address, int shift)
    {
        ulong field = address & (((1UL << 48) - 1) & ~((1UL << shift) - 1));
        if (_lpa && PageShift == 16) field |= ((address >> 48) & 0xF) << 12;
        return field;
    }

    /// <summary>Leaf attributes: stage 1 read/write for EL0, not global (as Linux's io-pgtable maps); stage 2 read/write.</summary>
    public ulong DefaultAttributes => Stage2 ? S2ApRead | S2ApWrite | S2MemAttrNormalWb | ShInner | AF : S1ApEl0 | ShInner | AF | NG;

    /// <summary>
    /// Maps the leaf at <paramref name="leafLevel"/> containing <paramref name="ia"/> to <paramref name="oa"/>
    /// (both aligned down to the leaf size). Returns the table-space address of the leaf descriptor.
    /// </summary>
    public ulong Map(ulong ia, ulong oa, int leafLevel, ulong? attributes = null)
    {
        if (leafLevel < StartLevel || leafLevel > 3) throw new ArgumentOutOfRangeException(nameof(leafLevel));
        ulong table = Root;
        for (int level = StartLevel; level < leafLevel; level++)
        {
            ulong at = DescriptorAddress(table, level, ia);
            ulong desc = _memory.ReadUInt64(_toPa(at));
            if ((desc & Valid) == 0)
            {
                ulong next = NewTable(PageSize);
                desc = EncodeAddress(next, PageShift) | TableOrPage | Valid;
                _memory.WriteUInt64(_toPa(at), desc);
                table = next;
            }
            else
            {
                if ((desc & TableOrPage) == 0) throw new InvalidOperationException($"0x{ia:X} is already mapped by a block at level {level}");
                table = DecodeAddress(desc, PageShift);
            }
        }
        ulong leafAt = DescriptorAddress(table, leafLevel, ia);
        ulong leaf = EncodeAddress(oa, LevelShift(leafLevel)) | (attributes ?? DefaultAttributes) | Valid | (leafLevel == 3 ? TableOrPage : 0);
        _memory.WriteUInt64(_toPa(leafAt), leaf);
        return leafAt;
    }

    /// <summary>Rewrites the descriptor at <paramref name="tableSpaceAddress"/>.</summary>
    public void WriteDescriptor(ulong tableSpaceAddress, ulong value) => _memory.WriteUInt64(_toPa(tableSpaceAddress), value);
    public ulong ReadDescriptor(ulong tableSpaceAddress) => _memory.ReadUInt64(_toPa(tableSpaceAddress));

    /// <summary>Table-space address of the descriptor at <paramref name="level"/> on the walk of <paramref name="ia"/> (tables must exist).</summary>
    public ulong WalkTo(ulong ia, int level)
    {
        ulong table = Root;
        for (int l = StartLevel; l < level; l++)
        {
            ulong desc = _memory.ReadUInt64(_toPa(DescriptorAddress(table, l, ia)));
            table = DecodeAddress(desc, PageShift);
        }
        return DescriptorAddress(table, level, ia);
    }

    private ulong DecodeAddress(ulong desc, int shift)
    {
        ulong a = desc & (((1UL << 48) - 1) & ~((1UL << shift) - 1));
        if (_lpa && PageShift == 16) a |= ((desc >> 12) & 0xF) << 48;
        return a;
    }

    private ulong NewTable(ulong bytes)
    {
        ulong t = _allocator.Allocate(bytes, Math.Max(bytes, 64));
        _tables.Add((t, bytes));
        return t;
    }
}

/// <summary>A bump allocator of naturally aligned regions in one address space.</summary>
public sealed class TestAllocator(ulong start)
{
    private ulong _next = start;
    public ulong Start { get; } = start;
    public ulong Next => _next;

    public ulong Allocate(ulong size, ulong alignment)
    {
        _next = (_next + alignment - 1) & ~(alignment - 1);
        ulong a = _next;
        _next += size;
        return a;
    }
}
