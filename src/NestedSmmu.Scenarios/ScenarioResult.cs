using System.Text.Json;

namespace NestedSmmu.Scenarios;

/// <summary>
/// The outcome of a scenario (format <c>nestedsmmu-result/1</c>): one <see cref="AccessResult"/>
/// per access, in order. Members other than <c>format</c> and <c>results</c> (such as the
/// per-access <c>tags</c> of the reference vectors) are kept in <see cref="ExtraMembers"/> so a
/// file reads back and re-writes unchanged. Equality is structural and includes them; use
/// <see cref="FindFirstDifference"/> to compare only the results.
/// </summary>
public sealed record ScenarioResult
{
    /// <summary>The value of the document's <c>format</c> member.</summary>
    public const string FormatName = "nestedsmmu-result/1";

    public ScenarioResult(IEnumerable<AccessResult> results, IEnumerable<KeyValuePair<string, JsonElement>>? extraMembers = null)
    {
        ArgumentNullException.ThrowIfNull(results);
        var entries = results.ToArray();
        if (Array.IndexOf(entries, null) is int i and >= 0)
            throw new ArgumentException($"Result {i} is null.", nameof(results));
        Results = entries;

        var extras = new List<KeyValuePair<string, JsonElement>>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, value) in extraMembers ?? [])
        {
            if (name is "format" or "results")
                throw new ArgumentException($"'{name}' is not an extra member: the result writes it itself.", nameof(extraMembers));
            if (!seen.Add(name))
                throw new ArgumentException($"Extra member '{name}' is given twice.", nameof(extraMembers));
            extras.Add(new(name, value.Clone()));
        }
        ExtraMembers = extras;
    }

    /// <summary>Always <see cref="FormatName"/>.</summary>
    public string Format => FormatName;

    /// <summary>One entry per access, in access order.</summary>
    public IReadOnlyList<AccessResult> Results { get; }

    /// <summary>Other top-level members, in document order, written back after <c>results</c>.</summary>
    public IReadOnlyList<KeyValuePair<string, JsonElement>> ExtraMembers { get; }

    /// <summary>
    /// Null when <paramref name="actual"/> matches <paramref name="expected"/>, otherwise the first
    /// difference in words, such as <c>results[1]: expected fault F_TRANSLATION, found pa 0x4ecba567</c>.
    /// Extra members are compared only when <paramref name="compareExtraMembers"/> is set. When
    /// <paramref name="expected"/> carries one tag string per result, the entry's tag is named too.
    /// </summary>
    public static string? FindFirstDifference(ScenarioResult expected, ScenarioResult actual, bool compareExtraMembers = false)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        int common = Math.Min(expected.Results.Count, actual.Results.Count);
        for (int i = 0; i < common; i++)
        {
            if (AccessResult.FindDifference(expected.Results[i], actual.Results[i]) is (string member, string detail))
                return $"results[{i}]{member}{expected.TagSuffix(i)}: {detail}";
        }
        if (expected.Results.Count != actual.Results.Count)
            return $"results: expected {Entries(expected.Results.Count)}, found {actual.Results.Count}";

        if (!compareExtraMembers) return null;
        foreach (var (name, value) in expected.ExtraMembers)
        {
            if (!actual.TryGetExtraMember(name, out var other)) return $"{name}: expected {Json(value)}, found nothing";
            if (!JsonElement.DeepEquals(value, other)) return $"{name}: expected {Json(value)}, found {Json(other)}";
        }
        foreach (var (name, value) in actual.ExtraMembers)
        {
            if (!expected.TryGetExtraMember(name, out _)) return $"{name}: expected nothing, found {Json(value)}";
        }
        return null;
    }

    /// <summary>Looks up an extra member by name.</summary>
    public bool TryGetExtraMember(string name, out JsonElement value)
    {
        foreach (var (n, v) in ExtraMembers)
        {
            if (n == name) { value = v; return true; }
        }
        value = default;
        return false;
    }

    public bool Equals(ScenarioResult? other) =>
        other is not null
        && ExtraMembers.Count == other.ExtraMembers.Count
        && FindFirstDifference(this, other, compareExtraMembers: true) is null;

    public override int GetHashCode() => HashCode.Combine(Results.Count, ExtraMembers.Count);

    private string TagSuffix(int index) =>
        TryGetExtraMember("tags", out var tags)
        && tags.ValueKind == JsonValueKind.Array
        && tags.GetArrayLength() == Results.Count
        && tags[index].ValueKind == JsonValueKind.String
            ? $" (tag {tags[index].GetString()})"
            : "";

    private static string Entries(int n) => n == 1 ? "1 entry" : $"{n} entries";

    private static string Json(JsonElement e)
    {
        string text = e.GetRawText();
        return text.Length <= 80 ? text : text[..77] + "...";
    }
}

/// <summary>
/// What one access did: reached a physical address (<see cref="Pa"/>), raised an event
/// (<see cref="Fault"/>), or was aborted without an event (<see cref="Abort"/>).
/// </summary>
public abstract record AccessResult
{
    // Closed hierarchy: only the nested records derive.
    private AccessResult()
    {
    }

    /// <summary>The access reached physical address <see cref="Address"/>.</summary>
    public sealed record Pa(ulong Address) : AccessResult
    {
        public override string ToString() => $"pa {JsonNumber.ToHex(Address)}";
    }

    /// <summary>
    /// The access raised event <see cref="Name"/> (C_BAD_STE, F_TRANSLATION, ...) at
    /// <see cref="Stage"/> 1 or 2 (2 when stage 2 faulted, including during a stage-1 walk);
    /// <see cref="Event"/> is the record's four words as written to the event queue, or empty when
    /// the event queue is off.
    /// </summary>
    public sealed record Fault : AccessResult
    {
        /// <summary>Words in an event record (Arm IHI 0070, 7.3: events are 32 bytes).</summary>
        public const int EventWords = 4;

        private readonly ulong[] _event;

        public Fault(string name, int stage, ReadOnlySpan<ulong> eventWords)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(name);
            if (name == AbortName)
                throw new ArgumentException($"{AbortName} is not an event: use {nameof(AccessResult)}.{nameof(Abort)}.", nameof(name));
            if (stage is not (1 or 2))
                throw new ArgumentOutOfRangeException(nameof(stage), $"Stage {stage} is not 1 or 2.");
            if (eventWords.Length is not (0 or EventWords))
                throw new ArgumentException($"An event has {EventWords} words (or none when the event queue is off), not {eventWords.Length}.", nameof(eventWords));
            Name = name;
            Stage = stage;
            _event = eventWords.ToArray();
        }

        public string Name { get; }

        public int Stage { get; }

        /// <summary>Empty, or the event record's four 64-bit words.</summary>
        public IReadOnlyList<ulong> Event => _event;

        public bool Equals(Fault? other) =>
            other is not null && Name == other.Name && Stage == other.Stage && _event.AsSpan().SequenceEqual(other._event);

        public override int GetHashCode() => HashCode.Combine(Name, Stage, _event.Length);

        public override string ToString() =>
            $"fault {Name} stage {Stage} event [{string.Join(", ", _event.Select(JsonNumber.ToHex64))}]";
    }

    /// <summary>The access was aborted without an event (GBPA abort, disabled SMMU in abort mode, STE abort).</summary>
    public sealed record Abort : AccessResult
    {
        /// <summary>The one value there is a need for.</summary>
        public static Abort Instance { get; } = new();

        public override string ToString() => AbortName;
    }

    /// <summary>The <c>fault</c> value of an abort.</summary>
    public const string AbortName = "ABORT";

    /// <summary>The member (<c>""</c>, <c>.stage</c>, <c>.event[2]</c>) and text of the first difference, or null.</summary>
    internal static (string Member, string Detail)? FindDifference(AccessResult expected, AccessResult actual)
    {
        switch (expected, actual)
        {
            case (Pa e, Pa a):
                return e.Address == a.Address ? null : ("", $"expected {e}, found {a}");
            case (Abort, Abort):
                return null;
            case (Fault e, Fault a):
                if (e.Name != a.Name) return (".fault", $"expected {e.Name}, found {a.Name}");
                if (e.Stage != a.Stage) return (".stage", $"expected {e.Stage}, found {a.Stage}");
                if (e.Event.Count != a.Event.Count)
                    return (".event", $"expected {Words(e.Event.Count)}, found {Words(a.Event.Count)}");
                for (int w = 0; w < e.Event.Count; w++)
                {
                    if (e.Event[w] != a.Event[w])
                        return ($".event[{w}]", $"expected {JsonNumber.ToHex64(e.Event[w])}, found {JsonNumber.ToHex64(a.Event[w])}");
                }
                return null;
            default:
                return ("", $"expected {Brief(expected)}, found {Brief(actual)}");
        }
    }

    private static string Brief(AccessResult r) => r is Fault f ? $"fault {f.Name} (stage {f.Stage})" : r.ToString();

    private static string Words(int n) => n == 0 ? "no words" : $"{n} words";
}
