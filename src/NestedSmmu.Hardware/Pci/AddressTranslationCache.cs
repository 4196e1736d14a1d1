using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Hardware.Pci;

/// <summary>
/// An endpoint's ATC (PCIe ATS): translations the SMMU returned to ATS translation requests,
/// per PASID, at 4 KiB granularity. ATC_INV commands (through the SMMU) remove them.
/// </summary>
public sealed class AddressTranslationCache : IAtcInvalidationTarget
{
    private const int PageShift = 12;
    private const uint NoPasid = uint.MaxValue;
    private readonly Dictionary<(uint Pasid, ulong Page), (ulong PaPage, Permissions Perms)> _entries = new();

    public int Count => _entries.Count;
    public long Invalidations { get; private set; }

    public bool TryLookup(uint? pasid, ulong address, out ulong pa, out Permissions perms)
    {
        if (_entries.TryGetValue((pasid ?? NoPasid, address >> PageShift), out var e))
        {
            pa = (e.PaPage << PageShift) | (address & ((1UL << PageShift) - 1));
            perms = e.Perms;
            return true;
        }
        pa = 0;
        perms = Permissions.None;
        return false;
    }

    public void Insert(uint? pasid, ulong address, ulong pa, Permissions perms) =>
        _entries[(pasid ?? NoPasid, address >> PageShift)] = (pa >> PageShift, perms);

    public void InvalidateAtc(uint? ssid, bool global, ulong address, ulong length)
    {
        Invalidations++;
        ulong end = length == ulong.MaxValue ? ulong.MaxValue : address + length;
        // Removing during the enumeration is allowed (Dictionary.Remove does not invalidate its
        // enumerators), so an invalidation allocates nothing: ATC_INV is a hot command.
        foreach (var key in _entries.Keys)
        {
            // An Invalidate Request without a PASID prefix (ATC_INV with SSV = 0) hits every entry in the range,
            // PASID-tagged ones included; Global extends a PASID-tagged request to every PASID.
            bool pasidMatch = global || ssid is null || key.Pasid == ssid.Value;
            ulong a = key.Page << PageShift;
            if (pasidMatch && a >= address && a < end) _entries.Remove(key);
        }
    }

    public void Clear() => _entries.Clear();
}
