namespace NestedSmmu.Hardware.Memory;

/// <summary>A device register window. Offsets are relative to the window's base.</summary>
public interface IMmioDevice
{
    /// <summary>Bytes the window spans.</summary>
    ulong Size { get; }

    /// <summary>Reads <paramref name="width"/> bytes (4 or 8). Guest accesses never throw.</summary>
    ulong Read(ulong offset, int width);

    /// <summary>Writes <paramref name="width"/> bytes (4 or 8). Guest accesses never throw.</summary>
    void Write(ulong offset, int width, ulong value);
}

/// <summary>One mapped window on an <see cref="MmioBus"/>.</summary>
public readonly record struct MmioRegion(ulong Base, IMmioDevice Device, string Name)
{
    public ulong End => Base + Device.Size;
    public bool Contains(ulong address) => address >= Base && address < End;
}

/// <summary>
/// Routes register accesses to devices by address range. Overlapping windows are a
/// configuration error; an access that hits no device reads as zero and is ignored
/// on write (the bus reports whether it was claimed).
/// </summary>
public sealed class MmioBus
{
    private readonly List<MmioRegion> _regions = new();

    public IReadOnlyList<MmioRegion> Regions => _regions;

    public void Map(ulong baseAddress, IMmioDevice device, string name)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.Size == 0) throw new ArgumentException($"MMIO region '{name}' has zero size.", nameof(device));
        if (baseAddress + device.Size < baseAddress)
            throw new ArgumentOutOfRangeException(nameof(baseAddress), $"MMIO region '{name}' at 0x{baseAddress:X} wraps the address space.");
        var region = new MmioRegion(baseAddress, device, name);
        foreach (var r in _regions)
        {
            if (region.Base < r.End && r.Base < region.End)
                throw new InvalidOperationException(
                    $"MMIO region '{name}' [0x{region.Base:X}, 0x{region.End:X}) overlaps '{r.Name}' [0x{r.Base:X}, 0x{r.End:X}).");
        }
        int i = _regions.FindIndex(r => r.Base > baseAddress);
        _regions.Insert(i < 0 ? _regions.Count : i, region);
    }

    public bool Unmap(IMmioDevice device) => _regions.RemoveAll(r => ReferenceEquals(r.Device, device)) > 0;

    public bool TryFind(ulong address, out MmioRegion region)
    {
        foreach (var r in _regions)
        {
            if (r.Contains(address)) { region = r; return true; }
        }
        region = default;
        return false;
    }

    /// <summary>Reads a register; <c>false</c> when no device claims the address (the value is then 0).</summary>
    public bool TryRead(ulong address, int width, out ulong value)
    {
        CheckWidth(width);
        if (TryFind(address, out var r)) { value = r.Device.Read(address - r.Base, width); return true; }
        value = 0;
        return false;
    }

    public bool TryWrite(ulong address, int width, ulong value)
    {
        CheckWidth(width);
        if (!TryFind(address, out var r)) return false;
        r.Device.Write(address - r.Base, width, value);
        return true;
    }

    public ulong Read(ulong address, int width) { TryRead(address, width, out ulong v); return v; }

    public void Write(ulong address, int width, ulong value) => TryWrite(address, width, value);

    private static void CheckWidth(int width)
    {
        if (width is not (1 or 2 or 4 or 8))
            throw new ArgumentOutOfRangeException(nameof(width), $"MMIO access width {width} is not 1, 2, 4 or 8 bytes.");
    }
}
