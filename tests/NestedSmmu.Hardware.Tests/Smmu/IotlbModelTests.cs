namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>
/// The IOTLB's own table (chains over arrays, a stamp for clearing, a free list) against a plain
/// list of (key, entry) pairs kept the way the TLB is specified: one entry per 4 KiB page and
/// tag word, the ASID replaced by a marker for global entries, the whole TLB evicted when full,
/// invalidation by <see cref="TlbInvalidation.Matches"/>. Thousands of random inserts, lookups,
/// invalidations and clears over few pages, tags and a small capacity, so chains, growth, reuse
/// of removed nodes and eviction all happen.
/// </summary>
public class IotlbModelTests
{
    private sealed class Reference(int capacity)
    {
        private readonly List<(ulong Page, TlbRegime Regime, ushort Vmid, int Asid, TlbEntry Entry)> _entries = [];

        public int Count => _entries.Count;

        public void Insert(TlbEntry e, ulong input)
        {
            if (_entries.Count >= capacity) _entries.Clear();
            int asid = e.Global ? -1 : e.Asid;
            int i = _entries.FindIndex(x => x.Page == input >> 12 && x.Regime == e.Regime && x.Vmid == e.Vmid && x.Asid == asid);
            if (i >= 0) _entries[i] = _entries[i] with { Entry = e };
            else _entries.Add((input >> 12, e.Regime, e.Vmid, asid, e));
        }

        public TlbEntry? Lookup(TlbRegime regime, ushort vmid, ushort asid, ulong input)
        {
            foreach (int key in new[] { asid, -1 })
            {
                foreach (var x in _entries)
                {
                    if (x.Page == input >> 12 && x.Regime == regime && x.Vmid == vmid && x.Asid == key) return x.Entry;
                }
            }
            return null;
        }

        public int Invalidate(TlbInvalidation scope) => _entries.RemoveAll(x => scope.Matches(x.Entry));

        public void Clear() => _entries.Clear();

        public IEnumerable<TlbEntry> Entries => _entries.Select(x => x.Entry).Distinct();
    }

    [Theory]
    [InlineData(1, 40)]
    [InlineData(2, 200)]
    [InlineData(3, 1 << 16)]
    public void AgreesWithAListOfEntries(int seed, int capacity)
    {
        var rng = new Random(seed);
        var tlb = new Iotlb(capacity);
        var reference = new Reference(capacity);
        TlbRegime[] regimes = [TlbRegime.NonHyp, TlbRegime.El2, TlbRegime.Stage2];
        int invalidated = 0, hits = 0;
        for (int step = 0; step < 20_000; step++)
        {
            var regime = regimes[rng.Next(regimes.Length)];
            ushort vmid = (ushort)rng.Next(3), asid = (ushort)rng.Next(3);
            ulong page = (ulong)rng.Next(64);
            ulong input = (page << 12) + (uint)rng.Next(4096);
            int op = rng.Next(1000);
            if (op < 600)
            {
                bool global = regime == TlbRegime.Stage2 || rng.Next(4) == 0;
                int level = rng.Next(4) == 0 ? 2 : 3;
                int shift = level == 3 ? 12 : 21;
                ulong inputBase = input & ~((1UL << shift) - 1);
                var e = new TlbEntry(regime, vmid, regime == TlbRegime.Stage2 ? (ushort)0 : asid, global, inputBase, shift, level, Granule.G4K,
                    (ulong)rng.Next(1 << 20) << shift, Permissions.Read);
                tlb.Insert(e, input);
                reference.Insert(e, input);
            }
            else if (op < 900)
            {
                bool found = tlb.TryLookup(regime, vmid, asid, input, out var got);
                var expected = reference.Lookup(regime, vmid, asid, input);
                found.ShouldBe(expected is not null, $"step {step}: lookup of page {page}");
                if (found) { got.ShouldBe(expected!.Value); hits++; }
            }
            else if (op < 997)
            {
                TlbInvalidation scope = rng.Next(5) switch
                {
                    0 => TlbInvalidation.All(regime, vmid),
                    1 => TlbInvalidation.ByAsid(regime, vmid, asid),
                    2 => TlbInvalidation.ByAddress(regime, vmid, asid, input, (ulong)rng.Next(1, 64) << 12),
                    3 => TlbInvalidation.ByAddress(regime, vmid, null, input, 1, ttl: rng.Next(2, 4), granule: Granule.G4K),
                    _ => TlbInvalidation.AllStages(rng.Next(2) == 0 ? vmid : null),
                };
                int removed = tlb.Invalidate(scope);
                removed.ShouldBe(reference.Invalidate(scope), $"step {step}: {scope}");
                invalidated += removed;
            }
            else
            {
                tlb.Clear();
                reference.Clear();
            }
            tlb.Count.ShouldBe(reference.Count, $"step {step}");
        }
        tlb.Entries.ShouldBe(reference.Entries, ignoreOrder: true);
        invalidated.ShouldBeGreaterThan(100);
        hits.ShouldBeGreaterThan(100);
    }

    [Fact]
    public void ClearIsImmediateAndTheTableStillWorksAfterIt()
    {
        var tlb = new Iotlb();
        for (ulong p = 0; p < 1000; p++)
            tlb.Insert(new TlbEntry(TlbRegime.NonHyp, 1, 2, false, p << 12, 12, 3, Granule.G4K, (p + 5) << 12, Permissions.ReadWrite), p << 12);
        tlb.Count.ShouldBe(1000);
        long generation = tlb.Generation;
        tlb.Clear();
        tlb.Generation.ShouldBeGreaterThan(generation);
        tlb.Count.ShouldBe(0);
        tlb.TryLookup(TlbRegime.NonHyp, 1, 2, 7 << 12, out _).ShouldBeFalse();
        tlb.Insert(new TlbEntry(TlbRegime.NonHyp, 1, 2, false, 7 << 12, 12, 3, Granule.G4K, 9 << 12, Permissions.Read), 7 << 12);
        tlb.TryLookup(TlbRegime.NonHyp, 1, 2, (7 << 12) + 8, out var e).ShouldBeTrue();
        e.Translate((7 << 12) + 8).ShouldBe((9UL << 12) + 8);
        tlb.Entries.Count().ShouldBe(1);
    }
}
