using NestedSmmu.Scenarios;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Scenarios.Tests;

/// <summary>Every scenario and result in tests/vectors/scenarios reads, and writes back unchanged.</summary>
public class SharedVectorTests
{
    [Fact]
    public void Probe_vectors_are_present()
    {
        Directory.EnumerateFiles(SharedVectors.ScenarioDirectory, "*.json").Count().ShouldBe(44);
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
        // probe-s1-fault-priority.intended.json: every entry is a fault record of four words.
        var r = ScenarioResultReader.ReadFile(SharedVectors.PathOf("probe-s1-fault-priority.intended.json"));

        r.Results.ShouldNotBeEmpty();
        foreach (var entry in r.Results)
        {
            var fault = entry.ShouldBeOfType<AccessResult.Fault>();
            fault.Name.ShouldStartWith("F_");
            fault.Event.Count.ShouldBe(4);
        }
    }

    [Fact]
    public void Corrected_l1_span_vector_reads_as_written()
    {
        // probe-l1-span.intended.json (corrected to IHI 0070 7.3.3: no C_BAD_STREAMID without
        // CR2.RECINVSID): the first access translates, the two StreamIDs past the span abort.
        var r = ScenarioResultReader.ReadFile(SharedVectors.PathOf("probe-l1-span.intended.json"));

        r.Results[0].ShouldBe(new AccessResult.Pa(0x4b000000));
        r.Results[1].ShouldBe(AccessResult.Abort.Instance);
        r.Results[2].ShouldBe(AccessResult.Abort.Instance);
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
