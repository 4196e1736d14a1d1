using System.Text.Json;
using NestedSmmu.Hardware.Smmu;
using static NestedSmmu.Hardware.JsonPaths;
using static NestedSmmu.Scenarios.ScenarioJson;

namespace NestedSmmu.Scenarios;

/// <summary>
/// Reads <c>nestedsmmu-scenario/1</c> documents (docs/SCENARIO.md). Every problem is one
/// <see cref="ScenarioFormatException"/> naming the JSON path of the value at fault.
/// </summary>
public static class ScenarioReader
{
    /// <summary>Parses a scenario document.</summary>
    /// <exception cref="ScenarioFormatException">The text is not a valid scenario.</exception>
    public static Scenario Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var doc = ParseDocument(() => JsonDocument.Parse(json, DocumentOptions));
        return Read(doc.RootElement);
    }

    /// <summary>Parses a scenario document from UTF-8 bytes.</summary>
    /// <exception cref="ScenarioFormatException">The text is not a valid scenario.</exception>
    public static Scenario Parse(Stream utf8Json)
    {
        ArgumentNullException.ThrowIfNull(utf8Json);
        byte[] bytes = Hardware.JsonPaths.ReadUtf8(utf8Json, out string? invalid);
        if (invalid is not null) throw new ScenarioFormatException("$", invalid);
        using var doc = ParseDocument(() => JsonDocument.Parse(bytes, DocumentOptions));
        return Read(doc.RootElement);
    }

    /// <summary>Reads a scenario file; format errors name the file as well as the JSON path.</summary>
    public static Scenario ReadFile(string path) => ScenarioJson.ReadFile(path, Parse);

    /// <summary>Reads a scenario from a parsed document (for callers that embed scenarios in other JSON).</summary>
    public static Scenario Read(JsonElement root, string path = "$")
    {
        ExpectKind(root, path, JsonValueKind.Object);
        // The format first: a result file or another document then gets one clear error.
        if (!root.TryGetProperty("format", out var format))
            throw Error(Member(path, "format"), $"required member is missing (\"{Scenario.FormatName}\")");
        CheckFormat(format, Member(path, "format"), Scenario.FormatName);

        var top = StrictObject.Open(root, path, ["format", "smmu", "memory", "accesses"], ["description"]);
        string? description = null;
        if (top.TryGet("description", out var d) && d.ValueKind != JsonValueKind.Null)
            description = ReadString(d, top.PathOf("description"));

        var smmu = StrictObject.Open(top.Required("smmu"), top.PathOf("smmu"), ["writes"], ["idr"]);
        var idr = smmu.TryGet("idr", out var idrElement) ? ReadIdr(idrElement, smmu.PathOf("idr")) : [];
        var writes = ReadArray(smmu.Required("writes"), smmu.PathOf("writes"), ReadWrite);
        var memory = ReadArray(top.Required("memory"), top.PathOf("memory"), ReadMemoryBlock);
        var accesses = ReadArray(top.Required("accesses"), top.PathOf("accesses"), ReadAccess);

        return new Scenario
        {
            Description = description,
            Idr = idr,
            Writes = writes,
            Memory = memory,
            Accesses = accesses,
        };
    }

    internal static void CheckFormat(JsonElement format, string path, string expected)
    {
        if (format.ValueKind != JsonValueKind.String || format.GetString() != expected)
            throw Error(path, $"expected \"{expected}\", found {Quote(format)}");
    }

    internal static T[] ReadArray<T>(JsonElement e, string path, Func<JsonElement, string, T> readItem)
    {
        ExpectKind(e, path, JsonValueKind.Array);
        var items = new T[e.GetArrayLength()];
        int i = 0;
        foreach (var item in e.EnumerateArray())
        {
            items[i] = readItem(item, Item(path, i));
            i++;
        }
        return items;
    }

    private static Dictionary<SmmuRegister, uint> ReadIdr(JsonElement e, string path)
    {
        ExpectKind(e, path, JsonValueKind.Object);
        var idr = new Dictionary<SmmuRegister, uint>();
        var names = new Dictionary<SmmuRegister, string>();
        foreach (var p in e.EnumerateObject())
        {
            string memberPath = Member(path, p.Name);
            if (!ScenarioRegisters.TryParseName(p.Name, out var register))
                throw Error(memberPath, $"'{p.Name}' is not an SMMUv3 register name; expected an ID register ({ScenarioRegisters.IdRegisterList})");
            if (!ScenarioRegisters.IsIdRegister(register))
                throw Error(memberPath, $"{register} is not an ID register ({ScenarioRegisters.IdRegisterList})");
            if (names.TryGetValue(register, out string? earlier))
                throw Error(memberPath, $"{register} is already given as '{earlier}'");
            names.Add(register, p.Name);
            idr.Add(register, (uint)ReadNumber(p.Value, memberPath, 32));
        }
        return idr;
    }

    private static RegisterWrite ReadWrite(JsonElement e, string path)
    {
        var o = StrictObject.Open(e, path, ["reg", "value"], ["width"]);

        string regPath = o.PathOf("reg");
        var reg = o.Required("reg");
        ExpectKind(reg, regPath, JsonValueKind.String);
        string regText = reg.GetString()!;
        SmmuRegister? register = null;
        ulong offset;
        if (regText.Length > 0 && char.IsAsciiDigit(regText[0]))
        {
            if (!JsonNumber.TryParse(regText, out offset, out string? error)) throw Error(regPath, error!);
        }
        else if (ScenarioRegisters.TryParseName(regText, out var named))
        {
            register = named;
            offset = (uint)named;
        }
        else
        {
            throw Error(regPath, $"'{regText}' is not an SMMUv3 register name or an offset such as \"0x20\"");
        }

        int width = 32;
        if (o.TryGet("width", out var w))
        {
            ulong requested = ReadNumber(w, o.PathOf("width"));
            if (ScenarioRegisters.CheckWidth(requested) is string widthError) throw Error(o.PathOf("width"), widthError);
            width = (int)requested;
        }

        if (ScenarioRegisters.CheckOffset(offset, 32) is string offsetError) throw Error(regPath, offsetError);
        if (ScenarioRegisters.CheckOffset(offset, width) is string wideError) throw Error(o.PathOf("width"), wideError);

        var valueElement = o.Required("value");
        ulong value = ReadNumber(valueElement, o.PathOf("value"));
        if (!JsonNumber.FitsIn(value, width))
        {
            string hint = width == 32 && ScenarioRegisters.NaturalWidth((uint)offset) == 64
                ? $"; {register?.ToString() ?? JsonNumber.ToHex(offset)} is a 64-bit register: add \"width\": 64"
                : "";
            throw Error(o.PathOf("value"), $"{Quote(valueElement)} does not fit in the write's {width} bits{hint}");
        }

        return register is SmmuRegister r ? new RegisterWrite(r, value, width) : new RegisterWrite((uint)offset, value, width);
    }

    private static MemoryBlock ReadMemoryBlock(JsonElement e, string path)
    {
        var o = StrictObject.Open(e, path, ["address", "qwords"], []);
        ulong address = ReadNumber(o.Required("address"), o.PathOf("address"));
        ulong[] qwords = ReadArray(o.Required("qwords"), o.PathOf("qwords"), (q, p) => ReadNumber(q, p));
        if (ScenarioRegisters.CheckMemoryBlock(address, (ulong)qwords.Length) is string error) throw Error(o.PathOf("address"), error);
        return new MemoryBlock(address, qwords.AsSpan());
    }

    private static Access ReadAccess(JsonElement e, string path)
    {
        var o = StrictObject.Open(e, path, ["sid", "iova", "access"], ["ssid"]);
        uint sid = (uint)ReadNumber(o.Required("sid"), o.PathOf("sid"), 32);
        uint? ssid = o.TryGet("ssid", out var s) && s.ValueKind != JsonValueKind.Null
            ? (uint)ReadNumber(s, o.PathOf("ssid"), Access.SsidBits)
            : null;
        ulong iova = ReadNumber(o.Required("iova"), o.PathOf("iova"));
        var kindElement = o.Required("access");
        AccessKind kind = ReadString(kindElement, o.PathOf("access")) switch
        {
            "read" => AccessKind.Read,
            "write" => AccessKind.Write,
            _ => throw Error(o.PathOf("access"), $"{Quote(kindElement)} is not \"read\" or \"write\""),
        };
        return new Access(sid, ssid, iova, kind);
    }
}
