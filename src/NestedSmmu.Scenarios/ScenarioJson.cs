using System.Text.Encodings.Web;
using System.Text.Json;
using static NestedSmmu.Hardware.JsonPaths;

namespace NestedSmmu.Scenarios;

/// <summary>
/// Reading and writing helpers shared by the scenario and result formats: strict objects
/// (unknown, duplicate and missing members are errors naming their JSON path), the number
/// rules, and the writer style of the reference vectors.
/// </summary>
internal static class ScenarioJson
{
    /// <summary>
    /// The reference vectors' layout: one-space indent, "\n" line ends, no newline after the
    /// closing brace, and no escaping of ASCII punctuation such as <c>'</c>.
    /// </summary>
    public static readonly JsonWriterOptions WriterOptions = new()
    {
        Indented = true,
        IndentCharacter = ' ',
        IndentSize = 1,
        NewLine = "\n",
        // Only HTML embedding makes the relaxed encoder unsafe; these documents are never HTML.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static readonly JsonDocumentOptions DocumentOptions = new()
    {
        AllowTrailingCommas = false,
        CommentHandling = JsonCommentHandling.Disallow,
    };

    /// <summary>Parses a document, turning a syntax error into a <see cref="ScenarioFormatException"/>.</summary>
    public static JsonDocument ParseDocument(Func<JsonDocument> parse)
    {
        try
        {
            return parse();
        }
        catch (JsonException e)
        {
            string where = e.LineNumber is long line ? $" (line {line + 1}, byte {e.BytePositionInLine + 1})" : "";
            throw new ScenarioFormatException(e.Path ?? "$", $"not valid JSON{where}: {FirstSentence(e.Message)}", innerException: e);
        }
    }

    /// <summary>Runs <paramref name="read"/> on a file's text, naming the file in any format error.</summary>
    public static T ReadFile<T>(string path, Func<Stream, T> read)
    {
        using var stream = File.OpenRead(path);
        try
        {
            return read(stream);
        }
        catch (ScenarioFormatException e) when (e.FileName is null)
        {
            throw e.WithFileName(path);
        }
    }

    public static ScenarioFormatException Error(string path, string detail) => new(path, detail);

    /// <summary>Runs a UTF-8 JSON writer into memory and returns the text.</summary>
    public static string WriteToString(Action<Stream> write)
    {
        using var stream = new MemoryStream();
        write(stream);
        return System.Text.Encoding.UTF8.GetString(stream.GetBuffer(), 0, (int)stream.Length);
    }

    /// <summary>A value as an error message quotes it: strings in single quotes, the rest as JSON text.</summary>
    public static string Quote(JsonElement e) => e.ValueKind == JsonValueKind.String ? $"'{e.GetString()}'" : Shorten(e.GetRawText());

    public static void ExpectKind(JsonElement e, string path, JsonValueKind kind)
    {
        if (e.ValueKind != kind) throw Error(path, $"expected {Describe(kind)}, found {Describe(e.ValueKind)}");
    }

    public static string ReadString(JsonElement e, string path)
    {
        ExpectKind(e, path, JsonValueKind.String);
        return e.GetString()!;
    }

    /// <summary>
    /// An unsigned number: a string in hex (<c>0x...</c>) or decimal, or a JSON number that is an
    /// integer below 2^53 (larger ones lose precision in most JSON tools, so they must be strings).
    /// </summary>
    public static ulong ReadNumber(JsonElement e, string path)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.String:
                return JsonNumber.TryParse(e.GetString(), out ulong value, out string? error) ? value : throw Error(path, error!);
            case JsonValueKind.Number:
                string raw = e.GetRawText();
                if (raw.StartsWith('-')) throw Error(path, $"{Shorten(raw)} is negative");
                if (raw.AsSpan().IndexOfAny('.', 'e', 'E') >= 0)
                    throw Error(path, $"{Shorten(raw)} is not an integer (write integers without a fraction or exponent)");
                if (!e.TryGetUInt64(out ulong n) || n >= JsonNumber.JsonNumberLimit)
                    throw Error(path, $"{Shorten(raw)} is not below 2^53; write larger numbers as hex strings (\"0x...\")");
                return n;
            default:
                throw Error(path, $"expected a number (a JSON number, or a hex or decimal string), found {Describe(e.ValueKind)}");
        }
    }

    /// <summary>A number that must fit in <paramref name="bits"/> bits.</summary>
    public static ulong ReadNumber(JsonElement e, string path, int bits)
    {
        ulong value = ReadNumber(e, path);
        return JsonNumber.FitsIn(value, bits) ? value : throw Error(path, $"{Quote(e)} does not fit in {bits} bits");
    }

    public static void WriteHex(Utf8JsonWriter w, string name, ulong value) => w.WriteString(name, JsonNumber.ToHex(value));

    private static string FirstSentence(string message)
    {
        // JsonException messages end with " Path: $ | LineNumber: 0 | BytePositionInLine: 5." — said above already.
        int cut = message.IndexOf(" Path: ", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..37] + "...";

    /// <summary>Letters, digits and underscore: what a plain path member or a register name is made of.</summary>
    internal static readonly System.Buffers.SearchValues<char> IdentifierChars =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
}

/// <summary>
/// An object read strictly: every member is known, none appears twice, and required ones are
/// present. Checks run in that order when the object is opened, so a misspelled member is
/// reported as unknown rather than as the missing member it was meant to be.
/// </summary>
internal readonly struct StrictObject
{
    private readonly Dictionary<string, JsonElement> _members;

    private StrictObject(string path, Dictionary<string, JsonElement> members)
    {
        Path = path;
        _members = members;
    }

    public string Path { get; }

    /// <summary>Opens <paramref name="e"/> as an object with the given known members.</summary>
    /// <param name="required">Members that must be present.</param>
    /// <param name="optional">Members that may be present.</param>
    /// <param name="extras">When not null, unknown members are collected here instead of rejected.</param>
    public static StrictObject Open(JsonElement e, string path, string[] required, string[] optional,
        List<KeyValuePair<string, JsonElement>>? extras = null)
    {
        ScenarioJson.ExpectKind(e, path, JsonValueKind.Object);
        var members = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var p in e.EnumerateObject())
        {
            string memberPath = Member(path, p.Name);
            bool known = required.Contains(p.Name) || optional.Contains(p.Name);
            if (!known && extras is null)
                throw ScenarioJson.Error(memberPath, $"unknown member; expected {string.Join(", ", required.Concat(optional))}");
            if (members.ContainsKey(p.Name) || (!known && extras!.Exists(kv => kv.Key == p.Name)))
                throw ScenarioJson.Error(memberPath, "member appears more than once");
            if (known) members.Add(p.Name, p.Value);
            else extras!.Add(new(p.Name, p.Value));
        }
        foreach (string name in required)
        {
            if (!members.ContainsKey(name)) throw ScenarioJson.Error(Member(path, name), "required member is missing");
        }
        return new StrictObject(path, members);
    }

    public JsonElement Required(string name) => _members[name];

    /// <summary>The member, or false when absent. A JSON null counts as present.</summary>
    public bool TryGet(string name, out JsonElement value) => _members.TryGetValue(name, out value);

    public string PathOf(string name) => Member(Path, name);
}
