using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace NestedSmmu.Vmm.Config;

/// <summary>
/// QEMU's <c>OnOffAuto</c> (qapi/common.json): a property that takes only the words
/// <c>on</c>, <c>off</c> and <c>auto</c> (not yes/no/true/false, which plain bools accept).
/// </summary>
[JsonConverter(typeof(JsonStringEnumConverter<OnOffAuto>))]
public enum OnOffAuto
{
    /// <summary><c>auto</c>: decided by the host (accel=on) or the model's default.</summary>
    [JsonStringEnumMemberName("auto")] Auto,
    /// <summary><c>on</c>.</summary>
    [JsonStringEnumMemberName("on")] On,
    /// <summary><c>off</c>.</summary>
    [JsonStringEnumMemberName("off")] Off,
}

/// <summary>arm-smmuv3's <c>stage</c> string property (hw/arm/smmuv3.c): "1", "2" or "nested".</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SmmuStage>))]
public enum SmmuStage
{
    /// <summary><c>1</c> (the default): stage 1 only.</summary>
    [JsonStringEnumMemberName("1")] Stage1,
    /// <summary><c>2</c>: stage 2 only.</summary>
    [JsonStringEnumMemberName("2")] Stage2,
    /// <summary><c>nested</c>: both stages.</summary>
    [JsonStringEnumMemberName("nested")] Nested,
}

/// <summary>
/// A QAPI enum property whose words are <c>auto</c> or a number of bits: arm-smmuv3's
/// <c>oas</c> (OasMode: auto, 32, 36, 40, 42, 44, 48, 52, 56) and <c>ssidsize</c>
/// (SsidSizeMode: auto, 0..20). Enum-typed, so QEMU accepts only those words: <c>0x10</c> or
/// <c>016</c> are refused even where the number would fit.
/// </summary>
/// <param name="Bits">The number of bits, or null for <c>auto</c>.</param>
[JsonConverter(typeof(AutoBitsJsonConverter))]
public readonly record struct AutoBits(int? Bits)
{
    /// <summary><c>auto</c>.</summary>
    public static AutoBits Auto => default;

    /// <summary>True for <c>auto</c>.</summary>
    public bool IsAuto => Bits is null;

    /// <summary>A fixed number of bits.</summary>
    public static AutoBits Of(int bits) => new(bits);

    /// <summary>The QEMU word: <c>auto</c> or the decimal number.</summary>
    public override string ToString() => Bits is { } b ? b.ToString(CultureInfo.InvariantCulture) : "auto";
}

/// <summary>JSON for <see cref="AutoBits"/>: the string <c>"auto"</c> or a number.</summary>
public sealed class AutoBitsJsonConverter : JsonConverter<AutoBits>
{
    /// <inheritdoc/>
    public override AutoBits Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number) return AutoBits.Of(reader.GetInt32());
        if (reader.TokenType == JsonTokenType.String && reader.GetString() == "auto") return AutoBits.Auto;
        throw new JsonException("expected \"auto\" or a number of bits");
    }

    /// <inheritdoc/>
    public override void Write(Utf8JsonWriter writer, AutoBits value, JsonSerializerOptions options)
    {
        if (value.Bits is { } b) writer.WriteNumberValue(b);
        else writer.WriteStringValue("auto");
    }
}

/// <summary>
/// A PCI device and function number, as qdev's <c>addr</c> property takes it
/// (<c>slot[.function]</c> in hex, hw/core/qdev-properties-system.c set_pci_devfn).
/// </summary>
/// <param name="Value">devfn: slot [7:3], function [2:0].</param>
[JsonConverter(typeof(PciDevfnJsonConverter))]
public readonly record struct PciDevfn(byte Value)
{
    /// <summary>Slots on one bus.</summary>
    public const int SlotsPerBus = 32;
    /// <summary>Functions in one slot.</summary>
    public const int FunctionsPerSlot = 8;

    /// <summary>The slot (device number).</summary>
    public int Slot => Value / FunctionsPerSlot;
    /// <summary>The function number.</summary>
    public int Function => Value % FunctionsPerSlot;

    /// <summary>Slot and function to devfn.</summary>
    public static PciDevfn Of(int slot, int function) => new((byte)(slot * FunctionsPerSlot + function));

    /// <summary>Parses <c>slot[.function]</c> in hex as QEMU does; false when it is not one.</summary>
    public static bool TryParse(string text, out PciDevfn devfn)
    {
        devfn = default;
        string[] parts = text.Split('.');
        if (parts.Length > 2) return false;
        if (!TryHex(parts[0], SlotsPerBus - 1, out int slot)) return false;
        int fn = 0;
        if (parts.Length == 2 && !TryHex(parts[1], FunctionsPerSlot - 1, out fn)) return false;
        devfn = Of(slot, fn);
        return true;
    }

    // strtoul(..., 16) as QEMU uses it: an optional 0x prefix, then hex digits.
    private static bool TryHex(string s, int max, out int value)
    {
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) s = s[2..];
        return int.TryParse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value) && s.Length > 0 && value <= max;
    }

    /// <summary><c>ss.f</c> in hex, as QEMU prints it.</summary>
    public override string ToString() => $"{Slot:x2}.{Function:x}";
}

/// <summary>JSON for <see cref="PciDevfn"/>: the string <c>"ss.f"</c>.</summary>
public sealed class PciDevfnJsonConverter : JsonConverter<PciDevfn>
{
    /// <inheritdoc/>
    public override PciDevfn Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        PciDevfn.TryParse(reader.GetString() ?? "", out PciDevfn d) ? d : throw new JsonException("expected a PCI address 'slot.function' in hex");

    /// <inheritdoc/>
    public override void Write(Utf8JsonWriter writer, PciDevfn value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
}

/// <summary>One <c>key=value</c> of an option as written (value with <c>,,</c> already unescaped).</summary>
/// <param name="Key">The property name.</param>
/// <param name="Value">The value text; null for a bare key (QemuOpts reads <c>key</c> as <c>key=on</c>).</param>
public sealed record OptionProperty(string Key, string? Value);
