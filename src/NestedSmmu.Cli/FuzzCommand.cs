using System.CommandLine;
using System.Text.Json;
using NestedSmmu.Cli.Fuzz;
using CliCommand = System.CommandLine.Command;

namespace NestedSmmu.Cli;

/// <summary>
/// `nestedsmmu fuzz [--seed N] [--ops M] [--json]`: the VM-level isolation campaign
/// (<see cref="IsolationCampaign"/>). Exit 0 when no invariant broke, 1 naming the failing step and
/// seed (the seed and the step index replay it), 2 for bad input.
/// </summary>
internal static class FuzzCommand
{
    public static CliCommand Create(TextWriter stdout, TextWriter stderr)
    {
        var seedOption = new Option<int>("--seed") { Description = "Seeds the generator: a seed and an operation count replay a run exactly.", DefaultValueFactory = _ => 1 };
        var opsOption = new Option<long>("--ops") { Description = "Guest operations to run (both VMs together).", DefaultValueFactory = _ => 10_000 };
        var jsonOption = new Option<bool>("--json") { Description = "Print {\"seed\", \"operations\", \"violations\", \"crashes\", \"invariants\"} as one JSON object." };
        var cmd = new CliCommand("fuzz",
            $"Isolation campaign: two VMs on the emulated host '{IsolationCampaign.HostName}' share its physical SMMUs; random and adversarial guest " +
            "operations (register writes of every width, valid, malformed and foreign commands, garbage STEs and CDs, device DMA) go through each VM's " +
            "MMIO bus and RAM, and the invariants are checked after every step.\n" +
            "Examples:\n  nestedsmmu fuzz --seed 7 --ops 1000\n  nestedsmmu fuzz --seed 1 --ops 1000000 --json")
        { seedOption, opsOption, jsonOption };
        cmd.SetAction(parse =>
        {
            int seed = parse.GetValue(seedOption);
            long ops = parse.GetValue(opsOption);
            if (ops < 0)
            {
                stderr.WriteLine("error: --ops must be 0 or more");
                return 2;
            }
            FuzzOutcome o = IsolationCampaign.Run(seed, ops);
            if (parse.GetValue(jsonOption))
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
                    findings = o.Violations.Concat(o.Crashes).Select(f => new { step = f.Step, vm = f.Vm, operation = f.Operation, invariant = f.Invariant, detail = f.Detail }),
                }));
            }
            else
            {
                stdout.WriteLine($"nestedsmmu fuzz: seed {o.Seed}, {o.Operations} operations, {o.InvariantChecks} invariant checks, " +
                                 $"{o.Violations.Count} violations, {o.Crashes.Count} crashes");
                stdout.WriteLine("  operations: " + string.Join(", ", o.Kinds.Select(k => $"{k.Key} {k.Value}")));
                foreach (string i in o.Invariants) stdout.WriteLine($"  checked: {i}");
            }
            foreach (FuzzFinding f in o.Violations.Concat(o.Crashes))
                stderr.WriteLine($"FAILED at step {f.Step} (replay: nestedsmmu fuzz --seed {o.Seed} --ops {f.Step + 1}) [{f.Vm}] {f.Operation}: {f.Invariant}: {f.Detail}");
            return o.Violations.Count + o.Crashes.Count == 0 ? 0 : 1;
        });
        return cmd;
    }
}
