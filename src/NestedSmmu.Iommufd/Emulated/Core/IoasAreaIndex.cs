namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// The mappings of one IOAS ordered by IOVA (the part of io_pagetable.c's area interval tree the
/// emulated kernel needs): the first area touching a range, in-order iteration from it, insertion
/// and removal, each O(log n + B). Areas never overlap (the IOAS refuses that with EEXIST), so the
/// last area starting at or below an address is the only one before it that can contain it; no
/// interval augmentation is needed.
/// </summary>
/// <remarks>
/// A two-level sorted array: chunks of at most <see cref="ChunkCapacity"/> areas, each sorted, the
/// chunks in order. Areas are structs stored in place (no node object per mapping), which keeps a
/// million 4 KiB mappings at about 40 bytes each. Appending past the last area (the common case of
/// a VMM mapping RAM piece by piece) fills chunks completely instead of splitting them.
/// </remarks>
internal sealed class IoasAreaIndex
{
    /// <summary>Areas per chunk: large enough that the chunk list stays short, small enough that an insertion's copy is cheap.</summary>
    private const int ChunkCapacity = 512;

    private readonly List<IoasArea[]> _chunks = [];
    private readonly List<int> _counts = [];

    /// <summary>Areas held.</summary>
    public int Count { get; private set; }

    /// <summary>A position in the index: chunk and slot.</summary>
    private readonly record struct Position(int Chunk, int Slot);

    /// <summary>The lowest-IOVA area intersecting <c>[first, last]</c>, or null.</summary>
    public IoasArea? FirstIntersecting(ulong first, ulong last) =>
        TryFirstIntersecting(first, last, out Position p) ? At(p) : null;

    /// <summary>True when some area intersects <c>[first, last]</c> (iopt_area_iter_first != NULL).</summary>
    public bool Intersects(ulong first, ulong last) => TryFirstIntersecting(first, last, out _);

    /// <summary>The areas intersecting <c>[first, last]</c>, in IOVA order. The index must not change while this is enumerated.</summary>
    public IEnumerable<IoasArea> Intersecting(ulong first, ulong last)
    {
        if (!TryFirstIntersecting(first, last, out Position p)) yield break;
        while (true)
        {
            IoasArea a = At(p);
            if (a.Iova > last) yield break;
            yield return a;
            if (!TryNext(ref p)) yield break;
        }
    }

    /// <summary>Every area in IOVA order. The index must not change while this is enumerated.</summary>
    public IEnumerable<IoasArea> InOrder()
    {
        for (int c = 0; c < _chunks.Count; c++)
        {
            IoasArea[] chunk = _chunks[c];
            for (int s = 0; s < _counts[c]; s++) yield return chunk[s];
        }
    }

    /// <summary>Inserts an area that overlaps none held (the caller checked, as iopt_check_iova does).</summary>
    public void Add(IoasArea area)
    {
        if (_chunks.Count == 0)
        {
            _chunks.Add(new IoasArea[ChunkCapacity]);
            _counts.Add(0);
        }
        int c = ChunkFor(area.Iova);
        int count = _counts[c];
        int slot = UpperBound(_chunks[c], count, area.Iova);
        if (count == ChunkCapacity)
        {
            if (slot == count && c == _chunks.Count - 1)
            {
                // Appending past the last area: start a fresh chunk and leave this one full.
                _chunks.Add(new IoasArea[ChunkCapacity]);
                _counts.Add(0);
                c++;
                slot = 0;
            }
            else
            {
                Split(c);
                if (slot > _counts[c])
                {
                    slot -= _counts[c];
                    c++;
                }
            }
            count = _counts[c];
        }
        IoasArea[] target = _chunks[c];
        Array.Copy(target, slot, target, slot + 1, count - slot);
        target[slot] = area;
        _counts[c] = count + 1;
        Count++;
    }

    /// <summary>Removes the area starting at <paramref name="iova"/>; false when none starts there.</summary>
    public bool Remove(ulong iova)
    {
        if (Count == 0) return false;
        int c = ChunkFor(iova);
        int count = _counts[c];
        IoasArea[] chunk = _chunks[c];
        int slot = UpperBound(chunk, count, iova) - 1;
        if (slot < 0 || chunk[slot].Iova != iova) return false;
        Array.Copy(chunk, slot + 1, chunk, slot, count - slot - 1);
        chunk[count - 1] = default;
        _counts[c] = count - 1;
        Count--;
        if (count == 1 && _chunks.Count > 1)
        {
            _chunks.RemoveAt(c);
            _counts.RemoveAt(c);
        }
        return true;
    }

    /// <summary>Drops every area.</summary>
    public void Clear()
    {
        _chunks.Clear();
        _counts.Clear();
        Count = 0;
    }

    private IoasArea At(Position p) => _chunks[p.Chunk][p.Slot];

    private bool TryFirstIntersecting(ulong first, ulong last, out Position p)
    {
        // The last area starting at or below `first` is the only earlier one that can reach it.
        if (TryFloor(first, out p))
        {
            if (At(p).Last >= first) return true;
            if (!TryNext(ref p)) return false;
        }
        else if (Count > 0)
        {
            p = new Position(0, 0);
        }
        else
        {
            return false;
        }
        return At(p).Iova <= last;
    }

    /// <summary>The last area whose IOVA is at or below <paramref name="iova"/>.</summary>
    private bool TryFloor(ulong iova, out Position p)
    {
        p = default;
        if (Count == 0) return false;
        int c = ChunkFor(iova);
        int slot = UpperBound(_chunks[c], _counts[c], iova) - 1;
        if (slot < 0) return false; // only possible in the first chunk: everything starts above
        p = new Position(c, slot);
        return true;
    }

    private bool TryNext(ref Position p)
    {
        if (p.Slot + 1 < _counts[p.Chunk])
        {
            p = p with { Slot = p.Slot + 1 };
            return true;
        }
        if (p.Chunk + 1 < _chunks.Count)
        {
            p = new Position(p.Chunk + 1, 0);
            return true;
        }
        return false;
    }

    /// <summary>The chunk whose range holds <paramref name="iova"/>: the last chunk starting at or below it, else the first.</summary>
    private int ChunkFor(ulong iova)
    {
        int lo = 0, hi = _chunks.Count - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >> 1;
            if (_chunks[mid][0].Iova <= iova) lo = mid;
            else hi = mid - 1;
        }
        return lo;
    }

    /// <summary>The first slot whose IOVA is above <paramref name="iova"/> (count when none).</summary>
    private static int UpperBound(IoasArea[] chunk, int count, ulong iova)
    {
        int lo = 0, hi = count;
        while (lo < hi)
        {
            int mid = (lo + hi) >> 1;
            if (chunk[mid].Iova <= iova) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    private void Split(int c)
    {
        IoasArea[] full = _chunks[c];
        var upper = new IoasArea[ChunkCapacity];
        const int Half = ChunkCapacity / 2;
        Array.Copy(full, Half, upper, 0, ChunkCapacity - Half);
        Array.Clear(full, Half, ChunkCapacity - Half);
        _counts[c] = Half;
        _chunks.Insert(c + 1, upper);
        _counts.Insert(c + 1, ChunkCapacity - Half);
    }
}
