using System.Text.Json;
using System.Text.Json.Serialization;

namespace NestedSmmu.Vmm.Config;

/// <summary>
/// The JSON form of a <see cref="MachineSpec"/>: the same records serialized (camelCase, enums
/// as QEMU's words, <c>"kind"</c> naming each object and device record). Every option keeps its
/// <c>text</c> as written, so command line → spec → JSON → spec → command line is lossless;
/// reading re-derives the typed values from the texts and refuses JSON whose typed values
/// disagree with them.
/// </summary>
public static class MachineSpecJson
{
    /// <summary>The serializer options used for both directions.</summary>
    public static JsonSerializerOptions Options { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        // Option texts keep quotes and '<' as written (no \u0027 escapes): the JSON is read by people too.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        AllowTrailingCommas = false,
        ReadCommentHandling = JsonCommentHandling.Skip,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    /// <summary>The spec as indented JSON.</summary>
    public static string Write(MachineSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return JsonSerializer.Serialize(spec, Options);
    }

    /// <summary>The "Path: $..." part of a System.Text.Json message, or "$" when it has none.</summary>
    private static string PathOf(string message)
    {
        const string Marker = "Path: ";
        int at = message.IndexOf(Marker, StringComparison.Ordinal);
        if (at < 0) return "$";
        int start = at + Marker.Length;
        int end = message.IndexOf(' ', start);
        return end < 0 ? message[start..] : message[start..end];
    }

    /// <summary>Reads a spec from JSON and checks it against its option texts.</summary>
    /// <exception cref="QemuConfigException">Malformed JSON, or a typed value that disagrees with its option's text (or the text QEMU would refuse).</exception>
    public static MachineSpec Read(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        MachineSpec? spec;
        try
        {
            spec = JsonSerializer.Deserialize<MachineSpec>(json, Options);
        }
        catch (JsonException e)
        {
            // One error with the JSON path of the bad member first, as the other JSON readers give it;
            // System.Text.Json's own " Path: ... | LineNumber: ..." tail is dropped (the path leads instead).
            string what = e.Message;
            int tail = what.IndexOf(" Path: ", StringComparison.Ordinal);
            if (tail >= 0) what = what[..tail];
            throw new QemuConfigException(null, $"machine JSON: {e.Path ?? PathOf(e.Message)}: {what}");
        }
        catch (NotSupportedException e)
        {
            // System.Text.Json reports a polymorphic record without its "kind" (or with it out of
            // place) as NotSupportedException; the message carries the JSON path of the record.
            throw new QemuConfigException(null, $"machine JSON: {PathOf(e.Message)}: the record needs \"kind\" as its first member, naming a known kind");
        }
        if (spec is null) throw new QemuConfigException(null, "machine JSON: null");

        MachineSpec reparsed = QemuCommandLine.Parse(QemuCommandLine.Format(spec));
        if (reparsed.Machine.Position < 0 && spec.Machine.Position < 0)
            reparsed = reparsed with { Machine = spec.Machine };
        var written = spec.AllOptions().ToList();
        var derived = reparsed.AllOptions().ToList();
        for (int i = 0; i < Math.Max(written.Count, derived.Count); i++)
        {
            OptionRecord? w = i < written.Count ? written[i] : null;
            OptionRecord? d = i < derived.Count ? derived[i] : null;
            string wj = w is null ? "" : JsonSerializer.Serialize(w, w.GetType(), Options);
            string dj = d is null ? "" : JsonSerializer.Serialize(d with { Position = w?.Position ?? d.Position }, d.GetType(), Options);
            if (wj != dj)
                throw new QemuConfigException((w ?? d)!.Quote(),
                    "machine JSON: the record's typed values disagree with its option text (edit the text, or drop the typed values that differ)");
        }
        return spec;
    }
}
