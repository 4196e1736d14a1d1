using System.Numerics;
using System.Runtime.InteropServices;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Emulated;

// IO address spaces (ioas.c, io_pagetable.c): mappings of pinned host memory, mirrored into
// every paging domain of the IOAS, and the kernel-internal pins HW queues take.
public sealed partial class EmulatedIommufd
{
    /// <summary>The kernel's page size: IOVA alignment of every mapping, mmap granule, pin granule.</summary>
    public const ulong PageSize = HostMemoryAllocator.PageSize;
    private const ulong PageMask = PageSize - 1;
    private const IoasMapFlags KnownMapFlags = IoasMapFlags.FixedIova | IoasMapFlags.Writeable | IoasMapFlags.Readable;

    private int IoasAllocIoctl(ref IommuIoasAlloc cmd, ref bool respond)
    {
        if (cmd.Flags != 0) return Fail(Errno.EOPNOTSUPP);
        var ioas = new IoasObject(this);
        cmd.OutIoasId = AllocId(ioas);
        respond = true;
        return 0;
    }

    /// <summary>
    /// IOMMU_IOAS_MAP (iommufd_ioas_map, iopt_map_user_pages): argument checks, then the user
    /// range is resolved to host memory (EFAULT when it is not a region of this host), checked
    /// against the IOAS (alignment EINVAL, the domains' aperture EADDRINUSE, overlap EEXIST),
    /// pinned and written into every paging domain.
    /// </summary>
    private int IoasMapIoctl(ref IommuIoasMap cmd, ref bool respond)
    {
        var flags = (IoasMapFlags)cmd.Flags;
        if ((flags & ~KnownMapFlags) != 0 || cmd.Reserved != 0) return Fail(Errno.EOPNOTSUPP);
        if (cmd.Iova >= ulong.MaxValue || cmd.Length >= ulong.MaxValue) return Fail(Errno.EOVERFLOW);
        if ((flags & (IoasMapFlags.Writeable | IoasMapFlags.Readable)) == 0) return Fail(Errno.EINVAL);
        IoasObject? ioas = Get<IoasObject>(cmd.IoasId, ObjectType.Ioas, out Errno e);
        if (ioas is null) return Fail(e);
        if (cmd.Length == 0) return Fail(Errno.EINVAL);
        if (cmd.UserVa > ulong.MaxValue - cmd.Length) return Fail(Errno.EOVERFLOW);
        bool fixedIova = (flags & IoasMapFlags.FixedIova) != 0;
        if (fixedIova && cmd.Iova > ulong.MaxValue - (cmd.Length - 1)) return Fail(Errno.EOVERFLOW);
        // The emulated host pins whole pages: the user address and length are page aligned. The
        // IOVA follows the IOAS's alignment, which is 1 while no domain uses it (CheckIova).
        if (((cmd.UserVa | cmd.Length) & PageMask) != 0) return Fail(Errno.EINVAL);
        if (!_host.UserMemory.TryResolveRegion(cmd.UserVa, cmd.Length, out EmulatedHostMemoryRegion? region, out ulong regionOffset))
            return Fail(Errno.EFAULT);

        ulong iova;
        if (fixedIova)
        {
            iova = cmd.Iova;
            e = CheckIova(ioas, iova, cmd.Length);
            if (e != Errno.None) return Fail(e);
        }
        else if (AllocIova(ioas, cmd.Length, cmd.UserVa) is { } allocated)
        {
            iova = allocated;
        }
        else
        {
            return Fail(Errno.ENOSPC);
        }

        var area = new IoasArea(iova, cmd.Length, region!, regionOffset,
            (flags & IoasMapFlags.Readable) != 0, (flags & IoasMapFlags.Writeable) != 0);
        for (int i = 0; i < ioas.Hwpts.Count; i++)
        {
            e = ioas.Hwpts[i].Domain.Map(area.Iova, area.HostPhysicalAddress, area.Length, area.Read, area.Write);
            if (e == Errno.None) continue;
            // Roll back the domains already written, as iopt_fill_domains_pages does.
            for (int j = 0; j <= i; j++) ioas.Hwpts[j].Domain.Unmap(area.Iova, area.Length);
            return Fail(e);
        }
        region!.Pin();
        ioas.Areas.Add(area);
        cmd.Iova = iova;
        respond = true;
        return 0;
    }

    /// <summary>
    /// iopt_check_iova: alignment (EINVAL), reserved ranges, including what lies beyond the
    /// domains' aperture (EINVAL), then existing mappings (EEXIST).
    /// </summary>
    private static Errno CheckIova(IoasObject ioas, ulong iova, ulong length)
    {
        if ((iova & (ioas.IovaAlignment - 1)) != 0) return Errno.EINVAL;
        ulong last = iova + length - 1;
        if (ioas.IsReserved(iova, last)) return Errno.EINVAL;
        return ioas.Areas.Intersects(iova, last) ? Errno.EEXIST : Errno.None;
    }

    /// <summary>
    /// iopt_alloc_iova: the lowest free IOVA aligned to the mapping's natural alignment (the
    /// length rounded up to a power of two, capped by the user address's alignment), or null.
    /// </summary>
    private static ulong? AllocIova(IoasObject ioas, ulong length, ulong userVa)
    {
        ulong alignment = BitOperations.RoundUpToPowerOf2(length);
        if (userVa != 0) alignment = Math.Min(alignment, 1UL << BitOperations.TrailingZeroCount(userVa));
        alignment = Math.Max(alignment, PageSize);
        ulong last = ioas.ApertureLast;
        ulong candidate = 0;
        // Mappings and reserved ranges are both in the way: move past the lowest one that
        // overlaps [candidate, candidate + length) until nothing does (a search per step, so
        // a million mappings are not walked one by one).
        while (candidate <= last && last - candidate >= length - 1)
        {
            ulong end = candidate + length - 1;
            bool blocked = false;
            ulong blockLast = 0;
            if (ioas.Areas.FirstIntersecting(candidate, end) is { } area)
            {
                blocked = true;
                blockLast = area.Last;
            }
            foreach (IoasReservation r in ioas.Reserved)
            {
                if (r.First > end || r.Last < candidate) continue;
                blocked = true;
                blockLast = Math.Max(blockLast, r.Last);
            }
            if (!blocked) return candidate;
            if (blockLast == ulong.MaxValue) return null;
            ulong next = (blockLast + 1 + alignment - 1) & ~(alignment - 1);
            if (next <= blockLast) return null; // wrapped
            candidate = next;
        }
        return null;
    }

    /// <summary>
    /// IOMMU_IOAS_UNMAP (iommufd_ioas_unmap, iopt_unmap_iova_range): (0, U64_MAX) unmaps
    /// everything (0 is fine when empty); otherwise the areas touching the range are removed in
    /// IOVA order, each unmapped from the domains (their TLBs flushed), until one that a pin holds
    /// (EBUSY) or that the range only partly covers (ENOENT: iommufd never splits an area) stops
    /// the walk. As in the kernel, the areas removed before the failing one stay removed; ENOENT
    /// too when nothing was mapped in the range.
    /// </summary>
    private int IoasUnmapIoctl(ref IommuIoasUnmap cmd, ref bool respond)
    {
        IoasObject? ioas = Get<IoasObject>(cmd.IoasId, ObjectType.Ioas, out Errno e);
        if (ioas is null) return Fail(e);
        ulong first, last;
        bool all = cmd.Iova == 0 && cmd.Length == ulong.MaxValue;
        if (all)
        {
            first = 0;
            last = ulong.MaxValue;
        }
        else
        {
            if (cmd.Iova >= ulong.MaxValue || cmd.Length >= ulong.MaxValue) return Fail(Errno.EOVERFLOW);
            if (cmd.Length == 0) return Fail(Errno.EINVAL);
            if (cmd.Iova > ulong.MaxValue - (cmd.Length - 1)) return Fail(Errno.EOVERFLOW);
            first = cmd.Iova;
            last = cmd.Iova + cmd.Length - 1;
        }
        ulong unmapped = 0;
        while (ioas.Areas.FirstIntersecting(first, last) is { } a)
        {
            if (IsPinned(ioas, a)) return Fail(Errno.EBUSY);
            if (a.Iova < first || a.Last > last) return Fail(Errno.ENOENT);
            foreach (HwptPagingObject h in ioas.Hwpts) h.Domain.Unmap(a.Iova, a.Length);
            ioas.Areas.Remove(a.Iova);
            a.Region.Unpin();
            unmapped += a.Length;
        }
        if (unmapped == 0 && !all) return Fail(Errno.ENOENT);
        cmd.Length = unmapped;
        respond = true;
        return 0;
    }

    /// <summary>An internal pin (a HW queue's) locks the area (iopt_area num_locks): it cannot be unmapped.</summary>
    private static bool IsPinned(IoasObject ioas, IoasArea a)
    {
        foreach (IoasPin p in ioas.Pins)
        {
            if (p.Iova <= a.Last && a.Iova <= p.Last) return true;
        }
        return false;
    }

    /// <summary>
    /// IOMMU_IOAS_IOVA_RANGES: the allowed range (narrowed to the domains' aperture) and the
    /// alignment; EMSGSIZE after answering when the user's array is too small.
    /// </summary>
    private int IoasIovaRangesIoctl(ref IommuIoasIovaRanges cmd, ref bool respond)
    {
        if (cmd.Reserved != 0) return Fail(Errno.EOPNOTSUPP);
        IoasObject? ioas = Get<IoasObject>(cmd.IoasId, ObjectType.Ioas, out Errno e);
        if (ioas is null) return Fail(e);
        IommuIovaRange[] ranges = [.. ioas.UsableRanges().Select(r => new IommuIovaRange { Start = r.Start, Last = r.Last })];
        uint capacity = cmd.NumIovas;
        for (int i = 0; i < ranges.Length && i < capacity; i++)
        {
            ulong uptr = cmd.AllowedIovas + (ulong)(i * Marshal.SizeOf<IommuIovaRange>());
            e = Copy.ToUser(uptr, MemoryMarshal.AsBytes(ranges.AsSpan(i, 1)));
            if (e != Errno.None) return Fail(e);
        }
        cmd.NumIovas = (uint)ranges.Length;
        cmd.OutIovaAlignment = ioas.IovaAlignment;
        respond = true;
        return ranges.Length > capacity ? Fail(Errno.EMSGSIZE) : 0;
    }

    // ------------------------------------------------------------------ kernel-internal pins

    /// <summary>
    /// iommufd_access_pin_pages of <c>[iova, iova + length)</c> (page aligned): ENOENT when part
    /// is not mapped. Returns the host physical runs behind it, in IOVA order (one run when the
    /// range is physically contiguous).
    /// </summary>
    internal Errno Pin(IoasObject ioas, ulong iova, ulong length, out IoasPin? pin, out List<(ulong Pa, ulong Length)> runs)
    {
        pin = null;
        runs = [];
        ulong last = iova + length - 1;
        ulong next = iova;
        foreach (IoasArea a in ioas.Areas.Intersecting(iova, last))
        {
            if (a.Iova > next) return Errno.ENOENT;
            ulong end = Math.Min(a.Last, last);
            ulong pa = a.HostPhysicalAddress + (next - a.Iova);
            ulong bytes = end - next + 1;
            if (runs.Count > 0 && runs[^1].Pa + runs[^1].Length == pa) runs[^1] = (runs[^1].Pa, runs[^1].Length + bytes);
            else runs.Add((pa, bytes));
            if (end == last) break;
            next = end + 1;
        }
        if (runs.Count == 0 || runs.Sum(r => (decimal)r.Length) != length) return Errno.ENOENT;
        pin = new IoasPin(iova, length);
        ioas.Pins.Add(pin);
        ioas.Users++;
        return Errno.None;
    }

    /// <summary>Drops a pin taken by <see cref="Pin"/> (null: nothing).</summary>
    internal void ReleasePin(IoasObject ioas, IoasPin? pin)
    {
        if (pin is null) return;
        if (ioas.Pins.Remove(pin)) ioas.Users--;
    }
}
