using NestedSmmu.Scenarios;
using NestedSmmu.Tests.Common;

namespace NestedSmmu.Cli.Tests;

/// <summary>
/// NestedSmmu against QEMU 11.1.3's own SMMUv3 model on scenarios where the two should agree
/// (none of the places where QEMU departs from IHI 0070, listed in docs/ARCHITECTURE.md, applies). The .qemu.json files
/// are QEMU's output, made by the maintainer tool tools/qemu-vectors/make-vectors.sh (tests/vectors/README.md).
/// </summary>
public sealed class QemuComparisonTests
{
    private static string VectorDir => TestVectors.DirectoryOf("qemu");

    private static IEnumerable<string> Names() =>
        Directory.GetFiles(VectorDir, "*.json").Where(f => !f.EndsWith(".qemu.json")).Select(f => Path.GetFileNameWithoutExtension(f)).Order();

    public static TheoryData<string> Vectors() => new(Names());

    [Fact]
    public void The_corpus_is_complete()
    {
        var names = Names().ToList();
        names.Count.ShouldBe(48);
        foreach (string n in names) File.Exists(Path.Combine(VectorDir, n + ".qemu.json")).ShouldBeTrue(n);
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Same_result_as_qemu(string name)
    {
        var run = CliRunner.Run("translate", Path.Combine(VectorDir, name + ".json"), "--json");
        run.ExitCode.ShouldBe(0, run.Stderr);
        var qemu = ScenarioResultReader.ReadFile(Path.Combine(VectorDir, name + ".qemu.json"));
        ScenarioResult.FindFirstDifference(qemu, ScenarioResultReader.Parse(run.Stdout)).ShouldBeNull();
    }

    /// <summary>Tracing turns the walker's in-walk stage-2 path reuse off; the outcome must not change.</summary>
    [Theory]
    [MemberData(nameof(Vectors))]
    public void Explaining_does_not_change_the_outcome(string name)
    {
        var scenario = ScenarioReader.ReadFile(Path.Combine(VectorDir, name + ".json"));
        var plain = ScenarioRunner.Run(scenario);
        var traced = ScenarioRunner.Run(scenario, explain: true);
        ScenarioResult.FindFirstDifference(plain.Result, traced.Result).ShouldBeNull();
        traced.Outcomes.ShouldAllBe(o => o.Trace != null && o.Trace.Steps.Count > 0);
    }
}
