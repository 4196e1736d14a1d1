using NestedSmmu.Scenarios.Perf;

namespace NestedSmmu.Scenarios.Tests;

/// <summary>
/// The timing workload's read lists: the baseline's (every descriptor of a traced, uncached walk) and
/// the cold walk's own (an untraced walk, whose stage-2 walks share the path of the one before).
/// </summary>
public class NestedWalkWorkloadTests
{
    [Theory]
    // 4K, 4 + 4 levels: the baseline walks stage 2 in full for each of the four stage-1 tables and
    // the output (five stage-2 walks of 4, and the four stage-1 descriptors). The walk: the root table's stage-2 walk (4), the level-0 descriptor,
    // then for levels 1-3 the stage-2 leaf of the table's IPA (the path's level-3 table) and the
    // descriptor (3 x 2), then the output IPA's stage-2 walk from the level-1 table it shares with
    // the tables' IPAs (3).
    [InlineData(12, 3, 24, 14)]
    // 64K, 3 + 3 levels: baseline four stage-2 walks of 3 and three stage-1 descriptors; walk 3 + 1 + 2 x 2, and the output's from the shared level-2 table (2).
    [InlineData(16, 3, 15, 10)]
    // 4K with 2 MiB blocks at both stages: stage 1 ends at level 2, the output's stage-2 walk too.
    // Baseline: three stage-2 walks of 4 for the tables, one of 3 for the output, three stage-1 descriptors; walk 4 + 1 + 2 x 2, and the output's from the shared level-1 table (2).
    [InlineData(12, 2, 18, 11)]
    public void TheColdWalkReadsFewerDescriptorsThanTheBaselineAndOnlyThose(int pageShift, int leafLevel, int baseline, int walk)
    {
        var w = new NestedWalkWorkload(pageShift, leafLevel);
        (w.DescriptorReads, w.ColdWalkReads).ShouldBe((baseline, walk));
        // Every read the walk makes is one the baseline makes, in the same order: it skips, never adds.
        ulong[] all = w.BaselineAddresses.ToArray();
        int at = 0;
        foreach (ulong a in w.ColdWalkAddresses)
        {
            while (at < all.Length && all[at] != a) at++;
            at.ShouldBeLessThan(all.Length, $"0x{a:X} is not next in the baseline's reads");
            at++;
        }
        // The chain ends on the output's stage-2 leaf, the baseline's last read.
        w.ColdWalkAddresses[^1].ShouldBe(all[^1]);
    }
}
