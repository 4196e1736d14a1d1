using NestedSmmu.Iommufd.Emulated;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// The IOAS's ordered area index against a plain reference (a list scanned linearly): random
/// disjoint insertions and removals across many chunks, then every query the IOAS makes.
/// </summary>
public sealed class IoasAreaIndexTests
{
    private const ulong Page = 0x1000;

    private static IoasArea Area(ulong iova, ulong length) => new(iova, length, null!, 0, true, true);

    [Theory]
    [InlineData(1, 3000)]
    [InlineData(2, 1200)]
    [InlineData(3, 5000)]
    public void Random_disjoint_areas_answer_like_a_linear_scan(int seed, int operations)
    {
        var rng = new Random(seed);
        var index = new IoasAreaIndex();
        var reference = new List<IoasArea>();
        for (int op = 0; op < operations; op++)
        {
            if (reference.Count > 0 && rng.Next(4) == 0)
            {
                IoasArea victim = reference[rng.Next(reference.Count)];
                index.Remove(victim.Iova).ShouldBeTrue();
                reference.Remove(victim);
                index.Remove(victim.Iova).ShouldBeFalse("removed twice");
            }
            else
            {
                ulong iova = (ulong)rng.Next(0, 1 << 16) * Page, length = (ulong)rng.Next(1, 4) * Page;
                bool overlaps = reference.Any(a => a.Iova <= iova + length - 1 && iova <= a.Last);
                index.Intersects(iova, iova + length - 1).ShouldBe(overlaps);
                if (!overlaps)
                {
                    index.Add(Area(iova, length));
                    reference.Add(Area(iova, length));
                }
            }
            if (op % 97 == 0) ShouldMatch(index, reference, rng);
        }
        ShouldMatch(index, reference, rng);
    }

    [Fact]
    public void Appending_fills_chunks_and_floor_lookups_cross_them()
    {
        var index = new IoasAreaIndex();
        const int N = 5000;
        for (ulong i = 0; i < N; i++) index.Add(Area(0x1_0000_0000 + 2 * i * Page, Page)); // holes between areas
        index.Count.ShouldBe(N);
        for (ulong i = 0; i < N; i++)
        {
            ulong start = 0x1_0000_0000 + 2 * i * Page;
            index.FirstIntersecting(start + Page, start + 2 * Page - 1).ShouldBeNull("the hole after each area");
            index.FirstIntersecting(start - Page, start + 3 * Page)!.Value.Iova.ShouldBe(start);
        }
        index.FirstIntersecting(0, 0xFFFF_FFFF).ShouldBeNull();
        index.InOrder().Select(a => a.Iova).ShouldBe(index.InOrder().Select(a => a.Iova).Order());
        for (ulong i = 0; i < N; i += 2) index.Remove(0x1_0000_0000 + 2 * i * Page).ShouldBeTrue();
        index.Count.ShouldBe(N / 2);
        index.Intersecting(0, ulong.MaxValue).Count().ShouldBe(N / 2);
    }

    [Fact]
    public void Areas_come_back_in_IOVA_order_and_Clear_empties_the_index()
    {
        var index = new IoasAreaIndex();
        index.Add(Area(4 * Page, Page));
        index.Add(new IoasArea(Page, Page, null!, 7, true, false));
        index.InOrder().Select(a => (a.Iova, a.RegionOffset)).ShouldBe([(Page, 7UL), (4 * Page, 0UL)]);
        index.Clear();
        index.Count.ShouldBe(0);
        index.FirstIntersecting(0, ulong.MaxValue).ShouldBeNull();
    }

    private static void ShouldMatch(IoasAreaIndex index, List<IoasArea> reference, Random rng)
    {
        index.Count.ShouldBe(reference.Count);
        index.InOrder().Select(a => a.Iova).ShouldBe(reference.Select(a => a.Iova).Order());
        for (int q = 0; q < 50; q++)
        {
            ulong first = (ulong)rng.Next(0, 1 << 16) * Page, last = first + (ulong)rng.Next(0, 64) * Page + Page - 1;
            var expected = reference.Where(a => a.Iova <= last && first <= a.Last).OrderBy(a => a.Iova).Select(a => a.Iova).ToList();
            index.Intersecting(first, last).Select(a => a.Iova).ShouldBe(expected);
            index.FirstIntersecting(first, last)?.Iova.ShouldBe(expected.FirstOrDefault());
            (index.FirstIntersecting(first, last) is null).ShouldBe(expected.Count == 0);
        }
    }
}
