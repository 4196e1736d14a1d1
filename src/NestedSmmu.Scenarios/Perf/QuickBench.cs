using System.Diagnostics;
using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Scenarios.Perf;

/// <summary>One measured figure: median time per operation, its target and its ratio to the baseline timed beside it.</summary>
/// <param name="Name">Stable name (the JSON key users compare across runs).</param>
/// <param name="MedianNs">Median nanoseconds per operation.</param>
/// <param name="TargetNs">The target (at most this), or null where none is set.</param>
/// <param name="BaselineRatio">Median divided by the baseline's median, or null without a baseline.</param>
/// <param name="TargetRatio">A second target on the ratio (at most this), or null.</param>
/// <param name="Baseline">The baseline's name.</param>
/// <param name="AllocatedBytesPerOp">Managed bytes allocated per operation in steady state (this thread).</param>
public sealed record BenchFigure(string Name, double MedianNs, double? TargetNs, double? BaselineRatio, double? TargetRatio, string? Baseline,
    double AllocatedBytesPerOp = 0)
{
    /// <summary>Null when there is no target; otherwise whether every target is met.</summary>
    public bool? Pass => TargetNs is null && TargetRatio is null ? null
        : (TargetNs is not { } t || MedianNs <= t) && (TargetRatio is not { } r || BaselineRatio is not { } b || b <= r);
}

/// <summary>
/// A small in-process timing harness for `nestedsmmu bench`: each sample runs an operation enough
/// times to fill a few milliseconds, samples of the benchmark and of its baseline alternate (so
/// drift in the machine's speed hits both), and the median per-operation time is reported.
/// BenchmarkDotNet (bench/NestedSmmu.Benchmarks) is the full, statistically careful suite.
/// </summary>
public sealed class QuickBench(bool quick)
{
    private readonly int _samples = quick ? 5 : 15;
    private readonly double _sampleMs = quick ? 2 : 10;
    private readonly double _warmupMs = quick ? 150 : 400;

    /// <summary>Median ns per operation of <paramref name="op"/> (which performs <paramref name="opsPerCall"/> operations), and of <paramref name="baseline"/> when given.</summary>
    public (double Median, double? BaselineMedian) Measure(Func<long> op, int opsPerCall, Func<long>? baseline = null, int baselineOpsPerCall = 1) =>
        Measure(op, opsPerCall, out _, baseline, baselineOpsPerCall);

    /// <summary>As <see cref="Measure(Func{long}, int, Func{long}?, int)"/>, also giving the bytes allocated per operation after warm-up.</summary>
    public (double Median, double? BaselineMedian) Measure(Func<long> op, int opsPerCall, out double allocatedPerOp, Func<long>? baseline = null, int baselineOpsPerCall = 1)
    {
        int calls = Calibrate(op), baseCalls = baseline is null ? 0 : Calibrate(baseline);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Time(op, calls);
        allocatedPerOp = (GC.GetAllocatedBytesForCurrentThread() - before) / ((double)calls * opsPerCall);
        var times = new double[_samples];
        var baseTimes = new double[_samples];
        for (int s = 0; s < _samples; s++)
        {
            if (baseline is not null) baseTimes[s] = Time(baseline, baseCalls) / ((double)baseCalls * baselineOpsPerCall);
            times[s] = Time(op, calls) / ((double)calls * opsPerCall);
        }
        return (Median(times), baseline is null ? null : Median(baseTimes));
    }

    private int Calibrate(Func<long> op)
    {
        // Warm up for a while: tiered compilation optimizes a method only after it has been called
        // for some time, and a quick run would otherwise time unoptimized code.
        long warmUntil = Stopwatch.GetTimestamp() + (long)(_warmupMs * Stopwatch.Frequency / 1000);
        while (Stopwatch.GetTimestamp() < warmUntil) for (int i = 0; i < 16; i++) op();
        int calls = 1;
        while (true)
        {
            double ns = Time(op, calls);
            if (ns >= _sampleMs * 1e6 || calls >= 1 << 26) return calls;
            calls = ns <= 0 ? calls * 16 : (int)Math.Min(1 << 26, Math.Max(calls * 2.0, calls * _sampleMs * 1e6 / ns * 1.1));
        }
    }

    private static double Time(Func<long> op, int calls)
    {
        long sink = 0;
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < calls; i++) sink += op();
        long end = Stopwatch.GetTimestamp();
        GC.KeepAlive(sink);
        return (end - start) * 1e9 / Stopwatch.Frequency;
    }

    private static double Median(double[] values)
    {
        var v = (double[])values.Clone();
        Array.Sort(v);
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }
}

/// <summary>The figures `nestedsmmu bench` reports, on the same workloads as the BenchmarkDotNet suite.</summary>
public static class QuickSuite
{
    /// <summary>Targets from the performance issue: TLB hit, nested 4K cold walk (absolute and ratio), commands (30 M/s).</summary>
    public const double TlbHitTargetNs = 5, ColdWalkTargetNs = 250, ColdWalkTargetRatio = 1.3, CommandTargetNs = 1e9 / 30e6;

    public static IReadOnlyList<BenchFigure> Run(bool quick, Action<BenchFigure>? progress = null)
    {
        var bench = new QuickBench(quick);
        var figures = new List<BenchFigure>();
        BenchFigure Add(string name, Func<long> op, int ops, Func<long> baseline, int baseOps, string baseName,
            double? target = null, double? targetRatio = null)
        {
            var (median, baseMedian) = bench.Measure(op, ops, out double allocated, baseline, baseOps);
            var f = new BenchFigure(name, median, target, median / baseMedian!.Value, targetRatio, baseName, allocated);
            figures.Add(f);
            progress?.Invoke(f);
            return f;
        }
        void AddBaseline(string name, Func<long> op, int ops)
        {
            var (median, _) = bench.Measure(op, ops, out double allocated);
            var f = new BenchFigure(name, median, null, null, null, null, allocated);
            figures.Add(f);
            progress?.Invoke(f);
        }

        foreach (var (shape, pageShift, leaf) in new[] { ("4k", 12, 3), ("64k", 16, 3), ("4k-2m-block", 12, 2) })
        {
            var w = new NestedWalkWorkload(pageShift, leaf);
            string baseName = $"translate.bare-reads.{shape}";
            Func<long> reads = () => (long)w.BareReads();
            bool main = shape == "4k";
            AddBaseline(baseName, reads, 1);
            Add($"translate.chained-reads.{shape}", () => (long)w.ChainedReads(), 1, reads, 1, baseName);
            Add($"translate.cold-walk-reads-chained.{shape}", () => (long)w.ColdWalkChainedReads(), 1, reads, 1, baseName);
            if (main) Add("translate.tlb-hit", () => (long)w.TlbHit(), 1, reads, 1, baseName, TlbHitTargetNs);
            var cold = Add($"translate.cold-walk.{shape}", () => (long)w.ColdWalk(), 1, reads, 1, baseName,
                main ? ColdWalkTargetNs : null, main ? ColdWalkTargetRatio : null);
            // A third of the cold walk, measured in the same run.
            Add($"translate.miss-upper-cached.{shape}", () => (long)w.MissUpperCached(), 1, reads, 1, baseName, main ? cold.MedianNs / 3 : null);
        }

        var ring = new SparseMemory();
        for (ulong i = 0; i < 2 * CmdqWorkload.Batch; i++) ring.WriteUInt64s(i * 8, [i]);
        long BareRing()
        {
            ulong acc = 0;
            for (ulong i = 0; i < 2 * CmdqWorkload.Batch; i++) acc ^= ring.ReadUInt64(i * 8);
            return (long)acc;
        }
        const string ringName = "commands.bare-reads";
        AddBaseline(ringName, BareRing, CmdqWorkload.Batch);
        var cmdq = new CmdqWorkload();
        Add("commands.smmu-cmdq", cmdq.ConsumeBatch, CmdqWorkload.Batch, BareRing, CmdqWorkload.Batch, ringName, CommandTargetNs);
        var vcmdq = new VcmdqWorkload();
        Add("commands.guest-vcmdq", vcmdq.ConsumeBatch, VcmdqWorkload.Batch, BareRing, CmdqWorkload.Batch, ringName);
        if (vcmdq.Errored) throw new InvalidOperationException("the guest VCMDQ refused the invalidation stream");
        var viommu = new ViommuInvalidateWorkload();
        Add("commands.viommu-invalidate", () => viommu.InvalidateBatch(), ViommuInvalidateWorkload.Batch, BareRing, CmdqWorkload.Batch, ringName);
        return figures;
    }
}
