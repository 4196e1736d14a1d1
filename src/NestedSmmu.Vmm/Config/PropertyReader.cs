namespace NestedSmmu.Vmm.Config;

/// <summary>
/// Reads one option's properties by type, as QEMU's input visitors do, with QEMU's messages
/// (qapi/qobject-input-visitor.c, qapi/qapi-visit-core.c, hw/core/qdev-properties.c). A key
/// given twice takes its last value (QemuOpts/qdev apply them in order). Keys a reader has not
/// consumed are refused (<see cref="RefuseUnknown"/>) or kept (<see cref="RemainingAsExtra"/>).
/// </summary>
internal sealed class PropertyReader
{
    private readonly List<OptionProperty> _properties;
    private readonly HashSet<string> _consumed = new(StringComparer.Ordinal);

    public PropertyReader(string quote, List<OptionProperty> properties)
    {
        Quote = quote;
        _properties = properties;
    }

    /// <summary>The option as QEMU quotes it.</summary>
    public string Quote { get; }

    /// <summary>Keys in the order given (first occurrence).</summary>
    public IReadOnlyList<string> GivenKeys => [.. _properties.Select(p => p.Key).Distinct()];

    public QemuConfigException Error(string message) => new(Quote, message);

    public bool Has(string key) => _properties.Any(p => p.Key == key);

    /// <summary>The last value of <paramref name="key"/>, or null when absent.</summary>
    public string? Raw(string key)
    {
        _consumed.Add(key);
        OptionProperty? p = _properties.LastOrDefault(p => p.Key == key);
        return p is null ? null : p.Value ?? "on";
    }

    /// <summary>Every value of a key that may repeat (-numa cpus=).</summary>
    public List<string> All(string key)
    {
        _consumed.Add(key);
        return [.. _properties.Where(p => p.Key == key).Select(p => p.Value ?? "")];
    }

    public string? String(string key) => Raw(key);

    /// <summary>A bool: on/off, yes/no, true/false (qapi/qapi-util.c qapi_bool_parse).</summary>
    public bool Bool(string key, bool defaultValue)
    {
        string? v = Raw(key);
        return v switch
        {
            null => defaultValue,
            "on" or "yes" or "true" => true,
            "off" or "no" or "false" => false,
            _ => throw Error($"Parameter '{key}' expects 'on' or 'off'"),
        };
    }

    /// <summary>An OnOffAuto: only on, off, auto (an enum: qapi_enum_parse).</summary>
    public OnOffAuto OnOffAuto(string key, OnOffAuto defaultValue) => Raw(key) switch
    {
        null => defaultValue,
        "on" => Config.OnOffAuto.On,
        "off" => Config.OnOffAuto.Off,
        "auto" => Config.OnOffAuto.Auto,
        string v => throw Error($"Parameter '{key}' does not accept value '{v}'"),
    };

    /// <summary>An enum whose words are "auto" or listed numbers (OasMode, SsidSizeMode): only those exact words.</summary>
    public AutoBits AutoBits(string key, IReadOnlyCollection<int> words)
    {
        string? v = Raw(key);
        if (v is null || v == "auto") return Config.AutoBits.Auto;
        foreach (int w in words)
            if (v == w.ToString(System.Globalization.CultureInfo.InvariantCulture)) return Config.AutoBits.Of(w);
        throw Error($"Parameter '{key}' does not accept value '{v}'");
    }

    /// <summary>An unsigned integer of <paramref name="bits"/> bits (uint8_t ... uint64_t).</summary>
    public ulong? Unsigned(string key, int bits)
    {
        string? v = Raw(key);
        if (v is null) return null;
        if (!QemuOpts.TryParseUnsigned(v, out ulong value, out bool overflow))
            throw Error($"Parameter '{key}' expects integer");
        ulong max = bits == 64 ? ulong.MaxValue : (1UL << bits) - 1;
        if (overflow || value > max) throw Error($"Parameter '{key}' expects uint{bits}_t");
        return value;
    }

    /// <summary>A signed 32-bit integer (int32_t).</summary>
    public int? Int32(string key)
    {
        string? v = Raw(key);
        if (v is null) return null;
        bool negative = v.StartsWith('-');
        if (!QemuOpts.TryParseUnsigned(negative ? v[1..] : v, out ulong magnitude, out bool overflow))
            throw Error($"Parameter '{key}' expects integer");
        long value = negative ? -(long)Math.Min(magnitude, (ulong)long.MaxValue) : (long)Math.Min(magnitude, (ulong)long.MaxValue);
        if (overflow || value is < int.MinValue or > int.MaxValue) throw Error($"Parameter '{key}' expects int32_t");
        return (int)value;
    }

    /// <summary>A size with an optional suffix (qemu_strtosz).</summary>
    public ulong? Size(string key, ulong bareUnit = 1)
    {
        string? v = Raw(key);
        if (v is null) return null;
        if (!QemuOpts.TryParseSize(v, bareUnit, out ulong bytes))
            throw Error($"Parameter '{key}' expects a non-negative number below 2^64\n" +
                "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.");
        return bytes;
    }

    /// <summary>A PCI devfn for <c>addr</c>.</summary>
    public PciDevfn? Devfn(string driver)
    {
        string? v = Raw("addr");
        if (v is null) return null;
        return PciDevfn.TryParse(v, out PciDevfn d) ? d : throw Error($"Property '{driver}.addr' doesn't take value '{v}'");
    }

    /// <summary>Refuses the first key no reader consumed and that <paramref name="known"/> does not list (qdev: "Property 'T.K' not found").</summary>
    public IReadOnlyList<OptionProperty> RefuseUnknown(string typeName, IReadOnlySet<string> known)
    {
        var extra = new List<OptionProperty>();
        foreach (OptionProperty p in _properties.Where(p => !_consumed.Contains(p.Key)))
        {
            if (!known.Contains(p.Key)) throw Error($"Property '{typeName}.{p.Key}' not found");
            extra.Add(p);
        }
        return extra;
    }

    /// <summary>Keys no reader consumed, kept as written.</summary>
    public IReadOnlyList<OptionProperty> RemainingAsExtra() => [.. _properties.Where(p => !_consumed.Contains(p.Key))];
}
