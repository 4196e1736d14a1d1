namespace NestedSmmu.Hardware.Smmu;

/// <summary>Which translation regime an IOTLB entry belongs to; invalidation commands name one.</summary>
public enum TlbRegime : byte
{
    /// <summary>Non-secure EL1 stage 1 (alone or combined with stage 2), tagged by VMID and ASID.</summary>
    NonHyp,
    /// <summary>EL2 stage 1 (STE.STRW = EL2), tagged by ASID only.</summary>
    El2,
    /// <summary>Stage 2 alone, tagged by VMID; input is an IPA.</summary>
    Stage2,
}

/// <summary>
/// One cached translation: the mapping the walk found (its input base, size and level, so
/// invalidation by address, range and TTL is exact), the output and the permissions.
/// For nested streams the entry combines both stages: its size is the smaller of the two.
/// </summary>
public readonly record struct TlbEntry(
    TlbRegime Regime,
    ushort Vmid,
    ushort Asid,
    bool Global,
    ulong InputBase,
    int SizeShift,
    int Level,
    Granule Granule,
    ulong OutputBase,
    Permissions Permissions)
{
    public ulong Size => 1UL << SizeShift;
    public bool Covers(ulong address) => address - InputBase < Size;
    public bool Overlaps(ulong start, ulong length) => InputBase < start + length && start < InputBase + Size;
    public ulong Translate(ulong input) => OutputBase + (input - InputBase);
}

/// <summary>
/// The SMMU's TLB. Entries are indexed per 4 KiB input page (a larger mapping is filled in page
/// by page as it is used, like a splintering TLB), so a lookup is one probe for the ASID plus
/// one for global entries. Only leaf translations are cached here, so the Leaf bit of an
/// invalidation changes nothing here; table entries live in <see cref="WalkCache"/>.
/// </summary>
/// <remarks>
/// A chained hash table over two arrays (no allocation once grown): buckets hold the first node of
/// their chain, nodes the entries in insertion order with a free list of removed ones, as
/// <see cref="Dictionary{TKey, TValue}"/> keeps them (so enumeration order is the same), but with
/// the key compared inline and an O(1) <see cref="Clear"/>: a bucket is valid only while its stamp
/// is the table's. A cold walk clears the TLB and inserts once; through the dictionary those two
/// and the probe cost about 500 instructions of a nested 4K walk.
/// </remarks>
public sealed class Iotlb
{
    private const int IndexShift = 12;
    /// <summary>Global entries are stored under this ASID key so any ASID finds them.</summary>
    private const int GlobalAsidKey = -1;
    private const int InitialSize = 16;
    private const int EndOfChain = -1;

    private struct Bucket
    {
        public uint Stamp; // the chain is valid while this equals the table's stamp
        public int First;  // node index, or EndOfChain
    }

    private struct Node
    {
        public ulong Page;
        public ulong Tag;   // regime, VMID, ASID or the global marker in one word
        public int Next;    // next node of the chain, or of the free list
        public bool Free;
        public TlbEntry Entry;
    }

    private Bucket[] _buckets = new Bucket[InitialSize];
    private Node[] _nodes = new Node[InitialSize];
    private uint _stamp = 1;
    private int _used;      // nodes handed out since the last clear (free ones included)
    private int _freeList = EndOfChain, _freeCount;
    // Global (nG = 0) entries held; while there are none a miss needs no second probe.
    private int _globalSlots;

    public int Capacity { get; }
    public int Count => _used - _freeCount;
    public long Hits { get; private set; }
    public long Misses { get; private set; }
    /// <summary>Changes on every insertion and invalidation: lets per-stream shortcuts know they are stale.</summary>
    public long Generation { get; private set; }

    /// <summary>Counts a hit served by a shortcut in front of the TLB (the SMMU's stream micro-TLB).</summary>
    internal void CountHit() => Hits++;

    public Iotlb(int capacity = 1 << 16) => Capacity = capacity;

    public IEnumerable<TlbEntry> Entries
    {
        get
        {
            var list = new List<TlbEntry>(Count);
            for (int i = 0; i < _used; i++) if (!_nodes[i].Free) list.Add(_nodes[i].Entry);
            return list.Distinct();
        }
    }

    private static ulong TagOf(TlbRegime regime, ushort vmid, int asid) => ((ulong)regime << 48) | ((ulong)vmid << 32) | (uint)asid;

    private int BucketOf(ulong page, ulong tag) =>
        (int)(page ^ (page >> 29) ^ (tag * 0x9E3779B97F4A7C15 >> 32)) & (_buckets.Length - 1);

    private int Find(ulong page, ulong tag)
    {
        ref Bucket b = ref _buckets[BucketOf(page, tag)];
        if (b.Stamp != _stamp) return EndOfChain;
        var nodes = _nodes;
        for (int i = b.First; i != EndOfChain; i = nodes[i].Next)
        {
            if (nodes[i].Page == page && nodes[i].Tag == tag) return i;
        }
        return EndOfChain;
    }

    public bool TryLookup(TlbRegime regime, ushort vmid, ushort asid, ulong input, out TlbEntry entry)
    {
        ulong page = input >> IndexShift;
        // The SMMU's stream micro-TLB (SmmuV3.Translate) sits in front of this: repeated accesses
        // to one page never get here, so this needs no one-entry cache of its own.
        if (Count > 0)
        {
            int i = Find(page, TagOf(regime, vmid, asid));
            // Stage-2 entries carry no ASID: they are inserted as global and found by the second probe.
            if (i == EndOfChain && _globalSlots > 0) i = Find(page, TagOf(regime, vmid, GlobalAsidKey));
            if (i != EndOfChain)
            {
                Hits++;
                entry = _nodes[i].Entry;
                return true;
            }
        }
        Misses++;
        entry = default;
        return false;
    }

    public void Insert(in TlbEntry entry, ulong input)
    {
        Generation++;
        if (Count >= Capacity) Reset(); // whole-TLB eviction: simple and deterministic
        ulong page = input >> IndexShift;
        ulong tag = TagOf(entry.Regime, entry.Vmid, entry.Global ? GlobalAsidKey : entry.Asid);
        // An empty TLB (the first translation after an invalidation) has nothing to replace.
        int i = Count > 0 ? Find(page, tag) : EndOfChain;
        if (i != EndOfChain)
        {
            _nodes[i].Entry = entry;
            return;
        }
        if (_freeCount > 0)
        {
            i = _freeList;
            _freeList = _nodes[i].Next;
            _freeCount--;
        }
        else
        {
            if (_used == _nodes.Length) Grow();
            i = _used++;
        }
        ref Bucket b = ref _buckets[BucketOf(page, tag)];
        ref Node n = ref _nodes[i];
        n.Page = page;
        n.Tag = tag;
        n.Free = false;
        n.Entry = entry;
        n.Next = b.Stamp == _stamp ? b.First : EndOfChain;
        (b.Stamp, b.First) = (_stamp, i);
        if (entry.Global) _globalSlots++;
    }

    /// <summary>Doubles both arrays and rechains every node (indices, and so the order, stay).</summary>
    private void Grow()
    {
        Array.Resize(ref _nodes, _nodes.Length * 2);
        _buckets = new Bucket[_buckets.Length * 2];
        _stamp = 1;
        for (int i = 0; i < _used; i++)
        {
            ref Node n = ref _nodes[i];
            if (n.Free) continue;
            ref Bucket b = ref _buckets[BucketOf(n.Page, n.Tag)];
            n.Next = b.Stamp == _stamp ? b.First : EndOfChain;
            (b.Stamp, b.First) = (_stamp, i);
        }
    }

    /// <summary>Removes every entry <paramref name="scope"/> selects; returns how many page slots went.</summary>
    public int Invalidate(in TlbInvalidation scope)
    {
        if (Count == 0) return 0;
        Generation++;
        int removed = 0;
        var nodes = _nodes;
        for (int i = 0; i < _used; i++)
        {
            ref Node n = ref nodes[i];
            if (n.Free || !scope.Matches(n.Entry)) continue;
            Unlink(i);
            if (n.Entry.Global) _globalSlots--;
            n.Free = true;
            n.Entry = default;
            n.Next = _freeList;
            _freeList = i;
            _freeCount++;
            removed++;
        }
        return removed;
    }

    private void Unlink(int node)
    {
        ref Bucket b = ref _buckets[BucketOf(_nodes[node].Page, _nodes[node].Tag)];
        if (b.First == node)
        {
            b.First = _nodes[node].Next;
            return;
        }
        int prev = b.First;
        while (_nodes[prev].Next != node) prev = _nodes[prev].Next;
        _nodes[prev].Next = _nodes[node].Next;
    }

    public void Clear()
    {
        Generation++;
        Reset();
    }

    private void Reset()
    {
        // A new stamp invalidates every bucket at once; on wrap-around the stale stamps are wiped.
        if (++_stamp == 0)
        {
            Array.Clear(_buckets);
            _stamp = 1;
        }
        _used = 0;
        _freeList = EndOfChain;
        _freeCount = 0;
        _globalSlots = 0;
    }
}
