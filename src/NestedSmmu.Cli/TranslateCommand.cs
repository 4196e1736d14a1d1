using System.CommandLine;
using CliCommand = System.CommandLine.Command;
using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Scenarios;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Cli;

/// <summary>
/// `nestedsmmu translate`: replays an SMMU's state (a scenario, or a register list and memory
/// images from a dump) on the hardware model and prints where each access went, or why it faulted.
/// </summary>
internal static class TranslateCommand
{
    public static CliCommand Create(TextWriter stdout, TextWriter stderr)
    {
        var scenarioArg = new Argument<FileInfo?>("scenario")
        {
            Description = "A nestedsmmu-scenario/1 JSON file (omit with --from-dump).",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var json = new Option<bool>("--json") { Description = "Print the nestedsmmu-result/1 JSON (explanations, if asked for, go to stderr)." };
        var explain = new Option<bool>("--explain") { Description = "Show every step of each translation: STE, CD, each table level (with its stage-2 walk when nested), permissions, output or fault." };
        var output = new Option<FileInfo?>("--out", "-o") { Description = "Also write the result JSON to this file." };
        var expect = new Option<FileInfo?>("--expect") { Description = "Compare with an expected nestedsmmu-result/1 file (e.g. a .intended.json); exit 1 on the first difference." };
        var fromDump = new Option<bool>("--from-dump") { Description = "Build the state from --registers and --memory instead of a scenario." };
        var registers = new Option<FileInfo?>("--registers") { Description = "With --from-dump: register list, one 'NAME = VALUE' (or 'OFFSET = VALUE') per line, '#' comments; ID registers override the defaults." };
        var memory = new Option<string[]>("--memory")
        {
            Description = "With --from-dump: a raw memory image and the physical address of its first byte, as FILE@ADDRESS (repeatable).",
            AllowMultipleArgumentsPerToken = false,
        };
        var access = new Option<string[]>("--access")
        {
            Description = "With --from-dump: an access as SID[/SSID]:IOVA[:read|write] (hex with 0x, or decimal; default write; repeatable).",
        };

        var cmd = new CliCommand("translate", "Replay an SMMU's state offline and explain every translation step.\n" +
            "Examples:\n  nestedsmmu translate scenario.json --explain\n" +
            "  nestedsmmu translate --from-dump --registers regs.txt --memory ram.bin@0x80000000 --access 0x100:0x400000:read --json")
        {
            scenarioArg, json, explain, output, expect, fromDump, registers, memory, access,
        };
        cmd.SetAction(parse =>
        {
            try
            {
                var mem = new SparseMemory();
                Scenario scenario;
                string source;
                if (parse.GetValue(fromDump))
                {
                    if (parse.GetValue(scenarioArg) is not null) return Fail(stderr, "--from-dump takes --registers/--memory/--access, not a scenario file.");
                    scenario = BuildFromDump(parse.GetValue(registers), parse.GetValue(memory) ?? [], parse.GetValue(access) ?? [], mem, stderr);
                    source = "dump";
                }
                else
                {
                    var file = parse.GetValue(scenarioArg);
                    if (file is null) return Fail(stderr, "Give a scenario file, or --from-dump with --registers, --memory and --access.");
                    if (parse.GetValue(registers) is not null || (parse.GetValue(memory)?.Length ?? 0) > 0 || (parse.GetValue(access)?.Length ?? 0) > 0)
                        return Fail(stderr, "--registers, --memory and --access need --from-dump.");
                    if (!file.Exists) return Fail(stderr, $"{file.FullName}: no such file.");
                    scenario = ScenarioReader.ReadFile(file.FullName);
                    source = file.Name;
                }

                bool wantExplain = parse.GetValue(explain);
                var run = ScenarioRunner.Run(scenario, mem, wantExplain);
                foreach (var w in run.Warnings) stderr.WriteLine($"warning: {w}");
                var result = run.Result;
                bool asJson = parse.GetValue(json);
                if (asJson)
                {
                    stdout.WriteLine(ScenarioResultWriter.ToJson(result));
                    if (wantExplain) PrintHuman(stderr, source, run, true);
                }
                else
                {
                    PrintHuman(stdout, source, run, wantExplain);
                }
                if (parse.GetValue(output) is { } outFile) File.WriteAllText(outFile.FullName, ScenarioResultWriter.ToJson(result));
                if (parse.GetValue(expect) is { } expFile)
                {
                    var expected = ScenarioResultReader.ReadFile(expFile.FullName);
                    string? diff = ScenarioResult.FindFirstDifference(expected, result);
                    if (diff is not null)
                    {
                        stderr.WriteLine($"mismatch with {expFile.Name}: {diff}");
                        return 1;
                    }
                    (asJson ? stderr : stdout).WriteLine($"matches {expFile.Name} ({result.Results.Count} accesses)");
                }
                return 0;
            }
            catch (Exception e) when (e is ScenarioFormatException or DumpFormatException or FormatException
                or IOException or UnauthorizedAccessException or ArgumentException)
            {
                return Fail(stderr, e.Message);
            }
        });
        return cmd;
    }

    private static int Fail(TextWriter stderr, string message)
    {
        stderr.WriteLine($"error: {message}");
        return 2;
    }

    private static Scenario BuildFromDump(FileInfo? registers, string[] images, string[] accesses, SparseMemory mem, TextWriter stderr)
    {
        if (registers is null) throw new FormatException("--from-dump needs --registers FILE.");
        if (accesses.Length == 0) throw new FormatException("--from-dump needs at least one --access SID[/SSID]:IOVA[:read|write].");
        var dump = DumpInput.ReadRegisterList(registers.FullName);
        foreach (string spec in images)
        {
            int at = spec.LastIndexOf('@');
            if (at <= 0 || at == spec.Length - 1) throw new FormatException($"--memory '{spec}': expected FILE@ADDRESS.");
            string path = spec[..at];
            ulong baseAddress = ParseNumber(spec[(at + 1)..], $"--memory '{spec}' address");
            var info = DumpInput.LoadMemoryImage(path, baseAddress, mem);
            stderr.WriteLine($"loaded {Path.GetFileName(path)}: {info.Length:#,0} bytes at 0x{info.Base:X} ({info.ZeroPiecesSkipped:#,0} zero pages skipped)");
        }
        return new Scenario
        {
            Description = $"dump from {registers.Name}",
            Idr = dump.Idr,
            Writes = dump.Writes,
            Accesses = accesses.Select(ParseAccess).ToList(),
        };
    }

    /// <summary>SID[/SSID]:IOVA[:read|write]</summary>
    internal static Access ParseAccess(string spec)
    {
        string[] parts = spec.Split(':');
        if (parts.Length is < 2 or > 3) throw new FormatException($"--access '{spec}': expected SID[/SSID]:IOVA[:read|write].");
        string[] ids = parts[0].Split('/');
        if (ids.Length > 2) throw new FormatException($"--access '{spec}': expected SID or SID/SSID before the first ':'.");
        ulong sid = ParseNumber(ids[0], $"--access '{spec}' SID");
        if (sid > uint.MaxValue) throw new FormatException($"--access '{spec}': SID 0x{sid:X} does not fit 32 bits.");
        uint? ssid = null;
        if (ids.Length == 2)
        {
            ulong s = ParseNumber(ids[1], $"--access '{spec}' SSID");
            if (s >= 1UL << Access.SsidBits) throw new FormatException($"--access '{spec}': SSID 0x{s:X} does not fit {Access.SsidBits} bits.");
            ssid = (uint)s;
        }
        ulong iova = ParseNumber(parts[1], $"--access '{spec}' IOVA");
        var kind = parts.Length == 3 ? parts[2].ToLowerInvariant() switch
        {
            "read" or "r" => AccessKind.Read,
            "write" or "w" => AccessKind.Write,
            _ => throw new FormatException($"--access '{spec}': '{parts[2]}' is not read or write."),
        } : AccessKind.Write;
        return new Access((uint)sid, ssid, iova, kind);
    }

    private static ulong ParseNumber(string text, string what) =>
        JsonNumber.TryParse(text.Trim(), out ulong v, out string? error) ? v : throw new FormatException($"{what}: {error}");

    private static void PrintHuman(TextWriter w, string source, ScenarioRun run, bool explain)
    {
        var f = run.Features;
        w.WriteLine($"{source}: SMMU IDR0 0x{f.Idr0:X8} IDR1 0x{f.Idr1:X8} IDR3 0x{f.Idr3:X8} IDR5 0x{f.Idr5:X8} " +
                    $"(stage {(f.Nesting ? "1+2" : f.Stage1 ? "1" : "2")}, OAS {f.OasBits} bits, SIDSIZE {f.SidBits}, SSIDSIZE {f.SsidBits})");
        int i = 0;
        foreach (var o in run.Outcomes)
        {
            var a = o.Access;
            string who = $"#{i++} SID 0x{a.Sid:X}{(a.Ssid is { } s ? $"/SSID 0x{s:X}" : "")} {a.Kind.ToString().ToLowerInvariant()} 0x{a.Iova:X}";
            w.WriteLine($"{who} -> {Describe(o)}");
            if (explain && o.Trace is { } t)
            {
                foreach (var step in t.Steps)
                {
                    string indent = new(' ', 4 + 4 * step.Depth);
                    string where = step.Address != 0 || step.Kind is "descriptor" or "ste" or "cd" ? $"[0x{step.Address:X}] " : "";
                    string stage = step.Stage > 0 ? $"S{step.Stage} " : "";
                    string level = step.Level >= 0 ? $"L{step.Level} " : "";
                    string value = step.Kind is "descriptor" or "l1std" or "l1cd" or "update" ? $"= 0x{step.Value:X16} " : "";
                    w.WriteLine($"{indent}{step.Kind,-12} {stage}{level}{where}{value}{step.Detail}");
                }
            }
        }
    }

    private static string Describe(AccessOutcome o)
    {
        var t = o.Translation;
        return t.Status switch
        {
            TranslationStatus.Success => $"PA 0x{t.PhysicalAddress:X} ({t.Permissions})",
            TranslationStatus.Abort => "ABORT (terminated without an event)",
            _ => $"{t.Event.Type} (stage {t.Stage}), event " + (t.Recorded
                ? string.Join(" ", t.Event.ToArray().Select(x => $"0x{x:X16}"))
                : "not recorded (event queue off or full)"),
        };
    }
}
