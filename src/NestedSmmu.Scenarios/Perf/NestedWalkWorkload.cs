using NestedSmmu.Guest.PageTables;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Scenarios.Perf;

/// <summary>
/// One nested stream on the SMMUv3 model, built with the guest's page-table writer, for timing the
/// translation paths: a 48-bit stage 1 whose tables live at IPAs, over a 48-bit stage 2 that maps
/// them (4K: 4 + 4 levels; 64K: 3 + 3), with the data mapped by pages or by blocks. Shared by the
/// BenchmarkDotNet suite and `nestedsmmu bench` so both time the same work.
/// </summary>
public sealed class NestedWalkWorkload
{
    private const uint Sid = 1;
    private const ushort Vmid = 1, Asid = 1;
    private const int AddressBits = 48;
    private const ulong StreamTable = 0x0100_0000;
    private const ulong Stage2Tables = 0x1000_0000;
    // Stage-1 tables and the CD live at IPAs from 2 GiB; stage 2 maps each to PA = IPA - 1 GiB.
    private const ulong Stage1TablesIpa = 0x8000_0000, IpaToPa = 0x4000_0000;
    private const ulong CdIpa = 0x7FFF_0000;
    private const ulong Stage1TablePages = 16;
    /// <summary>The first data IOVA; the next granule page is <see cref="NeighbourIova"/>.</summary>
    public const ulong Iova = 0x12_3456_0000;
    private const ulong DataIpa = 0x1_0000_0000, DataPa = 0x2_0000_0000;

    private readonly SmmuV3 _smmu;
    private readonly SparseMemory _memory;
    private readonly ulong[] _walkReads;
    // The descriptors an untraced cold walk reads, in its order (its stage-2 path saves some of _walkReads).
    private readonly ulong[] _coldWalkReads;
    // Zero, in a field the JIT cannot fold: ChainedReads makes each address depend on the read before.
    private readonly ulong _chainMask = 0;

    /// <param name="pageShift">12 (4 KiB) or 16 (64 KiB) for both stages.</param>
    /// <param name="leafLevel">3 for pages, 2 for blocks (2 MiB with 4K, 512 MiB with 64K), at both stages.</param>
    public NestedWalkWorkload(int pageShift = 12, int leafLevel = 3)
    {
        _memory = new SparseMemory();
        _smmu = new SmmuV3(_memory, new SmmuFeatures { OasBits = AddressBits });
        var s2Space = new MemoryTableSpace(_memory, Stage2Tables);
        // VTCR.SL0 with a 48-bit IPA: level 0 for 4K (SL0 = 2), level 1 for 64K (SL0 = 2).
        int s2Start = pageShift == 12 ? 0 : 1;
        var s2 = TranslationTables.ForStage2(s2Space, pageShift, AddressBits, s2Start);
        // Stage-1 table space addressed by IPA: word at IPA x is at PA x - IpaToPa.
        var s1Space = new MemoryTableSpace(_memory, Stage1TablesIpa, IpaToPa);
        var s1 = TranslationTables.ForStage1(s1Space, pageShift, AddressBits);
        ulong granule = 1UL << pageShift;
        ulong leafBytes = 1UL << s1.Shift(leafLevel);
        // Two leaves: the first page/block and the next one (a TLB miss whose upper levels are cached).
        for (ulong k = 0; k < 2; k++)
        {
            ulong step = leafLevel == 3 ? granule : leafBytes;
            s1.Map(Iova + k * step, DataIpa + k * step, leafLevel);
            s2.Map(DataIpa + k * step, DataPa + k * step, leafLevel);
        }
        NeighbourIova = Iova + (leafLevel == 3 ? granule : leafBytes);
        // The CD at an IPA too.
        var cd = ContextDescriptor.Create(s1.Root, Asid, t0sz: 64 - AddressBits, tg0: pageShift == 12 ? 0u : 1u, ips: AddressSize.Encode(AddressBits));
        _memory.WriteUInt64s(CdIpa - IpaToPa, [cd.W0, cd.W1, cd.W2, cd.W3, cd.W4, cd.W5, cd.W6, cd.W7]);
        // Stage 2 maps the CD's page and the first pages of the stage-1 table space (the few tables above).
        s2.Map(CdIpa, CdIpa - IpaToPa);
        for (ulong ipa = Stage1TablesIpa; ipa < Stage1TablesIpa + Stage1TablePages * granule; ipa += granule) s2.Map(ipa, ipa - IpaToPa);
        var ste = StreamTableEntry.Create(SteConfig.Nested, s1ContextPtr: CdIpa, s2Vmid: Vmid, s2T0sz: 64 - AddressBits,
            s2Sl0: 2, s2Tg: pageShift == 12 ? 0u : 1u, s2Ps: AddressSize.Encode(AddressBits), s2Ttb: s2.Root);
        Span<ulong> words = stackalloc ulong[StreamTableEntry.Words];
        ste.CopyTo(words);
        _memory.WriteUInt64s(StreamTable + Sid * StreamTableEntry.Size, words);
        Enable(_smmu);

        // The baseline's addresses: every descriptor an uncached walk reads (a traced walk reads them
        // all), from the stage-1 walk's start on. A traced translation also fetches the configuration,
        // and the CD's IPA takes a stage-2 walk of its own: the cold walk, its configuration cached,
        // does not make those reads, so they are not the baseline's.
        var trace = new TranslationTrace();
        var r = _smmu.Translate(Sid, null, Iova, AccessKind.Read, trace);
        if (!r.IsSuccess || r.PhysicalAddress != (DataPa | (Iova & (leafBytes - 1)))) throw new InvalidOperationException($"workload setup: {r}");
        var reads = new List<ulong>();
        bool walking = false;
        foreach (var step in trace.Steps)
        {
            walking |= step.Kind == "s1";
            if (walking && step.Kind == "descriptor") reads.Add(step.Address);
        }
        _walkReads = [.. reads];
        if (_smmu.Translate(Sid, null, NeighbourIova, AccessKind.Read).PhysicalAddress != (DataPa | (Iova & (leafBytes - 1))) + (NeighbourIova - Iova))
            throw new InvalidOperationException("workload setup: the neighbouring leaf does not translate");

        // The reads the cold walk itself makes, in order: an untraced walk shares its stage-2 path
        // between fetches, so it reads fewer descriptors than the traced walk shows. Recorded on a
        // twin SMMU over the same memory (the timed one reads it directly).
        var recorder = new RecordingMemory(_memory);
        var twin = new SmmuV3(recorder, new SmmuFeatures { OasBits = AddressBits });
        Enable(twin);
        twin.Translate(Sid, null, Iova, AccessKind.Read); // the configuration, fetched once and cached
        twin.Tlb.Clear();
        twin.WalkCache.Clear();
        recorder.Reads.Clear();
        if (twin.Translate(Sid, null, Iova, AccessKind.Read).PhysicalAddress != r.PhysicalAddress)
            throw new InvalidOperationException("workload setup: the recorded walk translates otherwise");
        _coldWalkReads = [.. recorder.Reads];
    }

    private static void Enable(SmmuV3 smmu)
    {
        smmu.WriteRegister(SmmuRegister.STRTAB_BASE, StreamTable);
        smmu.WriteRegister(SmmuRegister.STRTAB_BASE_CFG, 8);
        smmu.WriteRegister(SmmuRegister.CR0, SmmuV3.CR0_SMMUEN);
    }

    /// <summary>A memory that notes the address of every 64-bit read (descriptor fetches) and passes all through.</summary>
    private sealed class RecordingMemory(IPhysicalMemory inner) : IPhysicalMemory
    {
        public List<ulong> Reads { get; } = [];
        public void Read(ulong address, Span<byte> destination) => inner.Read(address, destination);
        public void Write(ulong address, ReadOnlySpan<byte> source) => inner.Write(address, source);
        public bool IsAbort(ulong address, ulong length) => inner.IsAbort(address, length);
        public bool MayAbort => inner.MayAbort;
        public ulong ReadUInt64(ulong address)
        {
            Reads.Add(address);
            return inner.ReadUInt64(address);
        }
    }

    public SmmuV3 Smmu => _smmu;
    /// <summary>The IOVA of the next leaf after <see cref="Iova"/>: same tables down to the last level.</summary>
    public ulong NeighbourIova { get; }
    /// <summary>How many descriptors an uncached walk reads (24 for 4K 4+4 levels with pages).</summary>
    public int DescriptorReads => _walkReads.Length;

    /// <summary>The baseline: the walk's descriptor reads from memory, no logic.</summary>
    public ulong BareReads()
    {
        ulong acc = 0;
        foreach (ulong a in _walkReads) acc ^= _memory.ReadUInt64(a);
        return acc;
    }

    /// <summary>
    /// The same reads as a chain: each address waits for the value read before it, as a walk's
    /// next table waits for its descriptor. <see cref="BareReads"/> lets the CPU overlap the reads
    /// (every address is known up front); this is the latency a walk of as many reads cannot beat.
    /// Reported beside the baseline, not instead of it.
    /// </summary>
    public ulong ChainedReads() => Chained(_walkReads);

    private ulong Chained(ulong[] addresses)
    {
        ulong acc = 0;
        foreach (ulong a in addresses) acc = _memory.ReadUInt64(a + (acc & _chainMask));
        return acc;
    }

    /// <summary>How many descriptors the cold walk itself reads (14 for 4K 4+4 levels with pages).</summary>
    public int ColdWalkReads => _coldWalkReads.Length;
    /// <summary>The baseline's descriptor addresses, in the traced walk's order.</summary>
    public ReadOnlySpan<ulong> BaselineAddresses => _walkReads;
    /// <summary>The cold walk's own descriptor addresses, in its order.</summary>
    public ReadOnlySpan<ulong> ColdWalkAddresses => _coldWalkReads;

    /// <summary>
    /// The descriptors the cold walk reads, in its order, chained as in <see cref="ChainedReads"/>: the
    /// time a walk of exactly these reads cannot beat, whatever its logic costs.
    /// </summary>
    public ulong ColdWalkChainedReads() => Chained(_coldWalkReads);

    /// <summary>A repeated access to one page: the micro-TLB answers.</summary>
    public ulong TlbHit() => _smmu.Translate(Sid, null, Iova, AccessKind.Read).PhysicalAddress;

    /// <summary>IOTLB and walk caches emptied, configuration cached: the full walk.</summary>
    public ulong ColdWalk()
    {
        _smmu.Tlb.Clear();
        _smmu.WalkCache.Clear();
        return _smmu.Translate(Sid, null, Iova, AccessKind.Read).PhysicalAddress;
    }

    /// <summary>IOTLB emptied, walk caches warm: the next leaf's walk reads only its last-level descriptors.</summary>
    public ulong MissUpperCached()
    {
        _smmu.Tlb.Clear();
        return _smmu.Translate(Sid, null, NeighbourIova, AccessKind.Read).PhysicalAddress;
    }
}
