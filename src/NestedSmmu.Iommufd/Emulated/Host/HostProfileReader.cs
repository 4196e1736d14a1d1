using NestedSmmu.Hardware;
using System.Text.Json;
using NestedSmmu.Hardware.Smmu;
using static NestedSmmu.Hardware.JsonPaths;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// Reads a host profile strictly: unknown, duplicate and missing members are errors naming their
/// JSON path, numbers are JSON integers below 2^53 or <c>0x</c>-hex / decimal strings (the same
/// spellings as scenarios), and <c>//</c> comments are allowed so profiles can explain their values.
/// </summary>
internal static class HostProfileReader
{
    private static readonly JsonDocumentOptions DocumentOptions = new()
    {
        AllowTrailingCommas = false,
        CommentHandling = JsonCommentHandling.Skip,
    };

    private static readonly string[] RootMembers = ["name", "description", "memory", "smmus", "devices"];
    private static readonly string[] MemoryMembers = ["base", "size"];
    private static readonly string[] SmmuMembers = ["name", "base", "features", "idr", "cmdqv"];
    private static readonly string[] IdrMembers = ["idr0", "idr1", "idr3", "idr5", "iidr", "aidr"];
    private static readonly string[] CmdqvMembers = ["base", "numVintfLog2", "numVcmdqLog2", "numSidPerVmLog2", "version"];
    private static readonly string[] DeviceMembers = ["bdf", "name", "kind", "smmu", "streamId", "ats", "pasidBits", "canwbs"];

    /// <summary>Feature members: name, and how to apply a value to <see cref="SmmuFeatures"/> (with its range).</summary>
    private static readonly Dictionary<string, FeatureMember> Features = new(StringComparer.Ordinal)
    {
        ["stage1"] = FeatureMember.Flag((f, v) => f with { Stage1 = v }),
        ["stage2"] = FeatureMember.Flag((f, v) => f with { Stage2 = v }),
        ["ats"] = FeatureMember.Flag((f, v) => f with { Ats = v }),
        ["hyp"] = FeatureMember.Flag((f, v) => f with { Hyp = v }),
        ["ril"] = FeatureMember.Flag((f, v) => f with { Ril = v }),
        ["pri"] = FeatureMember.Flag((f, v) => f with { Pri = v }),
        ["msi"] = FeatureMember.Flag((f, v) => f with { Msi = v }),
        ["sev"] = FeatureMember.Flag((f, v) => f with { Sev = v }),
        ["coherentWalk"] = FeatureMember.Flag((f, v) => f with { CoherentWalk = v }),
        ["btm"] = FeatureMember.Flag((f, v) => f with { Btm = v }),
        ["asid16"] = FeatureMember.Flag((f, v) => f with { Asid16 = v }),
        ["vmid16"] = FeatureMember.Flag((f, v) => f with { Vmid16 = v }),
        ["twoLevelStreamTable"] = FeatureMember.Flag((f, v) => f with { TwoLevelStreamTable = v }),
        ["twoLevelCd"] = FeatureMember.Flag((f, v) => f with { TwoLevelCd = v }),
        ["termModel"] = FeatureMember.Flag((f, v) => f with { TermModel = v }),
        ["gran4K"] = FeatureMember.Flag((f, v) => f with { Gran4K = v }),
        ["gran16K"] = FeatureMember.Flag((f, v) => f with { Gran16K = v }),
        ["gran64K"] = FeatureMember.Flag((f, v) => f with { Gran64K = v }),
        ["xnx"] = FeatureMember.Flag((f, v) => f with { Xnx = v }),
        ["had"] = FeatureMember.Flag((f, v) => f with { Had = v }),
        ["httu"] = FeatureMember.Number(0, 2, (f, v) => f with { Httu = (int)v }),
        ["stallModel"] = FeatureMember.Number(0, 2, (f, v) => f with { StallModel = (int)v }),
        ["sidBits"] = FeatureMember.Number(0, 32, (f, v) => f with { SidBits = (int)v }),
        ["ssidBits"] = FeatureMember.Number(0, 20, (f, v) => f with { SsidBits = (int)v }),
        ["oasBits"] = FeatureMember.Number(32, 52, (f, v) => f with { OasBits = (int)v }),
        ["cmdqLog2Max"] = FeatureMember.Number(0, 19, (f, v) => f with { CmdqLog2Max = (int)v }),
        ["eventqLog2Max"] = FeatureMember.Number(0, 19, (f, v) => f with { EventqLog2Max = (int)v }),
        ["priqLog2Max"] = FeatureMember.Number(0, 19, (f, v) => f with { PriqLog2Max = (int)v }),
        ["bbml"] = FeatureMember.Number(0, 2, (f, v) => f with { Bbml = (int)v }),
        ["vax"] = FeatureMember.Number(0, 1, (f, v) => f with { Vax = (int)v }),
        ["iidr"] = FeatureMember.Number(0, uint.MaxValue, (f, v) => f with { Iidr = (uint)v }),
        ["aidr"] = FeatureMember.Number(0, uint.MaxValue, (f, v) => f with { Aidr = (uint)v }),
    };

    private sealed record FeatureMember(bool IsFlag, ulong Min, ulong Max, Func<SmmuFeatures, bool, SmmuFeatures>? ApplyFlag,
        Func<SmmuFeatures, ulong, SmmuFeatures>? ApplyNumber)
    {
        public static FeatureMember Flag(Func<SmmuFeatures, bool, SmmuFeatures> apply) => new(true, 0, 1, apply, null);
        public static FeatureMember Number(ulong min, ulong max, Func<SmmuFeatures, ulong, SmmuFeatures> apply) => new(false, min, max, null, apply);
    }

    public static HostProfile Read(Stream stream, string? source)
    {
        try
        {
            JsonDocument document;
            try
            {
                byte[] bytes = ReadUtf8(stream, out string? invalid);
                if (invalid is not null) throw new HostProfileException("$", invalid);
                document = JsonDocument.Parse(bytes, DocumentOptions);
            }
            catch (JsonException e)
            {
                string where = e.LineNumber is long line ? $" (line {line + 1}, byte {e.BytePositionInLine + 1})" : "";
                throw new HostProfileException(e.Path ?? "$", $"not valid JSON{where}: {FirstSentence(e.Message)}", innerException: e);
            }
            using (document)
            {
                HostProfile profile = ReadRoot(document.RootElement);
                HostProfileValidator.Validate(profile, null);
                return profile;
            }
        }
        catch (HostProfileException e) when (source is not null && e.Source is null)
        {
            throw e.WithSource(source);
        }
    }

    private static HostProfile ReadRoot(JsonElement root)
    {
        const string path = "$";
        var members = Object(root, path, RootMembers);
        string name = String(Required(members, path, "name"), Member(path, "name"));
        string? description = members.TryGetValue("description", out var d) ? String(d, Member(path, "description")) : null;
        HostMemoryProfile memory = ReadMemory(Required(members, path, "memory"), Member(path, "memory"));
        var smmus = new List<SmmuProfile>();
        string smmusPath = Member(path, "smmus");
        int i = 0;
        foreach (JsonElement e in Array(Required(members, path, "smmus"), smmusPath))
            smmus.Add(ReadSmmu(e, Item(smmusPath, i++)));
        var devices = new List<PciDeviceProfile>();
        string devicesPath = Member(path, "devices");
        i = 0;
        foreach (JsonElement e in Array(Required(members, path, "devices"), devicesPath))
            devices.Add(ReadDevice(e, Item(devicesPath, i++)));
        return new HostProfile(name, description, memory, smmus, devices);
    }

    private static HostMemoryProfile ReadMemory(JsonElement e, string path)
    {
        var m = Object(e, path, MemoryMembers);
        return new HostMemoryProfile(
            Number(Required(m, path, "base"), Member(path, "base")),
            Number(Required(m, path, "size"), Member(path, "size")));
    }

    private static SmmuProfile ReadSmmu(JsonElement e, string path)
    {
        var m = Object(e, path, SmmuMembers);
        string name = String(Required(m, path, "name"), Member(path, "name"));
        ulong mmioBase = Number(Required(m, path, "base"), Member(path, "base"));
        bool hasFeatures = m.TryGetValue("features", out JsonElement features);
        bool hasIdr = m.TryGetValue("idr", out JsonElement idr);
        if (hasFeatures == hasIdr)
            throw new HostProfileException(path, hasFeatures
                ? "give either 'features' or 'idr', not both"
                : "missing 'features' (named feature values) or 'idr' (raw ID register values)");
        SmmuFeatures f = hasFeatures ? ReadFeatures(features, Member(path, "features")) : ReadIdrs(idr, Member(path, "idr"));
        CmdqvProfile? cmdqv = m.TryGetValue("cmdqv", out JsonElement c) ? ReadCmdqv(c, Member(path, "cmdqv")) : null;
        return new SmmuProfile(name, mmioBase, f, cmdqv);
    }

    private static SmmuFeatures ReadFeatures(JsonElement e, string path)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw new HostProfileException(path, $"expected an object, got {Describe(e.ValueKind)}");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var f = new SmmuFeatures();
        foreach (JsonProperty p in e.EnumerateObject())
        {
            string memberPath = Member(path, p.Name);
            if (!seen.Add(p.Name)) throw new HostProfileException(memberPath, "duplicate member");
            if (!Features.TryGetValue(p.Name, out FeatureMember? member))
                throw new HostProfileException(memberPath,
                    $"unknown SMMU feature; known features: {string.Join(", ", Features.Keys.Order(StringComparer.Ordinal))}");
            if (member.IsFlag)
            {
                f = member.ApplyFlag!(f, Bool(p.Value, memberPath));
                continue;
            }
            ulong v = Number(p.Value, memberPath);
            if (v < member.Min || v > member.Max)
                throw new HostProfileException(memberPath, $"{v} is out of range ({member.Min}..{member.Max})");
            f = member.ApplyNumber!(f, v);
        }
        return f;
    }

    private static SmmuFeatures ReadIdrs(JsonElement e, string path)
    {
        var m = Object(e, path, IdrMembers);
        uint Reg(string name, bool required)
        {
            if (!m.TryGetValue(name, out JsonElement v))
            {
                if (required) throw new HostProfileException(path, $"missing member '{name}'");
                return 0;
            }
            ulong n = Number(v, Member(path, name));
            if (n > uint.MaxValue) throw new HostProfileException(Member(path, name), $"0x{n:X} does not fit a 32-bit register");
            return (uint)n;
        }
        SmmuFeatures f = SmmuFeatures.FromIdrs(Reg("idr0", true), Reg("idr1", true), Reg("idr3", true), Reg("idr5", true),
            Reg("iidr", false), Reg("aidr", false));
        return f;
    }

    private static CmdqvProfile ReadCmdqv(JsonElement e, string path)
    {
        var m = Object(e, path, CmdqvMembers);
        int Small(string name, int max)
        {
            string p = Member(path, name);
            ulong v = Number(Required(m, path, name), p);
            if (v > (ulong)max) throw new HostProfileException(p, $"{v} is out of range (0..{max})");
            return (int)v;
        }
        return new CmdqvProfile(
            Number(Required(m, path, "base"), Member(path, "base")),
            Small("numVintfLog2", CmdqvProfile.MaxVintfLog2),
            Small("numVcmdqLog2", CmdqvProfile.MaxVcmdqLog2),
            Small("numSidPerVmLog2", CmdqvProfile.MaxSidPerVmLog2),
            Small("version", CmdqvProfile.MaxVersion));
    }

    private static PciDeviceProfile ReadDevice(JsonElement e, string path)
    {
        var m = Object(e, path, DeviceMembers);
        string bdfPath = Member(path, "bdf");
        string bdf = String(Required(m, path, "bdf"), bdfPath);
        if (!PciAddress.TryParse(bdf, out PciAddress address))
            throw new HostProfileException(bdfPath, $"'{bdf}' is not a PCI address (expected ssss:bb:dd.f or bb:dd.f in hex)");
        string name = String(Required(m, path, "name"), Member(path, "name"));
        string kindPath = Member(path, "kind");
        string kindText = String(Required(m, path, "kind"), kindPath);
        PciDeviceKind kind = kindText switch
        {
            "gpu" => PciDeviceKind.Gpu,
            "nic" => PciDeviceKind.Nic,
            _ => throw new HostProfileException(kindPath, $"'{kindText}' is not a device kind (gpu, nic)"),
        };
        string smmu = String(Required(m, path, "smmu"), Member(path, "smmu"));
        string sidPath = Member(path, "streamId");
        ulong sid = Number(Required(m, path, "streamId"), sidPath);
        if (sid > uint.MaxValue) throw new HostProfileException(sidPath, $"0x{sid:X} does not fit a 32-bit StreamID");
        bool ats = m.TryGetValue("ats", out JsonElement a) && Bool(a, Member(path, "ats"));
        int pasidBits = 0;
        if (m.TryGetValue("pasidBits", out JsonElement pb))
        {
            string pbPath = Member(path, "pasidBits");
            ulong v = Number(pb, pbPath);
            if (v > PciDeviceProfile.MaxPasidBits) throw new HostProfileException(pbPath, $"{v} is out of range (0..{PciDeviceProfile.MaxPasidBits}, the PCIe PASID width)");
            pasidBits = (int)v;
        }
        bool canwbs = !m.TryGetValue("canwbs", out JsonElement c) || Bool(c, Member(path, "canwbs"));
        return new PciDeviceProfile(address, name, kind, smmu, (uint)sid, ats, pasidBits, canwbs);
    }

    // ------------------------------------------------------------------ strict JSON helpers

    private static Dictionary<string, JsonElement> Object(JsonElement e, string path, string[] allowed)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw new HostProfileException(path, $"expected an object, got {Describe(e.ValueKind)}");
        var members = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (JsonProperty p in e.EnumerateObject())
        {
            string memberPath = Member(path, p.Name);
            if (System.Array.IndexOf(allowed, p.Name) < 0)
                throw new HostProfileException(memberPath, $"unknown member; expected one of: {string.Join(", ", allowed)}");
            if (!members.TryAdd(p.Name, p.Value)) throw new HostProfileException(memberPath, "duplicate member");
        }
        return members;
    }

    private static JsonElement Required(Dictionary<string, JsonElement> members, string path, string name) =>
        members.TryGetValue(name, out JsonElement e) ? e : throw new HostProfileException(path, $"missing member '{name}'");

    private static JsonElement.ArrayEnumerator Array(JsonElement e, string path) =>
        e.ValueKind == JsonValueKind.Array ? e.EnumerateArray()
            : throw new HostProfileException(path, $"expected an array, got {Describe(e.ValueKind)}");

    private static string String(JsonElement e, string path)
    {
        if (e.ValueKind != JsonValueKind.String) throw new HostProfileException(path, $"expected a string, got {Describe(e.ValueKind)}");
        string s = e.GetString()!;
        if (s.Length == 0) throw new HostProfileException(path, "must not be empty");
        return s;
    }

    private static bool Bool(JsonElement e, string path) => e.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw new HostProfileException(path, $"expected true or false, got {Describe(e.ValueKind)}"),
    };

    private static ulong Number(JsonElement e, string path)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Number:
                if (!e.TryGetUInt64(out ulong n))
                    throw new HostProfileException(path, $"{e.GetRawText()} is not an unsigned integer");
                if (n >= JsonNumber.JsonNumberLimit)
                    throw new HostProfileException(path, $"{n} is too large for a JSON number (2^53 or more): write it as a hex string");
                return n;
            case JsonValueKind.String:
                if (!JsonNumber.TryParse(e.GetString(), out ulong v, out string? error))
                    throw new HostProfileException(path, error!);
                return v;
            default:
                throw new HostProfileException(path, $"expected a number or a hex string, got {Describe(e.ValueKind)}");
        }
    }

    private static string FirstSentence(string message)
    {
        int dot = message.IndexOf(". ", StringComparison.Ordinal);
        return dot < 0 ? message.TrimEnd('.') : message[..dot];
    }
}
