using NestedSmmu.Hardware.Smmu;
using System.Text.Json;
using static NestedSmmu.Scenarios.ScenarioJson;

namespace NestedSmmu.Scenarios;

/// <summary>
/// Writes a <see cref="Scenario"/> as a <c>nestedsmmu-scenario/1</c> document in the reference
/// vectors' layout, so that <c>ScenarioReader.Parse(ScenarioWriter.ToJson(s)) == s</c>. Numbers
/// are lowercase hex strings (memory words padded to 16 digits); <c>width</c> appears only for
/// 64-bit writes; ID registers are listed in offset order.
/// </summary>
public static class ScenarioWriter
{
    /// <summary>The document as a string (no newline after the closing brace, like the vectors).</summary>
    public static string ToJson(Scenario scenario) => WriteToString(stream => Write(scenario, stream));

    /// <summary>Writes the document to <paramref name="utf8Json"/> as UTF-8.</summary>
    public static void Write(Scenario scenario, Stream utf8Json)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        ArgumentNullException.ThrowIfNull(utf8Json);
        using var w = new Utf8JsonWriter(utf8Json, WriterOptions);
        w.WriteStartObject();
        w.WriteString("format", scenario.Format);
        if (scenario.Description is not null) w.WriteString("description", scenario.Description);

        w.WriteStartObject("smmu");
        w.WriteStartObject("idr");
        foreach (var (register, value) in scenario.Idr.OrderBy(kv => kv.Key))
            WriteHex(w, register.ToString(), value);
        w.WriteEndObject();
        w.WriteStartArray("writes");
        foreach (var write in scenario.Writes)
        {
            w.WriteStartObject();
            w.WriteString("reg", write.Name ?? JsonNumber.ToHex(write.Offset));
            WriteHex(w, "value", write.Value);
            if (write.Width != 32) w.WriteNumber("width", write.Width);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();

        w.WriteStartArray("memory");
        foreach (var block in scenario.Memory)
        {
            w.WriteStartObject();
            WriteHex(w, "address", block.Address);
            w.WriteStartArray("qwords");
            foreach (ulong q in block.Qwords.Span) w.WriteStringValue(JsonNumber.ToHex64(q));
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();

        w.WriteStartArray("accesses");
        foreach (var access in scenario.Accesses)
        {
            w.WriteStartObject();
            WriteHex(w, "sid", access.Sid);
            if (access.Ssid is uint ssid) WriteHex(w, "ssid", ssid);
            else w.WriteNull("ssid");
            WriteHex(w, "iova", access.Iova);
            w.WriteString("access", access.Kind == AccessKind.Read ? "read" : "write");
            w.WriteEndObject();
        }
        w.WriteEndArray();

        w.WriteEndObject();
    }
}
