using System.Text.Json;
using static NestedSmmu.Hardware.JsonPaths;
using static NestedSmmu.Scenarios.ScenarioJson;

namespace NestedSmmu.Scenarios;

/// <summary>
/// Reads <c>nestedsmmu-result/1</c> documents (expected results such as <c>*.intended.json</c>, or
/// another model's output such as <c>*.qemu.json</c>). Unknown top-level members are kept in
/// <see cref="ScenarioResult.ExtraMembers"/>; inside a result entry they are errors.
/// </summary>
public static class ScenarioResultReader
{
    /// <exception cref="ScenarioFormatException">The text is not a valid result document.</exception>
    public static ScenarioResult Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var doc = ParseDocument(() => JsonDocument.Parse(json, DocumentOptions));
        return Read(doc.RootElement);
    }

    /// <exception cref="ScenarioFormatException">The text is not a valid result document.</exception>
    public static ScenarioResult Parse(Stream utf8Json)
    {
        ArgumentNullException.ThrowIfNull(utf8Json);
        byte[] bytes = Hardware.JsonPaths.ReadUtf8(utf8Json, out string? invalid);
        if (invalid is not null) throw new ScenarioFormatException("$", invalid);
        using var doc = ParseDocument(() => JsonDocument.Parse(bytes, DocumentOptions));
        return Read(doc.RootElement);
    }

    /// <summary>Reads a result file; format errors name the file as well as the JSON path.</summary>
    public static ScenarioResult ReadFile(string path) => ScenarioJson.ReadFile(path, Parse);

    /// <summary>Reads a result from a parsed document. Extra members are cloned, so the document may be disposed.</summary>
    public static ScenarioResult Read(JsonElement root, string path = "$")
    {
        ExpectKind(root, path, JsonValueKind.Object);
        if (!root.TryGetProperty("format", out var format))
            throw Error(Member(path, "format"), $"required member is missing (\"{ScenarioResult.FormatName}\")");
        ScenarioReader.CheckFormat(format, Member(path, "format"), ScenarioResult.FormatName);

        var extras = new List<KeyValuePair<string, JsonElement>>();
        var top = StrictObject.Open(root, path, ["format", "results"], [], extras);
        var results = ScenarioReader.ReadArray(top.Required("results"), top.PathOf("results"), ReadEntry);
        return new ScenarioResult(results, extras);
    }

    private static AccessResult ReadEntry(JsonElement e, string path)
    {
        ExpectKind(e, path, JsonValueKind.Object);
        if (e.TryGetProperty("pa", out _))
        {
            var pa = StrictObject.Open(e, path, ["pa"], []);
            return new AccessResult.Pa(ReadNumber(pa.Required("pa"), pa.PathOf("pa")));
        }
        if (!e.TryGetProperty("fault", out var fault))
            throw Error(path, "expected a \"pa\" or a \"fault\" member");

        string faultPath = Member(path, "fault");
        string name = ReadString(fault, faultPath);
        if (name == AccessResult.AbortName)
        {
            StrictObject.Open(e, path, ["fault"], []);
            return AccessResult.Abort.Instance;
        }
        if (string.IsNullOrWhiteSpace(name)) throw Error(faultPath, "the event name is empty");

        // "event" may be absent in hand-written files: the same as an empty list (event queue off).
        var o = StrictObject.Open(e, path, ["fault", "stage"], ["event"]);
        string stagePath = o.PathOf("stage");
        ulong stage = ReadNumber(o.Required("stage"), stagePath);
        if (stage is not (1 or 2)) throw Error(stagePath, $"{stage} is not 1 or 2");
        ulong[] words = o.TryGet("event", out var ev)
            ? ScenarioReader.ReadArray(ev, o.PathOf("event"), (w, p) => ReadNumber(w, p))
            : [];
        if (words.Length is not (0 or AccessResult.Fault.EventWords))
            throw Error(o.PathOf("event"), $"expected {AccessResult.Fault.EventWords} words (or none when the event queue is off), found {words.Length}");
        return new AccessResult.Fault(name, (int)stage, words);
    }
}
