using System.Text.Json;
using static NestedSmmu.Scenarios.ScenarioJson;

namespace NestedSmmu.Scenarios;

/// <summary>
/// Writes <c>nestedsmmu-result/1</c> exactly as the reference vectors are written: one-space
/// indent, <c>{"pa": "0x4ecba567"}</c> (unpadded lowercase hex), faults as <c>fault</c>,
/// <c>stage</c>, <c>event</c> in that order with 16-digit event words, <c>{"fault": "ABORT"}</c>,
/// extra members after <c>results</c>, and no newline after the closing brace. A vector read with
/// <see cref="ScenarioResultReader"/> and written back is byte-for-byte the same.
/// </summary>
public static class ScenarioResultWriter
{
    /// <summary>The document as a string.</summary>
    public static string ToJson(ScenarioResult result) => WriteToString(stream => Write(result, stream));

    /// <summary>Writes the document to <paramref name="utf8Json"/> as UTF-8.</summary>
    public static void Write(ScenarioResult result, Stream utf8Json)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(utf8Json);
        using var w = new Utf8JsonWriter(utf8Json, WriterOptions);
        w.WriteStartObject();
        w.WriteString("format", result.Format);
        w.WriteStartArray("results");
        foreach (var entry in result.Results)
        {
            w.WriteStartObject();
            switch (entry)
            {
                case AccessResult.Pa pa:
                    WriteHex(w, "pa", pa.Address);
                    break;
                case AccessResult.Abort:
                    w.WriteString("fault", AccessResult.AbortName);
                    break;
                case AccessResult.Fault fault:
                    w.WriteString("fault", fault.Name);
                    w.WriteNumber("stage", fault.Stage);
                    w.WriteStartArray("event");
                    foreach (ulong word in fault.Event) w.WriteStringValue(JsonNumber.ToHex64(word));
                    w.WriteEndArray();
                    break;
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        foreach (var (name, value) in result.ExtraMembers)
        {
            w.WritePropertyName(name);
            value.WriteTo(w);
        }
        w.WriteEndObject();
    }
}
