using NestedSmmu.Scenarios.Perf;

namespace NestedSmmu.Scenarios.Tests;

/// <summary>
/// Issue 12's "0 B allocated per translation and per command in steady state", checked on the
/// workloads the benchmarks time: after a warm-up, a thousand more operations allocate nothing on
/// this thread (bytes, not time, so the check is exact on any machine).
/// </summary>
public sealed class SteadyStateAllocationTests
{
    private static long AllocatedBy(Action operation, int warmUp = 2_000, int measured = 1_000)
    {
        for (int i = 0; i < warmUp; i++) operation();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < measured; i++) operation();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    [Fact]
    public void Translations_allocate_nothing()
    {
        var w = new NestedWalkWorkload();
        AllocatedBy(() => w.ColdWalk()).ShouldBe(0, "cold nested walks");
        AllocatedBy(() => w.MissUpperCached()).ShouldBe(0, "TLB misses with the walk caches warm");
        AllocatedBy(() => w.TlbHit()).ShouldBe(0, "TLB hits");
    }

    [Fact]
    public void Commands_allocate_nothing_on_any_path()
    {
        var cmdq = new CmdqWorkload();
        AllocatedBy(() => cmdq.ConsumeBatch(), warmUp: 200, measured: 100).ShouldBe(0, "CMDQ_PROD");
        var vcmdq = new VcmdqWorkload();
        AllocatedBy(() => vcmdq.ConsumeBatch(), warmUp: 200, measured: 100).ShouldBe(0, "a guest-owned VCMDQ");
        var viommu = new ViommuInvalidateWorkload();
        AllocatedBy(() => viommu.InvalidateBatch(), warmUp: 200, measured: 100).ShouldBe(0, "the emulated kernel's vIOMMU invalidate (ATC_INV included)");
    }
}
