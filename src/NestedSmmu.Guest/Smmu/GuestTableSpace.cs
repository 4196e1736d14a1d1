using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Guest.Smmu;

/// <summary>Translation tables in guest RAM: table pages come from the guest page allocator.</summary>
public sealed class GuestTableSpace(IPhysicalMemory ram, GuestPageAllocator pages) : ITableSpace
{
    public long TablesAllocated { get; private set; }

    public ulong Read(ulong address) => ram.ReadUInt64(address);

    public void Word(ulong address, ulong value) => ram.WriteUInt64(address, value);

    public ulong AllocTable(ulong bytes)
    {
        TablesAllocated++;
        return pages.Allocate(Math.Max(bytes, GuestPageAllocator.PageSize));
    }
}
