using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Hardware.Pci;

/// <summary>The outcome of an endpoint's DMA: the translation and, for a read, the data.</summary>
public readonly record struct DmaResult(TranslationResult Translation, bool FromAtc)
{
    public bool IsSuccess => Translation.IsSuccess;
}

/// <summary>
/// A PCIe endpoint behind an SMMU: issues DMA with its StreamID (derived from the requester ID
/// by the root complex's ID mapping) and, when ATS is enabled, caches translations in its ATC and
/// sends translated requests that bypass the SMMU's walk.
/// </summary>
public sealed class PciEndpoint
{
    private readonly SmmuV3 _smmu;
    private readonly IPhysicalMemory _memory;

    public PciEndpoint(string name, RequesterId rid, uint streamId, SmmuV3 smmu, IPhysicalMemory memory, bool atsCapable = false)
    {
        Name = name;
        RequesterId = rid;
        StreamId = streamId;
        _smmu = smmu;
        _memory = memory;
        AtsCapable = atsCapable;
        if (atsCapable) smmu.RegisterAtc(streamId, Atc);
    }

    public string Name { get; }
    public RequesterId RequesterId { get; }
    public uint StreamId { get; }
    public bool AtsCapable { get; }
    /// <summary>ATS Control.Enable, set by the (guest or host) driver.</summary>
    public bool AtsEnabled { get; set; }
    public AddressTranslationCache Atc { get; } = new();
    public long DmaCount { get; private set; }

    /// <summary>Resolves an address the way the device's next request would (ATC first when ATS is on).</summary>
    public DmaResult Resolve(ulong iova, AccessKind access, uint? pasid = null, TranslationTrace? trace = null)
    {
        DmaCount++;
        if (AtsCapable && AtsEnabled)
        {
            if (Atc.TryLookup(pasid, iova, out ulong pa, out var perms) && perms.Allows(access))
                return new DmaResult(TranslationResult.Ok(pa, perms), true);
            var t = _smmu.Translate(StreamId, pasid, iova, access, trace);
            if (t.IsSuccess) Atc.Insert(pasid, iova, t.PhysicalAddress, t.Permissions);
            return new DmaResult(t, false);
        }
        return new DmaResult(_smmu.Translate(StreamId, pasid, iova, access, trace), false);
    }

    /// <summary>DMA read of <paramref name="destination"/>.Length bytes (within one page); faults leave it untouched.</summary>
    public DmaResult Read(ulong iova, Span<byte> destination, uint? pasid = null)
    {
        var r = Resolve(iova, AccessKind.Read, pasid);
        if (r.IsSuccess) _memory.Read(r.Translation.PhysicalAddress, destination);
        return r;
    }

    /// <summary>DMA write (within one page); a fault drops the data.</summary>
    public DmaResult Write(ulong iova, ReadOnlySpan<byte> source, uint? pasid = null)
    {
        var r = Resolve(iova, AccessKind.Write, pasid);
        if (r.IsSuccess) _memory.Write(r.Translation.PhysicalAddress, source);
        return r;
    }
}
