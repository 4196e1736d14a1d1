using System.Text.Json;
using System.Text.Json.Nodes;

namespace NestedSmmu.Tests.Common;

/// <summary>
/// Every field of a JSON document replaced in turn by a value of each wrong kind, or removed: what the
/// bad-input tests feed the readers that promise one error naming the JSON path of the bad field.
/// </summary>
public static class JsonMutations
{
    /// <summary>A boolean, a string, an object, an array, a negative and a huge number, null, and removal.</summary>
    private static readonly JsonNode?[] WrongValues = [true, "x", new JsonObject(), new JsonArray(), -1, 1e300, null];

    private static readonly JsonDocumentOptions Options = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    /// <summary>One mutation: the leaf's path ($.a.b[2].c), what it became (or "(removed)"), the mutated document.</summary>
    public readonly record struct Mutation(string Path, string Change, string Json);

    /// <summary>Every leaf of <paramref name="json"/> (comments allowed) with each wrong value and removed.</summary>
    public static IEnumerable<Mutation> Of(string json)
    {
        JsonNode root = JsonNode.Parse(json, documentOptions: Options)!;
        var leaves = new List<string>();
        Collect(root, "$", leaves);
        foreach (string path in leaves)
        {
            foreach (JsonNode? wrong in WrongValues)
            {
                JsonNode copy = root.DeepClone();
                Set(copy, path, wrong?.DeepClone(), remove: false);
                yield return new Mutation(path, wrong?.ToJsonString() ?? "null", copy.ToJsonString());
            }
            JsonNode removed = root.DeepClone();
            Set(removed, path, null, remove: true);
            yield return new Mutation(path, "(removed)", removed.ToJsonString());
        }
    }

    /// <summary>Whether an error at <paramref name="errorPath"/> names the field at <paramref name="path"/> or an object or array holding it.</summary>
    public static bool Names(string errorPath, string path) =>
        errorPath == path || path.StartsWith(errorPath + ".", StringComparison.Ordinal) || path.StartsWith(errorPath + "[", StringComparison.Ordinal);

    private static void Collect(JsonNode? node, string path, List<string> leaves)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, value) in o) Collect(value, $"{path}.{key}", leaves);
                break;
            case JsonArray a:
                for (int i = 0; i < a.Count; i++) Collect(a[i], $"{path}[{i}]", leaves);
                break;
            default:
                leaves.Add(path);
                break;
        }
    }

    private static void Set(JsonNode root, string path, JsonNode? value, bool remove)
    {
        var parts = new List<object>();
        foreach (string segment in path[2..].Split('.'))
        {
            int bracket = segment.IndexOf('[', StringComparison.Ordinal);
            if (bracket < 0)
            {
                parts.Add(segment);
                continue;
            }
            if (bracket > 0) parts.Add(segment[..bracket]);
            foreach (string index in segment[bracket..].Split('[', StringSplitOptions.RemoveEmptyEntries)) parts.Add(int.Parse(index.TrimEnd(']')));
        }
        JsonNode parent = root;
        for (int i = 0; i < parts.Count - 1; i++) parent = parts[i] is string k ? parent[k]! : parent[(int)parts[i]]!;
        switch (parts[^1], remove)
        {
            case (string key, true): parent.AsObject().Remove(key); break;
            case (int index, true): parent.AsArray().RemoveAt(index); break;
            case (string key, false): parent[key] = value; break;
            case (int index, false): parent[index] = value; break;
        }
    }
}
