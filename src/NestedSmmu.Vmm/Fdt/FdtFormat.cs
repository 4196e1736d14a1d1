namespace NestedSmmu.Vmm.Fdt;

/// <summary>
/// The flattened devicetree format (Devicetree Specification v0.4, chapter 5): the header's
/// fields (big-endian 32-bit, chained offsets), the structure block's tokens and alignments.
/// </summary>
public static class FdtFormat
{
    public const uint Magic = 0xD00D_FEED;
    /// <summary>This writer produces version 17, readable by anything that reads version 16 (5.2).</summary>
    public const uint Version = 17, LastCompatibleVersion = 16;

    // 5.2 Header, each field a big-endian uint32.
    public const int MagicOffset = 0;
    public const int TotalSizeOffset = MagicOffset + 4;
    public const int StructOffsetOffset = TotalSizeOffset + 4;
    public const int StringsOffsetOffset = StructOffsetOffset + 4;
    public const int MemReserveOffsetOffset = StringsOffsetOffset + 4;
    public const int VersionOffset = MemReserveOffsetOffset + 4;
    public const int LastCompatibleVersionOffset = VersionOffset + 4;
    public const int BootCpuIdOffset = LastCompatibleVersionOffset + 4;
    public const int StringsSizeOffset = BootCpuIdOffset + 4;
    public const int StructSizeOffset = StringsSizeOffset + 4;
    public const int HeaderSize = StructSizeOffset + 4;

    /// <summary>5.3: the memory reservation block is 8-byte aligned; entries are (address, size) uint64 pairs ended by (0, 0).</summary>
    public const int MemReserveAlignment = 8, MemReserveEntrySize = 16;

    /// <summary>5.4: structure block tokens; every token and property value is 4-byte aligned.</summary>
    public const uint BeginNode = 1, EndNode = 2, Prop = 3, Nop = 4, End = 9;
    public const int TokenAlignment = 4;
}
