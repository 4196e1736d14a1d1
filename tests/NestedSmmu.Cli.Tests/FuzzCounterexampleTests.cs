using System.CommandLine;
using NestedSmmu.Cli.Fuzz;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Cli.Tests;

/// <summary>
/// The counterexample path of `nestedsmmu fuzz`, exercised on a real violation: a fault only a test
/// can inject (through <see cref="CampaignOptions.InjectFault"/>) turns off the other VM's vSMMU once
/// VM 0 has made two DMAs and then issues a TLBI_NH_ASID. The shrinker must cut a long failing run
/// down to those few operations, the file must replay the same violation, and the CLI must write it.
/// </summary>
[Collection(CampaignCollection.Name)]
public sealed class FuzzCounterexampleTests
{
    /// <summary>The fault: stateful, so the shrinker has to keep operations that are far apart.</summary>
    private static InjectedFault NewFault()
    {
        int dmas = 0;
        return (op, self, other, _, _) =>
        {
            if (op.Vm != 0) return;
            if (op.Kind == "dma") dmas++;
            if (op.Kind == "command" && new NestedSmmu.Hardware.Smmu.Command(op.W0, op.W1).Opcode == CommandOpcode.TLBI_NH_ASID && dmas >= 2)
                other.Bus.Write(other.Vsmmus[0].Placed.Base + (ulong)SmmuRegister.CR0, 4, 0); // SMMUEN off: the other VM's STEs go to GBPA
        };
    }

    private static readonly CampaignOptions Faulty = new() { InjectFault = NewFault, MaxShrinkTests = 300 };

    [Fact]
    public void A_violation_is_shrunk_to_the_few_operations_that_cause_it_and_replays()
    {
        FuzzOutcome o = IsolationCampaign.Run(seed: 4, operations: 5_000, Faulty);
        o.Violations.ShouldNotBeEmpty();
        o.Violations[0].Invariant.ShouldBe("the other VM's physical STEs are unchanged");
        o.Operations.ShouldBeGreaterThan(20, "the fault needs a history, so the failing run is long before shrinking");
        FuzzCounterexample c = o.Counterexample.ShouldNotBeNull();
        c.OriginalOperations.ShouldBe(o.Operations);
        c.Invariant.ShouldBe(o.Violations[0].Invariant);
        // Two DMAs of VM 0 and its TLBI_NH_ASID are all it takes (1-minimal: nothing else can go).
        c.Operations.Count.ShouldBe(3, string.Join("\n", c.Operations));
        c.Operations.Count(op => op.Kind == "dma" && op.Vm == 0).ShouldBe(2);
        c.Operations[^1].Kind.ShouldBe("command");

        // The file round-trips and replays the same violation; without the fault the same operations are clean.
        string path = CliRunner.TempFile("ce.json", c.ToJson());
        FuzzCounterexample read = FuzzCounterexample.Read(path);
        read.Operations.ShouldBe(c.Operations);
        read.Versions.ShouldContainKey("nestedsmmu");
        FuzzOutcome replayed = IsolationCampaign.Replay(read, Faulty);
        replayed.Violations.Select(v => v.Invariant).ShouldContain(c.Invariant);
        IsolationCampaign.Replay(read).Findings.ShouldBeEmpty();
    }

    [Fact]
    public void The_cli_writes_the_counterexample_and_replay_reports_the_same_violation()
    {
        string dir = Path.GetDirectoryName(CliRunner.TempFile("x", ""))!;
        string path = Path.Combine(dir, "ce.json");
        var (code, stdout, stderr) = Invoke(Faulty, "fuzz", "--seed", "4", "--ops", "5000", "--counterexample", path);
        code.ShouldBe(1, stdout);
        stderr.ShouldContain("counterexample: 3 of ");
        stderr.ShouldContain($"nestedsmmu fuzz --replay {path}");
        File.Exists(path).ShouldBeTrue();

        var (replayCode, replayOut, replayErr) = Invoke(Faulty, "fuzz", "--replay", path);
        replayCode.ShouldBe(1, replayOut);
        replayOut.ShouldContain("replay of");
        replayErr.ShouldContain("the other VM's physical STEs are unchanged");

        // The real CLI (no fault) replays the same file clean: the violation was the injected fault's.
        CliRunner.Output clean = CliRunner.Run("fuzz", "--replay", path, "--json");
        clean.ExitCode.ShouldBe(0, clean.Stderr);
        clean.Stdout.ShouldContain("\"operations\":3");
    }

    [Fact]
    public void A_clean_run_writes_no_file_and_a_bad_replay_file_is_refused_with_its_field()
    {
        CliRunner.Output bad = CliRunner.Run("fuzz", "--replay", CliRunner.TempFile("bad.json",
            """{"format":"nestedsmmu-fuzz-counterexample/1","seed":1,"host":"grace","versions":{},"invariant":"","detail":"","original_operations":1,"operations":[{"kind":"dma","vm":7}]}"""));
        bad.ExitCode.ShouldBe(2);
        bad.Stderr.ShouldContain("$.operations[0].vm is 7");
        CliRunner.Output wrong = CliRunner.Run("fuzz", "--replay", CliRunner.TempFile("wrong.json", """{"format":"x"}"""));
        wrong.ExitCode.ShouldBe(2);
        wrong.Stderr.ShouldContain("$.format");
        CliRunner.Output unknown = CliRunner.Run("fuzz", "--replay", CliRunner.TempFile("unknown.json",
            """{"format":"nestedsmmu-fuzz-counterexample/1","seed":1,"host":"grace","versions":{},"invariant":"","detail":"","original_operations":1,"operations":[{"kind":"teleport","vm":0}]}"""));
        unknown.ExitCode.ShouldBe(1);
        unknown.Stderr.ShouldContain("unknown operation kind 'teleport'");
    }

    private static (int Code, string Stdout, string Stderr) Invoke(CampaignOptions options, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var root = new RootCommand { FuzzCommand.Create(stdout, stderr, options) };
        int code = root.Parse(args).Invoke(new InvocationConfiguration { Output = stdout, Error = stderr });
        return (code, stdout.ToString(), stderr.ToString());
    }
}
