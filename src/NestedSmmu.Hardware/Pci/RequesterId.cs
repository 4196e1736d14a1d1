using System.Globalization;

namespace NestedSmmu.Hardware.Pci;

/// <summary>A PCI requester ID: bus [15:8], device [7:3], function [2:0] (PCIe base spec 2.2.6.2).</summary>
public readonly record struct RequesterId(ushort Value)
{
    public byte Bus => (byte)(Value >> 8);
    public byte Device => (byte)((Value >> 3) & 0x1F);
    public byte Function => (byte)(Value & 0x7);

    public static RequesterId Create(int bus, int device, int function)
    {
        if (bus is < 0 or > 0xFF || device is < 0 or > 0x1F || function is < 0 or > 7)
            throw new ArgumentOutOfRangeException(nameof(bus), $"{bus:X2}:{device:X2}.{function} is not a valid bus:device.function.");
        return new RequesterId((ushort)((bus << 8) | (device << 3) | function));
    }

    /// <summary>Parses "BB:DD.F" or "SSSS:BB:DD.F" (segment ignored; it selects the root complex, not the ID).</summary>
    public static bool TryParse(string text, out RequesterId id)
    {
        id = default;
        string[] parts = text.Trim().Split(':');
        if (parts.Length is < 2 or > 3) return false;
        string busText = parts[^2];
        string[] devFn = parts[^1].Split('.');
        if (devFn.Length != 2) return false;
        if (!int.TryParse(busText, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int bus)
            || !int.TryParse(devFn[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int dev)
            || !int.TryParse(devFn[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int fn)) return false;
        if (parts.Length == 3 && !int.TryParse(parts[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out _)) return false;
        if (bus > 0xFF || dev > 0x1F || fn > 7) return false;
        id = Create(bus, dev, fn);
        return true;
    }

    public static RequesterId Parse(string text) => TryParse(text, out var id) ? id
        : throw new FormatException($"'{text}' is not a PCI address (expected BB:DD.F or SSSS:BB:DD.F in hex).");

    public override string ToString() => $"{Bus:x2}:{Device:x2}.{Function}";
}
