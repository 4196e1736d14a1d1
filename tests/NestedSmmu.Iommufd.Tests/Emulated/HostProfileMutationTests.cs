using System.Text.Json;
using System.Text.Json.Nodes;
using NestedSmmu.Iommufd.Emulated;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// Every field of the embedded host profiles, replaced in turn by a value of each wrong kind (a
/// boolean, a string, an object, an array, a negative and a huge number, null) or removed: the reader
/// either accepts the profile or throws one <see cref="HostProfileException"/> whose path names that
/// field or the object holding it (when it is the object that is now incomplete or inconsistent), or
/// for a renamed SMMU the device that still names it, and whose message starts with that path; never
/// another exception.
/// </summary>
public sealed class HostProfileMutationTests
{
    private static readonly JsonNode?[] WrongValues = [true, "x", new JsonObject(), new JsonArray(), -1, 1e300, null];

    public static TheoryData<string> Profiles() => new(HostProfile.EmbeddedNames);

    [Theory]
    [MemberData(nameof(Profiles))]
    public void A_wrong_or_missing_field_is_refused_with_its_path(string name)
    {
        string json = EmbeddedJson(name);
        var options = new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };
        JsonNode root = JsonNode.Parse(json, documentOptions: options)!;
        var leaves = new List<string>();
        Collect(root, "$", leaves);
        leaves.Count.ShouldBeGreaterThan(20);
        int refused = 0;
        var problems = new List<string>();
        foreach (string path in leaves)
        {
            foreach (JsonNode? wrong in WrongValues.Append(Removed))
            {
                JsonNode copy = JsonNode.Parse(root.ToJsonString())!;
                Replace(copy, path, wrong);
                try
                {
                    HostProfile.Parse(copy.ToJsonString());
                }
                catch (HostProfileException e)
                {
                    refused++;
                    bool names = e.Path == path || path.StartsWith(e.Path + ".", StringComparison.Ordinal) || path.StartsWith(e.Path + "[", StringComparison.Ordinal)
                        || (e.Path.StartsWith("$", StringComparison.Ordinal) && e.Message.Contains(path, StringComparison.Ordinal))
                        // A renamed SMMU leaves the devices that name it pointing nowhere: the error is at the reference, listing the names.
                        || (path.StartsWith("$.smmus[", StringComparison.Ordinal) && path.EndsWith(".name", StringComparison.Ordinal) && e.Message.Contains("no SMMU is named", StringComparison.Ordinal));
                    if (!names || !e.Message.StartsWith(e.Path, StringComparison.Ordinal))
                        problems.Add($"{path} = {Show(wrong)}: error at {e.Path}: {e.Message}");
                }
                catch (Exception e)
                {
                    problems.Add($"{path} = {Show(wrong)}: {e.GetType().Name}: {e.Message}");
                }
            }
        }
        problems.ShouldBeEmpty(string.Join("\n", problems.Take(20)));
        refused.ShouldBeGreaterThan(leaves.Count, "most wrong values are refused");
    }

    private static string EmbeddedJson(string name)
    {
        string resource = typeof(HostProfile).Assembly.GetManifestResourceNames().Single(r => r.EndsWith($".{name}.json", StringComparison.Ordinal));
        using var reader = new StreamReader(typeof(HostProfile).Assembly.GetManifestResourceStream(resource)!);
        return reader.ReadToEnd();
    }

    /// <summary>Stands for "remove the field".</summary>
    private static readonly JsonNode Removed = JsonValue.Create("<removed>")!;

    private static string Show(JsonNode? n) => n == Removed ? "(removed)" : n?.ToJsonString() ?? "null";

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

    /// <summary>Sets (or removes) the value at a path of the form $.a.b[2].c.</summary>
    private static void Replace(JsonNode root, string path, JsonNode? value)
    {
        var parts = new List<object>();
        foreach (string segment in path[2..].Split('.'))
        {
            string s = segment;
            int bracket = s.IndexOf('[', StringComparison.Ordinal);
            if (bracket < 0) { parts.Add(s); continue; }
            parts.Add(s[..bracket]);
            foreach (string index in s[bracket..].Split('[', StringSplitOptions.RemoveEmptyEntries)) parts.Add(int.Parse(index.TrimEnd(']')));
        }
        JsonNode parent = root;
        for (int i = 0; i < parts.Count - 1; i++) parent = parts[i] is string k ? parent[k]! : parent[(int)parts[i]]!;
        object last = parts[^1];
        if (value == Removed)
        {
            if (last is string key) parent.AsObject().Remove(key);
            else parent.AsArray().RemoveAt((int)last);
            return;
        }
        JsonNode? copy = value?.DeepClone();
        if (last is string k2) parent[k2] = copy;
        else parent[(int)last] = copy;
    }
}
