using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Config;
using CliCommand = System.CommandLine.Command;

namespace NestedSmmu.Cli;

/// <summary>
/// `nestedsmmu check [--host PROFILE|FILE] [--json] -- QEMU-ARGUMENTS`: QEMU 11.1's verdict on a
/// command line (and whether the host can back it), the vSMMUs with their resolved properties,
/// and where every PCI device sits. Exit 0 accepted, 2 refused (one <c>error:</c> line with
/// QEMU's message), 1 for misuse of the command itself.
/// </summary>
internal static class CheckCommand
{
    private const string Example =
        "nestedsmmu check -- -machine virt,accel=kvm -bios AAVMF_CODE.fd -object iommufd,id=iommufd0 " +
        "-device pxb-pcie,id=pcie.1,bus_nr=1,bus=pcie.0 -device arm-smmuv3,primary-bus=pcie.1,id=smmuv3.1,accel=on " +
        "-device pcie-root-port,id=rp1,bus=pcie.1,chassis=1 -device vfio-pci,host=0009:06:00.0,bus=rp1,id=dev0,iommufd=iommufd0";

    private static readonly JsonSerializerOptions JsonOutput = new()
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static CliCommand Create(TextWriter stdout, TextWriter stderr)
    {
        var hostOption = new Option<string>("--host")
        {
            Description = $"The host to check against: an embedded emulated host profile ({string.Join(", ", HostProfile.EmbeddedNames)}) or a host profile JSON file.",
            DefaultValueFactory = _ => HostProfile.DefaultName,
        };
        var jsonOption = new Option<bool>("--json") { Description = "Print the verdict, vSMMUs, devices and the machine as JSON." };
        var qemuArgs = new Argument<string[]>("qemu-arguments")
        {
            Description = "The QEMU command line after '--' (the leading qemu-system-aarch64 word is optional; the whole line may also be one quoted argument).",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var cmd = new CliCommand("check",
            "Judge a QEMU command line as QEMU 11.1 would (its messages verbatim) on a host, and show the resolved vSMMUs and the PCI topology.\n" +
            "Example:\n  " + Example)
        { hostOption, jsonOption, qemuArgs };
        cmd.SetAction(parse =>
        {
            string hostName = parse.GetValue(hostOption) ?? HostProfile.DefaultName;
            string[] args = parse.GetValue(qemuArgs) ?? [];
            if (args.Length == 0)
            {
                stderr.WriteLine("error: no QEMU arguments: give them after '--', e.g.\n  " + Example);
                return 1;
            }
            HostProfile profile;
            try
            {
                profile = HostProfileArgument.Load(hostName);
            }
            catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                stderr.WriteLine($"error: host profile '{hostName}': {e.Message}");
                return 1;
            }
            HostView host = ProfileHostView.From(profile);
            MachineCheck check;
            if (args.Length == 1 && args[0].Any(char.IsWhiteSpace))
            {
                // The whole line pasted as one quoted argument: split it as a shell would.
                try
                {
                    check = MachineValidator.Check(QemuCommandLine.SplitShellWords(args[0]), host);
                }
                catch (QemuConfigException e)
                {
                    stderr.WriteLine("error: " + e.Message);
                    return 2;
                }
            }
            else
            {
                check = MachineValidator.Check(args, host);
            }
            if (parse.GetValue(jsonOption)) stdout.WriteLine(ToJson(check, host).ToJsonString(JsonOutput));
            else WriteText(check, host, stdout);
            foreach (string w in check.Warnings) stderr.WriteLine(w);
            if (check.Error is { } error)
            {
                stderr.WriteLine("error: " + error.Message);
                return 2;
            }
            return 0;
        });
        return cmd;
    }

    private static void WriteText(MachineCheck check, HostView host, TextWriter o)
    {
        o.WriteLine(check.Accepted
            ? $"accepted: QEMU 11.1 would accept this command line, and {host.Description} can back it."
            : $"refused on {host.Description} (see the error line).");
        if (!check.Accepted) return;
        if (check.Vsmmus.Count > 0) o.WriteLine("vSMMUs:");
        foreach (VsmmuCheck v in check.Vsmmus)
        {
            o.WriteLine($"  {v.Name}: primary-bus {v.RootBus}, buses {v.BusRange}, accel={(v.Accel ? "on" : "off")}" +
                (v.Resolved?.PhysicalSmmu is { } p ? $", physical SMMU {p}" : ""));
            if (v.Resolved is { } r)
                o.WriteLine($"    stage={Word(r.Stage)} ats={OnOff(r.Ats)} ({Src(r, "ats")}) ril={OnOff(r.Ril)} ({Src(r, "ril")}) " +
                    $"ssidsize={r.SsidSize} ({Src(r, "ssidsize")}) oas={r.OasBits} ({Src(r, "oas")}) cmdqv={OnOff(r.Cmdqv)} ({Src(r, "cmdqv")})");
        }
        if (check.Devices.Count > 0) o.WriteLine("devices:");
        foreach (DeviceCheck d in check.Devices)
        {
            string host1 = d.HostAddress is null ? "" : $", host {d.HostAddress} on physical SMMU {d.PhysicalSmmu}" +
                (d.AtsExposed is { } ats ? $", ATS {(ats ? "exposed" : "hidden")}" : "");
            o.WriteLine($"  {d.Name} ({d.Device.Driver}): bus {d.Bus} slot {d.Devfn}, StreamID 0x{d.StreamId:x4}, vSMMU {d.Vsmmu ?? "none"}{host1}");
        }
        var unmodelled = NotModelled(check.Spec).ToList();
        if (unmodelled.Count > 0) o.WriteLine("not modelled (kept as written): " + string.Join("; ", unmodelled));
    }

    private static IEnumerable<string> NotModelled(MachineSpec spec) =>
        spec.Unmodelled.Select(u => u.Quote())
            .Concat(spec.Devices.OfType<OtherDevice>().Select(d => d.Quote()))
            .Concat(spec.Objects.OfType<OtherObject>().Select(x => x.Quote()));

    private static string OnOff(bool b) => b ? "on" : "off";
    private static string Word(SmmuStage s) => s switch { SmmuStage.Stage2 => "2", SmmuStage.Nested => "nested", _ => "1" };
    private static string Src(ResolvedSmmuProperties r, string key) => r.Sources.TryGetValue(key, out PropertySource s)
        ? s switch { PropertySource.Host => "from host", PropertySource.ModelDefault => "model default", _ => "given" } : "";

    private static JsonObject ToJson(MachineCheck check, HostView host)
    {
        var vsmmus = new JsonArray();
        foreach (VsmmuCheck v in check.Vsmmus)
        {
            var o = new JsonObject
            {
                ["name"] = v.Name, ["primaryBus"] = v.RootBus, ["busMin"] = v.BusRange.Min, ["busMax"] = v.BusRange.Max,
                ["accel"] = v.Accel, ["identifier"] = v.Device?.Identifier,
            };
            if (v.Resolved is { } r)
            {
                o["physicalSmmu"] = r.PhysicalSmmu;
                o["stage"] = Word(r.Stage);
                o["ats"] = r.Ats;
                o["ril"] = r.Ril;
                o["ssidsize"] = r.SsidSize;
                o["oas"] = r.OasBits;
                o["cmdqv"] = r.Cmdqv;
                var sources = new JsonObject();
                foreach ((string k, PropertySource s) in r.Sources.OrderBy(x => x.Key, StringComparer.Ordinal))
                    sources[k] = s switch { PropertySource.Host => "host", PropertySource.ModelDefault => "model-default", _ => "given" };
                o["sources"] = sources;
            }
            vsmmus.Add(o);
        }
        var devices = new JsonArray();
        foreach (DeviceCheck d in check.Devices)
        {
            devices.Add(new JsonObject
            {
                ["name"] = d.Name, ["driver"] = d.Device.Driver, ["bus"] = d.Bus, ["slot"] = d.Devfn.ToString(),
                ["streamId"] = d.StreamId, ["vsmmu"] = d.Vsmmu, ["hostAddress"] = d.HostAddress, ["physicalSmmu"] = d.PhysicalSmmu,
                ["atsExposed"] = d.AtsExposed,
            });
        }
        return new JsonObject
        {
            ["verdict"] = check.Accepted ? "accepted" : "refused",
            ["host"] = host.Description,
            ["error"] = check.Error?.Message,
            ["warnings"] = new JsonArray([.. check.Warnings.Select(w => (JsonNode?)JsonValue.Create(w))]),
            ["vsmmus"] = vsmmus,
            ["devices"] = devices,
            ["notModelled"] = new JsonArray([.. NotModelled(check.Spec).Select(s => (JsonNode?)JsonValue.Create(s))]),
            ["machine"] = JsonNode.Parse(MachineSpecJson.Write(check.Spec)),
        };
    }
}
