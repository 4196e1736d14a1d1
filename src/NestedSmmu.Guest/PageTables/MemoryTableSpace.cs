using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Guest.PageTables;

/// <summary>
/// Translation tables held in an <see cref="IPhysicalMemory"/>: table address A is byte
/// A - <c>addressBase</c> of the memory (so a guest's tables can live in a RAM region that starts
/// at a guest physical address), allocated upwards from <c>allocateFrom</c> and never freed.
/// </summary>
/// <param name="memory">The memory the tables are written to.</param>
/// <param name="allocateFrom">The first table address to hand out.</param>
/// <param name="addressBase">The table address of byte 0 of <paramref name="memory"/>.</param>
public sealed class MemoryTableSpace(IPhysicalMemory memory, ulong allocateFrom, ulong addressBase = 0) : ITableSpace
{
    private readonly TableAllocator _allocator = new(allocateFrom);

    public ulong Read(ulong address) => memory.ReadUInt64(address - addressBase);

    public void Word(ulong address, ulong value) => memory.WriteUInt64(address - addressBase, value);

    /// <summary>
    /// A table of at least <paramref name="bytes"/>, aligned to its size. The memory is assumed to
    /// read as zero where nothing was written (fresh RAM); tables are never handed out twice.
    /// </summary>
    public ulong AllocTable(ulong bytes) => _allocator.Allocate(bytes);
}

/// <summary>
/// Bump allocation of naturally aligned translation tables (VMSAv8-64 tables are aligned to their
/// size, Arm ARM D8.2), shared by every <see cref="ITableSpace"/> so they lay tables out alike.
/// </summary>
public sealed class TableAllocator(ulong allocateFrom)
{
    /// <summary>The smallest table handed out: one 4 KiB page (the smallest granule).</summary>
    public const ulong MinimumTableBytes = 0x1000;

    private ulong _next = allocateFrom;

    /// <summary>The next free address, above every table handed out so far.</summary>
    public ulong Next => _next;

    /// <summary>Hands out <paramref name="bytes"/> (rounded up to <see cref="MinimumTableBytes"/>, a power of two expected) aligned to that size.</summary>
    public ulong Allocate(ulong bytes)
    {
        bytes = Math.Max(bytes, MinimumTableBytes);
        ulong table = (_next + bytes - 1) & ~(bytes - 1);
        _next = table + bytes;
        return table;
    }
}
