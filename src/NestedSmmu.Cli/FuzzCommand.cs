using System.CommandLine;
using System.Text.Json;
using NestedSmmu.Cli.Fuzz;
using CliCommand = System.CommandLine.Command;

namespace NestedSmmu.Cli;

/// <summary>
/// `nestedsmmu fuzz [--seed N] [--ops M] [--json] [--counterexample FILE] [--replay FILE]`: the VM-level
/// isolation campaign (<see cref="IsolationCampaign"/>). Exit 0 when no invariant broke; 1 on a finding,
/// after shrinking the failing operations into a replayable counterexample file; 2 for bad input.
/// </summary>
internal static class FuzzCommand
{
    /// <summary>Where the counterexample goes unless --counterexample says otherwise (the working directory).</summary>
    public static string DefaultCounterexamplePath(int seed) => $"fuzz-counterexample-seed{seed}.json";

    public static CliCommand Create(TextWriter stdout, TextWriter stderr) => Create(stdout, stderr, CampaignOptions.Default);

    /// <summary>The command with campaign options (tests inject a fault through them; the CLI never does).</summary>
    internal static CliCommand Create(TextWriter stdout, TextWriter stderr, CampaignOptions options)
    {
        var seedOption = new Option<int>("--seed") { Description = "Seeds the generator: a seed and an operation count replay a run exactly.", DefaultValueFactory = _ => 1 };
        var opsOption = new Option<long>("--ops") { Description = "Guest operations to run (both VMs together).", DefaultValueFactory = _ => 10_000 };
        var jsonOption = new Option<bool>("--json") { Description = "Print {\"seed\", \"operations\", \"violations\", \"crashes\", \"invariants\"} as one JSON object." };
        var outOption = new Option<string?>("--counterexample") { Description = "On a violation, write the shrunk counterexample here (default: fuzz-counterexample-seedN.json)." };
        var replayOption = new Option<string?>("--replay") { Description = "Re-run the operations of a counterexample file (no generator, no shrinking) and report what breaks." };
        var cmd = new CliCommand("fuzz",
            $"Isolation campaign: two VMs on the emulated host '{IsolationCampaign.HostName}' share its physical SMMUs; random and adversarial guest " +
            "operations (register writes of every width, valid, malformed and foreign commands, garbage STEs and CDs, device DMA) go through each VM's " +
            "MMIO bus and RAM, and the invariants are checked after every step. On a violation the failing operations are shrunk (delta debugging) " +
            "into a counterexample file that --replay runs again.\n" +
            "Examples:\n  nestedsmmu fuzz --seed 7 --ops 1000\n  nestedsmmu fuzz --seed 1 --ops 1000000 --json\n  nestedsmmu fuzz --replay fuzz-counterexample-seed7.json")
        { seedOption, opsOption, jsonOption, outOption, replayOption };
        cmd.SetAction(parse =>
        {
            int seed = parse.GetValue(seedOption);
            long ops = parse.GetValue(opsOption);
            bool json = parse.GetValue(jsonOption);
            if (ops < 0)
            {
                stderr.WriteLine("error: --ops must be 0 or more");
                return 2;
            }
            FuzzOutcome o;
            if (parse.GetValue(replayOption) is { } replay)
            {
                FuzzCounterexample c;
                try
                {
                    c = FuzzCounterexample.Read(replay);
                }
                catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
                {
                    stderr.WriteLine($"error: --replay: {e.Message}");
                    return 2;
                }
                o = IsolationCampaign.Replay(c, options);
                Print(stdout, o, json, replay);
                foreach (FuzzFinding f in o.Findings)
                    stderr.WriteLine($"FAILED at operation {f.Step} [{f.Vm}] {f.Operation}: {f.Invariant}: {f.Detail}");
                return o.Findings.Any() ? 1 : 0;
            }
            o = IsolationCampaign.Run(seed, ops, options);
            string? written = null;
            if (o.Counterexample is { } ce)
            {
                written = parse.GetValue(outOption) ?? DefaultCounterexamplePath(seed);
                File.WriteAllText(written, ce.ToJson());
            }
            Print(stdout, o, json, null, written);
            foreach (FuzzFinding f in o.Findings)
                stderr.WriteLine($"FAILED at step {f.Step} (replay: nestedsmmu fuzz --seed {o.Seed} --ops {f.Step + 1}) [{f.Vm}] {f.Operation}: {f.Invariant}: {f.Detail}");
            if (written is not null)
                stderr.WriteLine($"counterexample: {o.Counterexample!.Operations.Count} of {o.Counterexample.OriginalOperations} operations " +
                                 $"({o.Counterexample.Invariant}) written to {written}; replay: nestedsmmu fuzz --replay {written}");
            return o.Findings.Any() ? 1 : 0;
        });
        return cmd;
    }

    private static void Print(TextWriter stdout, FuzzOutcome o, bool json, string? replayed, string? counterexample = null)
    {
        if (json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(new
            {
                seed = o.Seed,
                operations = o.Operations,
                violations = o.Violations.Count,
                crashes = o.Crashes.Count,
                invariants = o.Invariants,
                invariant_checks = o.InvariantChecks,
                kinds = o.Kinds,
                findings = o.Findings.Select(f => new { step = f.Step, vm = f.Vm, operation = f.Operation, invariant = f.Invariant, detail = f.Detail }),
                replayed,
                counterexample,
                counterexample_operations = o.Counterexample?.Operations.Count,
            }));
            return;
        }
        stdout.WriteLine($"nestedsmmu fuzz: {(replayed is null ? $"seed {o.Seed}" : $"replay of {replayed}")}, {o.Operations} operations, {o.InvariantChecks} invariant checks, " +
                         $"{o.Violations.Count} violations, {o.Crashes.Count} crashes");
        stdout.WriteLine("  operations: " + string.Join(", ", o.Kinds.Select(k => $"{k.Key} {k.Value}")));
        foreach (string i in o.Invariants) stdout.WriteLine($"  checked: {i}");
    }
}
