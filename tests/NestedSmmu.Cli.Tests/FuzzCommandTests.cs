using System.Text.Json;

namespace NestedSmmu.Cli.Tests;

/// <summary>
/// `nestedsmmu fuzz`: a fixed seed (as CI runs it) breaks no invariant, the JSON has the documented
/// shape, the run exercised what the invariants are about (so the checks are not vacuous), and a
/// seed replays exactly.
/// </summary>
[Collection(CampaignCollection.Name)]
public sealed class FuzzCommandTests
{
    private const string Ops = "400";

    [Fact]
    public void A_fixed_seed_breaks_no_invariant_and_prints_the_documented_json()
    {
        CliRunner.Output o = CliRunner.Run("fuzz", "--seed", "1", "--ops", Ops, "--json");
        o.ExitCode.ShouldBe(0, o.Stderr);
        using JsonDocument doc = JsonDocument.Parse(o.Stdout);
        JsonElement r = doc.RootElement;
        r.GetProperty("seed").GetInt32().ShouldBe(1);
        r.GetProperty("operations").GetInt64().ShouldBe(long.Parse(Ops));
        r.GetProperty("violations").GetInt32().ShouldBe(0, o.Stderr);
        r.GetProperty("crashes").GetInt32().ShouldBe(0, o.Stderr);
        var invariants = r.GetProperty("invariants").EnumerateArray().Select(e => e.GetString()!).ToList();
        invariants.ShouldContain("the other VM's TLB entries are unchanged");
        invariants.ShouldContain("DMA lands only in the VM's own stage-2 mapped RAM");
        invariants.ShouldContain("destroying both VMs succeeds and returns every host page");

        // What the invariants watch really happened: translated DMA, consumed commands, foreign TLB entries present.
        JsonElement kinds = r.GetProperty("kinds");
        kinds.GetProperty("dma translated").GetInt64().ShouldBeGreaterThan(0);
        kinds.GetProperty("dma faulted").GetInt64().ShouldBeGreaterThan(0);
        kinds.GetProperty("command (consumed)").GetInt64().ShouldBeGreaterThan(0);
        kinds.GetProperty("(other VM's TLB entries watched)").GetInt64().ShouldBeGreaterThan(0);
        kinds.GetProperty("(other VM's walk-cache entries watched)").GetInt64().ShouldBeGreaterThan(0);
        kinds.GetProperty("(other VM's ATC entries watched)").GetInt64().ShouldBeGreaterThan(0);
        kinds.GetProperty("(faults for the guest)").GetInt64().ShouldBeGreaterThan(0);
        kinds.GetProperty("(guest VINTF commands checked)").GetInt64().ShouldBeGreaterThan(0);
        kinds.GetProperty("vcmdq (consumed)").GetInt64().ShouldBeGreaterThan(0);
        invariants.ShouldContain("no command of one VM changes the other VM's walk-cache entries");
        invariants.ShouldContain("each VM's iommufd object table stays consistent after every step (refcounts, live references)");
    }

    [Fact]
    public void A_seed_replays_exactly_and_the_text_output_names_the_counts()
    {
        CliRunner.Output first = CliRunner.Run("fuzz", "--seed", "5", "--ops", "150");
        CliRunner.Output again = CliRunner.Run("fuzz", "--seed", "5", "--ops", "150");
        first.ExitCode.ShouldBe(0, first.Stderr);
        again.Stdout.ShouldBe(first.Stdout);
        first.Stdout.ShouldContain("seed 5, 150 operations");
        first.Stdout.ShouldContain("0 violations, 0 crashes");
    }

    [Fact]
    public void Help_has_an_example_and_bad_ops_is_refused()
    {
        CliRunner.Output help = CliRunner.Run("fuzz", "--help");
        help.Stdout.ShouldContain("nestedsmmu fuzz --seed");
        CliRunner.Output bad = CliRunner.Run("fuzz", "--ops", "-3");
        bad.ExitCode.ShouldBe(2);
        bad.Stderr.ShouldContain("--ops");
    }

    [Fact]
    public void Devices_are_unplugged_and_hot_plugged_and_a_vIOMMU_is_torn_down_with_its_queues_running()
    {
        CliRunner.Output o = CliRunner.Run("fuzz", "--seed", "1", "--ops", "3000", "--json");
        o.ExitCode.ShouldBe(0, o.Stderr);
        using JsonDocument doc = JsonDocument.Parse(o.Stdout);
        JsonElement kinds = doc.RootElement.GetProperty("kinds");
        long Kind(string k) => kinds.TryGetProperty(k, out JsonElement e) ? e.GetInt64() : 0;
        Kind("unplug").ShouldBeGreaterThan(0);
        Kind("unplug (refused)").ShouldBeGreaterThan(0, "QEMU keeps the device that made a CMDQV vIOMMU");
        (Kind("hotplug (consumed)") + Kind("hotplug (not consumed)")).ShouldBeGreaterThan(0);
        Kind("viommu-teardown").ShouldBeGreaterThan(0);
    }
}
