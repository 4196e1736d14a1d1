using System.Text.Json;

namespace NestedSmmu.Cli.Tests;

/// <summary>
/// `nestedsmmu bench --json --quick`: the document's shape and the figures it must contain. No
/// timing is asserted (the machine's speed is not the test's business); allocation is, since it
/// does not depend on the machine: steady-state translation and command execution allocate nothing.
/// </summary>
public sealed class BenchCommandTests
{
    [Fact]
    public void Json_has_the_machine_and_every_benchmark_with_median_target_and_baseline_ratio()
    {
        CliRunner.Output o = CliRunner.Run("bench", "--json", "--quick");
        o.ExitCode.ShouldBe(0, o.Stderr);
        using JsonDocument doc = JsonDocument.Parse(o.Stdout);
        JsonElement machine = doc.RootElement.GetProperty("machine");
        machine.ValueKind.ShouldBe(JsonValueKind.Object);
        machine.GetProperty("logical_cpus").GetInt32().ShouldBeGreaterThan(0);
        machine.GetProperty("os").GetString().ShouldNotBeNullOrWhiteSpace();

        var byName = new Dictionary<string, JsonElement>();
        foreach (JsonElement b in doc.RootElement.GetProperty("benchmarks").EnumerateArray())
        {
            string name = b.GetProperty("name").GetString()!;
            byName.Add(name, b);
            b.GetProperty("median_ns").GetDouble().ShouldBeGreaterThan(0, name);
            b.GetProperty("target_ns").ValueKind.ShouldBeOneOf(JsonValueKind.Number, JsonValueKind.Null);
            b.GetProperty("baseline_ratio").ValueKind.ShouldBeOneOf(JsonValueKind.Number, JsonValueKind.Null);
        }
        string[] expected =
        [
            "translate.bare-reads.4k", "translate.tlb-hit", "translate.cold-walk.4k", "translate.miss-upper-cached.4k",
            "translate.cold-walk.64k", "translate.cold-walk.4k-2m-block", "commands.bare-reads", "commands.smmu-cmdq",
            "commands.guest-vcmdq", "commands.viommu-invalidate",
        ];
        foreach (string name in expected) byName.ShouldContainKey(name);
        // Targets from the issue, and ratios wherever a baseline was timed beside the figure.
        byName["translate.tlb-hit"].GetProperty("target_ns").GetDouble().ShouldBe(5);
        byName["translate.cold-walk.4k"].GetProperty("target_ns").GetDouble().ShouldBe(250);
        byName["translate.cold-walk.4k"].GetProperty("baseline_ratio").GetDouble().ShouldBeGreaterThan(0);
        byName["commands.smmu-cmdq"].GetProperty("target_ns").GetDouble().ShouldBe(1e9 / 30e6, 0.001);
        byName["translate.bare-reads.4k"].GetProperty("baseline_ratio").ValueKind.ShouldBe(JsonValueKind.Null);
        foreach (string hot in new[] { "translate.tlb-hit", "translate.cold-walk.4k", "translate.miss-upper-cached.4k", "commands.smmu-cmdq", "commands.guest-vcmdq" })
            byName[hot].GetProperty("allocated_bytes_per_op").GetDouble().ShouldBe(0, hot);
    }

    [Fact]
    public void The_table_names_each_benchmark_and_says_pass_or_miss_where_there_is_a_target()
    {
        CliRunner.Output o = CliRunner.Run("bench", "--quick");
        o.ExitCode.ShouldBe(0, o.Stderr);
        string[] lines = o.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines[0].ShouldContain("median");
        string tlb = lines.Single(l => l.StartsWith("translate.tlb-hit", StringComparison.Ordinal));
        (tlb.TrimEnd().EndsWith("pass", StringComparison.Ordinal) || tlb.TrimEnd().EndsWith("miss", StringComparison.Ordinal)).ShouldBeTrue(tlb);
        lines[^1].ShouldStartWith("machine:");
    }
}
