using NestedSmmu.Hardware.Scenarios;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Hardware.Tests.Scenarios;

/// <summary>Every scenario and result in shared/vectors/scenarios reads, and writes back unchanged.</summary>
public class SharedVectorTests
{
    [Fact]
    public void Shared_vectors_are_present()
    {
        Directory.EnumerateFiles(SharedVectors.ScenarioDirectory, "*.json").ShouldNotBeEmpty();
    }

    [Theory]
    [MemberData(nameof(SharedVectors.ScenarioFiles), MemberType = typeof(SharedVectors))]
    public void Scenario_parses_and_round_trips(string file)
    {
        var scenario = ScenarioReader.ReadFile(SharedVectors.PathOf(file));

        scenario.Format.ShouldBe(Scenario.FormatName);
        scenario.Writes.ShouldNotBeEmpty();
        scenario.Accesses.ShouldNotBeEmpty();
        ScenarioReader.Parse(ScenarioWriter.ToJson(scenario)).ShouldBe(scenario);
    }

    [Theory]
    [MemberData(nameof(SharedVectors.ResultFiles), MemberType = typeof(SharedVectors))]
    public void Result_reads_and_rewrites_byte_for_byte(string file)
    {
        string path = SharedVectors.PathOf(file);
        string text = File.ReadAllText(path);
        var result = ScenarioResultReader.ReadFile(path);

        string rewritten = ScenarioResultWriter.ToJson(result);

        // The writer follows the *.intended.json files, which end at the closing brace; the
        // *.qemu.json files come from another tool that adds a final newline.
        rewritten.ShouldBe(text.EndsWith('\n') ? text[..^1] : text);
        ScenarioResultReader.Parse(rewritten).ShouldBe(result);
    }

    [Theory]
    [MemberData(nameof(SharedVectors.ResultFiles), MemberType = typeof(SharedVectors))]
    public void Result_has_one_entry_per_access(string file)
    {
        var result = ScenarioResultReader.ReadFile(SharedVectors.PathOf(file));
        var scenario = ScenarioReader.ReadFile(SharedVectors.PathOf(SharedVectors.ScenarioOf(file)));

        result.Results.Count.ShouldBe(scenario.Accesses.Count);
    }

    [Fact]
    public void Nested_example_reads_as_written()
    {
        // probe-qemu-example-nested.json: QEMU's iommu-smmuv3-test nested example.
        var s = ScenarioReader.ReadFile(SharedVectors.PathOf("probe-qemu-example-nested.json"));

        s.Description.ShouldBe("QEMU's own iommu-smmuv3-test example, nested");
        s.Idr[SmmuRegister.IDR0].ShouldBe(0x0D44101Bu);
        s.Idr[SmmuRegister.IDR5].ShouldBe(0x74u);
        s.Idr.ContainsKey(SmmuRegister.IDR2).ShouldBeFalse();
        s.Writes[1].ShouldBe(new RegisterWrite(SmmuRegister.STRTAB_BASE, 0x40000000, 64));
        s.Writes[2].ShouldBe(new RegisterWrite(SmmuRegister.STRTAB_BASE_CFG, 0x5));
        s.Memory[0].Address.ShouldBe(0x40000400UL);
        s.Memory[0].Qwords.ToArray().ShouldBe([0x000000004100800fUL, 0x00001000000000d4UL, 0x040d359400000001UL, 0x0000000041000000UL]);
        s.Accesses[0].ShouldBe(new Access(0x10, null, 0x8080604567, AccessKind.Write));
        s.Accesses[1].Kind.ShouldBe(AccessKind.Read);
    }

    [Fact]
    public void Fault_vector_reads_as_written()
    {
        // probe-l1-span.intended.json: entry 1 is C_BAD_STREAMID for SID 0x41.
        var r = ScenarioResultReader.ReadFile(SharedVectors.PathOf("probe-l1-span.intended.json"));

        r.Results[0].ShouldBe(new AccessResult.Pa(0x4b000000));
        var fault = r.Results[1].ShouldBeOfType<AccessResult.Fault>();
        fault.Name.ShouldBe("C_BAD_STREAMID");
        fault.Stage.ShouldBe(1);
        fault.Event.ShouldBe([0x0000004100000002UL, 0, 0, 0]);
        r.TryGetExtraMember("tags", out var tags).ShouldBeTrue();
        tags.GetArrayLength().ShouldBe(3);
    }

    [Fact]
    public void Abort_vector_reads_as_written()
    {
        // probe-s2-ias.qemu.json ends with an access QEMU aborts without an event.
        var r = ScenarioResultReader.ReadFile(SharedVectors.PathOf("probe-s2-ias.qemu.json"));

        r.Results.ShouldContain(AccessResult.Abort.Instance);
    }
}
