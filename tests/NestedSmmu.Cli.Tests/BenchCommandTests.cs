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
        JsonElement inv = doc.RootElement.GetProperty("invalidation");
        inv.GetProperty("estimate_note").GetString()!.ShouldContain("ESTIMATE");
        inv.GetProperty("batches").GetArrayLength().ShouldBe(6, "N = 1, 8, 64 on both paths");
        JsonElement ioas = doc.RootElement.GetProperty("ioas");
        ioas.GetProperty("pages").GetInt32().ShouldBeGreaterThan(0);
        // managed_bytes is the process's heap growth (GC.GetTotalMemory): in a test host other
        // tests run beside it and may free more than the mapping holds, so only its presence is
        // checked here; the bench's own process measures it for real. The thread's own allocation
        // count is not disturbed by other threads.
        ioas.GetProperty("managed_bytes").ValueKind.ShouldBe(JsonValueKind.Number);
        ioas.GetProperty("allocated_bytes").GetInt64().ShouldBeGreaterThan(0, "the mappings and their page tables live on the managed heap");
        ioas.GetProperty("pages").GetInt32().ShouldBe(1 << 16, "--quick maps 64 K pages, and its row names say so");
        ioas.GetProperty("table_pages").GetInt32().ShouldBe(130, "64 K pages: 128 level-3 tables, one level-2, one level-1");
        JsonElement system = doc.RootElement.GetProperty("whole_system");
        (system.GetProperty("vsmmus").GetInt32(), system.GetProperty("devices").GetInt32()).ShouldBe((16, 64));
        system.GetProperty("boot_probe_ns").GetDouble().ShouldBeGreaterThan(0);
        system.GetProperty("dma_ns").GetDouble().ShouldBeGreaterThan(0);
        string[] expected =
        [
            "translate.bare-reads.4k", "translate.chained-reads.4k", "translate.cold-walk-reads-chained.4k", "translate.tlb-hit", "translate.cold-walk.4k", "translate.miss-upper-cached.4k",
            "translate.cold-walk.64k", "translate.cold-walk.4k-2m-block", "commands.bare-reads", "commands.smmu-cmdq",
            "commands.guest-vcmdq", "commands.viommu-invalidate", "ioas.map.64k-pages", "ioas.unmap-all.64k-pages",
            "system.boot-probe.16x4.cold", "system.dma-4k-warm-tlb.16x4",
        ];
        foreach (string name in expected) byName.ShouldContainKey(name);
        // Targets from the issue, and ratios wherever a baseline was timed beside the figure.
        byName["translate.tlb-hit"].GetProperty("target_ns").GetDouble().ShouldBe(5);
        byName["translate.cold-walk.4k"].GetProperty("target_ns").GetDouble().ShouldBe(250);
        byName["translate.cold-walk.4k"].GetProperty("baseline_ratio").GetDouble().ShouldBeGreaterThan(0);
        byName["commands.smmu-cmdq"].GetProperty("target_ns").GetDouble().ShouldBe(1e9 / 30e6, 0.001);
        byName["translate.bare-reads.4k"].GetProperty("baseline_ratio").ValueKind.ShouldBe(JsonValueKind.Null);
        // The chained reads are timed against the bare ones, not used as a baseline themselves.
        byName["translate.chained-reads.4k"].GetProperty("baseline").GetString().ShouldBe("translate.bare-reads.4k");
        byName["translate.cold-walk-reads-chained.4k"].GetProperty("baseline").GetString().ShouldBe("translate.bare-reads.4k");
        // No allocation per operation: one object per translation or command would be 24 B/op or more.
        // Under 1 B/op is what BenchmarkDotNet's memory diagnoser prints as 0 B. Some runs of the cold walk
        // show 0.03-0.06 B/op: a few hundred bytes over a window of thousands of walks, not yet traced to
        // its source (issue 12 keeps it open); a per-walk allocation would be far above this bound.
        foreach (string hot in new[] { "translate.tlb-hit", "translate.cold-walk.4k", "translate.miss-upper-cached.4k", "commands.smmu-cmdq", "commands.guest-vcmdq" })
            byName[hot].GetProperty("allocated_bytes_per_op").GetDouble().ShouldBeLessThan(1, hot);
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

/// <summary>The invalidation comparison's counts: what each path costs in exits, ioctls and host commands.</summary>
public sealed class InvalidationCostTests
{
    [Theory]
    [InlineData(1, 2)]
    [InlineData(8, 9)]
    // 64 commands leave the kernel as two batches (63 + 1), each ended by its own CMD_SYNC.
    [InlineData(64, 66)]
    public void Trapped_path_costs_two_exits_and_one_ioctl_per_batch(int n, long hostCommands)
    {
        InvalidationCounts c = InvalidationCost.Trapped(n);
        (c.VmExits, c.Ioctls, c.HostCommands, c.Doorbells).ShouldBe((2L, 1L, hostCommands, 0L), "the CMDQ_PROD doorbell and the CONS poll trap; one IOMMU_HWPT_INVALIDATE");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(64)]
    public void Direct_path_costs_no_exit_and_no_ioctl(int n)
    {
        InvalidationCounts c = InvalidationCost.Direct(n);
        (c.VmExits, c.Ioctls, c.HostCommands, c.Doorbells).ShouldBe((0L, 0L, n + 1L, 1L), "the guest's commands and its CMD_SYNC run as written, one doorbell");
    }

    [Fact]
    public void The_estimate_is_the_weighted_sum_of_the_counts()
    {
        var model = new InvalidationCostModel(VmExitNs: 10, IoctlNs: 100, HostCommandNs: 1000, MmioDoorbellNs: 10000);
        model.EstimateNs(new InvalidationCounts("trapped", 1, 2, 1, 2, 0, 0)).ShouldBe(2120);
        model.EstimateNs(new InvalidationCounts("direct", 1, 0, 0, 2, 1, 0)).ShouldBe(12000);
    }
}
