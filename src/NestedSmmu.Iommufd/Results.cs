using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd;

/// <summary>An inclusive IOVA range <c>[Start, Last]</c> (<c>struct iommu_iova_range</c>).</summary>
public readonly record struct IovaRange(ulong Start, ulong Last)
{
    /// <summary>True when <paramref name="iova"/> lies in the range.</summary>
    public bool Contains(ulong iova) => iova >= Start && iova <= Last;

    public override string ToString() => $"[0x{Start:X}, 0x{Last:X}]";
}

/// <summary>The result of IOMMU_IOAS_IOVA_RANGES.</summary>
/// <param name="Ranges">Allowed IOVA ranges, ascending.</param>
/// <param name="Alignment">Required alignment of IOVA and length for MAP (1 = any, at most the page size).</param>
public sealed record IovaRanges(IReadOnlyList<IovaRange> Ranges, ulong Alignment);

/// <summary>
/// The result of IOMMU_HWPT_INVALIDATE. The kernel reports how many entries it handled even
/// when one fails, so a failure is a value here, not an exception: a guest command the host
/// refuses is the guest's error (the vSMMU turns it into CMDQ_CONS.ERR at that entry).
/// </summary>
/// <param name="EntriesHandled"><c>entry_num</c> out: entries fully handled, in order.</param>
/// <param name="Error"><see cref="Errno.None"/> on success, else the errno of the failing entry or argument.</param>
public readonly record struct InvalidateResult(uint EntriesHandled, Errno Error)
{
    /// <summary>True when every entry was handled.</summary>
    public bool Succeeded => Error == Errno.None;

    /// <summary>Throws an <see cref="IommufdException"/> naming IOMMU_HWPT_INVALIDATE when <see cref="Succeeded"/> is false.</summary>
    public void ThrowIfFailed(ObjectId target)
    {
        if (!Succeeded)
            throw IommufdException.ForIoctl(IommufdIoctl.HwptInvalidate, Error,
                $"hwpt_id {target}: {EntriesHandled} entries handled before the failure");
    }
}

/// <summary>The result of IOMMU_VIOMMU_ALLOC.</summary>
/// <param name="Id"><c>out_viommu_id</c>.</param>
/// <param name="Type">The type allocated.</param>
/// <param name="Data">The driver data after the call (inputs echoed, outputs filled).</param>
public sealed record ViommuAllocation(ViommuId Id, ViommuType Type, ReadOnlyMemory<byte> Data)
{
    /// <summary>Decodes the TEGRA241_CMDQV driver data: the VINTF page's mmap offset and length.</summary>
    /// <exception cref="InvalidOperationException">The vIOMMU is not of type TEGRA241_CMDQV.</exception>
    public Tegra241CmdqvViommuData AsTegra241Cmdqv()
    {
        if (Type != ViommuType.Tegra241Cmdqv)
            throw new InvalidOperationException($"vIOMMU {Id} is of type {Type}, which has no Tegra241 CMDQV data.");
        return Tegra241CmdqvViommuData.Parse(Data.Span);
    }
}
