using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;
using NestedSmmu.Scenarios.Perf;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// Unmapping part of a 2 MiB / 1 GiB mapping, as Linux does it: iommufd refuses to split an area
/// (IOMMU_IOAS_UNMAP gives ENOENT and changes nothing), and io-pgtable-arm refuses to split a
/// block (the unmap of part of one removes nothing).
/// </summary>
public sealed class HugeMappingTests
{
    [Theory]
    [InlineData(1UL << 21)]
    [InlineData(1UL << 30)]
    public void Unmapping_part_of_a_block_mapped_area_is_ENOENT_and_the_whole_block_keeps_translating(ulong blockBytes)
    {
        using var w = new HugeMappingWorkload(blockBytes);
        w.Map();
        w.UnmapPartOfIt().ShouldBe(-(int)Errno.ENOENT);
        w.UnmapPartOfIt().ShouldBe(-(int)Errno.ENOENT, "still all there");
        w.Unmap().ShouldBe(blockBytes);
        w.Map();
        w.Unmap().ShouldBe(blockBytes, "the area was whole after the refusals");
    }

    [Fact]
    public void A_refused_partial_unmap_leaves_DMA_through_the_block_working()
    {
        using var bed = new TestBed();
        const ulong twoMiB = 1UL << 21, iova = 0x1_0000_0000;
        var ram = (EmulatedHostMemoryRegion)bed.Fd.AllocateHostMemory(2 * twoMiB, "ram");
        ulong offset = ((ram.HostPhysicalAddress + twoMiB - 1) & ~(twoMiB - 1)) - ram.HostPhysicalAddress;
        ram.Write(offset + twoMiB - 8, [0xA5]);
        IoasId ioas = bed.Fd.AllocIoas();
        DeviceId gpu = bed.Fd.BindDevice("gpu0");
        bed.Fd.AttachDevice(gpu, bed.Fd.AllocPagingHwpt(gpu, ioas));
        ulong before = bed.Diag.HostMemoryAllocated;
        bed.Fd.MapIoas(ioas, ram, offset, twoMiB, iova);
        (bed.Diag.HostMemoryAllocated - before).ShouldBe(2 * TestBed.Page, "a level-1 and a level-2 table; the 2 MiB is one block, no level-3 table");
        TestBed.ShouldFail(() => bed.Fd.UnmapIoas(ioas, iova + TestBed.Page, TestBed.Page), Errno.ENOENT);
        var (r, value) = bed.DmaRead("gpu0", iova + twoMiB - 8);
        (r.IsSuccess, value & 0xFF).ShouldBe((true, 0xA5UL));
        bed.DmaRead("gpu0", iova + TestBed.Page).Result.IsSuccess.ShouldBeTrue();
    }

    [Fact]
    public void The_stage_2_table_does_not_split_a_block_on_a_partial_unmap()
    {
        var memory = new SparseMemory();
        var allocator = new HostMemoryAllocator(memory, 0x8000_0000, 0x4000_0000);
        Stage2PageTable table = Stage2PageTable.TryCreate(allocator, memory, 48, 48, "test")!;
        const ulong twoMiB = 0x20_0000;
        table.Map(0x4000_0000, 0x9000_0000, twoMiB + 0x1000, read: true, write: true).ShouldBe(Errno.None);
        table.Unmap(0x4000_1000, 0x1000).ShouldBe(0UL, "part of the block: nothing unmapped");
        table.PartialBlockUnmapsRefused.ShouldBe(1);
        table.Lookup(0x4000_1234).ShouldBe(0x9000_1234UL);
        // A range covering the block in part and a page in whole unmaps the page only.
        table.Unmap(0x401F_F000, 0x2000).ShouldBe(0x1000UL);
        table.PartialBlockUnmapsRefused.ShouldBe(2);
        table.Lookup(0x4020_0000).ShouldBeNull();
        table.Unmap(0x4000_0000, twoMiB).ShouldBe(twoMiB);
        (table.LeafCount, table.TablePages).ShouldBe((0L, 0));
    }
}
