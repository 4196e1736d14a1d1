using NestedSmmu.Guest.PageTables;
using NestedSmmu.Scenarios;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Cli.Tests;

/// <summary>`nestedsmmu translate` end to end: scenario files in, results and explanations out.</summary>
public sealed class TranslateCommandTests
{
    public static TheoryData<string> Probes() =>
        new(Directory.GetFiles(CliRunner.ScenarioDir, "probe-*.json")
            .Where(f => !f.EndsWith(".intended.json") && !f.EndsWith(".qemu.json") && !f.EndsWith(".quirks.json"))
            .Select(Path.GetFileNameWithoutExtension).Order()!);

    /// <summary>
    /// Each probe of tests/vectors/scenarios gives its .intended.json exactly: the architecture's
    /// outcome, not QEMU's departures from it. Two of these vectors were corrected to IHI 0070 G.b
    /// (5.2 STE.Config: reserved 0b0xx behaves as 0b000, abort with no event; 7.3.3:
    /// C_BAD_STREAMID is recorded only when SMMU_CR2.RECINVSID is 1).
    /// </summary>
    [Theory]
    [MemberData(nameof(Probes))]
    public void Probe_gives_the_intended_result(string name)
    {
        string dir = CliRunner.ScenarioDir;
        var run = CliRunner.Run("translate", Path.Combine(dir, name + ".json"), "--json");
        run.ExitCode.ShouldBe(0, run.Stderr);
        var actual = ScenarioResultReader.Parse(run.Stdout).Results;
        var intended = ScenarioResultReader.ReadFile(Path.Combine(dir, name + ".intended.json")).Results;
        actual.Count.ShouldBe(intended.Count);
        for (int i = 0; i < intended.Count; i++)
            actual[i].ShouldBe(intended[i], $"{name} access {i}");

        var viaExpect = CliRunner.Run("translate", Path.Combine(dir, name + ".json"), "--expect", Path.Combine(dir, name + ".intended.json"));
        viaExpect.ExitCode.ShouldBe(0, viaExpect.Stderr);
        viaExpect.Stdout.ShouldContain("matches");
    }

    /// <summary>With CR2.RECINVSID set, as Linux sets it, the bad StreamIDs of probe-l1-span are recorded as C_BAD_STREAMID (Q8: 2^(Span-1) STEs).</summary>
    [Fact]
    public void L1_span_probe_records_bad_streamids_when_recinvsid_is_set()
    {
        string dir = CliRunner.ScenarioDir;
        var probe = ScenarioReader.ReadFile(Path.Combine(dir, "probe-l1-span.json"));
        var withRecord = probe with { Writes = [new RegisterWrite(SmmuRegister.CR2, 0x2), .. probe.Writes] };
        var results = ScenarioRunner.Run(withRecord).Result.Results;
        // The first access is inside the span; 0x41 and 0x42 are past 2^(Span-1) STEs:
        // C_BAD_STREAMID (event 0x02) with the StreamID in bits [63:32] (7.3.3).
        results[0].ShouldBe(new AccessResult.Pa(0x4b000000));
        foreach ((int i, ulong sid) in new[] { (1, 0x41UL), (2, 0x42UL) })
        {
            var fault = results[i].ShouldBeOfType<AccessResult.Fault>();
            fault.Name.ShouldBe("C_BAD_STREAMID");
            fault.Event.ShouldBe([sid << 32 | 0x02, 0, 0, 0]);
        }
    }

    [Fact]
    public void Expect_reports_the_first_difference_and_exits_1()
    {
        string dir = CliRunner.ScenarioDir;
        // probe-s2-concat differs from QEMU's result on its second access (quirk Q1).
        var run = CliRunner.Run("translate", Path.Combine(dir, "probe-s2-concat.json"), "--expect", Path.Combine(dir, "probe-s2-concat.qemu.json"));
        run.ExitCode.ShouldBe(1);
        run.Stderr.ShouldContain("results[1]");
    }

    public static TheoryData<int, int, int, bool> Matrix()
    {
        var d = new TheoryData<int, int, int, bool>();
        foreach (int stage in new[] { 1, 2, 3 })
        foreach (int pageShift in new[] { 12, 14, 16 })
        foreach (int leaf in new[] { 3, 2 })
        foreach (bool twoLevel in new[] { false, true })
            d.Add(stage, pageShift, leaf, twoLevel);
        return d;
    }

    /// <summary>
    /// Stage 1, 2 and nested (3) x 4K/16K/64K x page/level-2 block x linear/2-level stream table:
    /// the scenario is written to a file, replayed by the CLI, and the PA is what the tables say.
    /// </summary>
    [Theory]
    [MemberData(nameof(Matrix))]
    public void Translation_matrix_round_trips_through_a_scenario_file(int stage, int pageShift, int leafLevel, bool twoLevel)
    {
        var b = new ScenarioBuilder();
        const uint sid = 0x10;
        ulong iova = stage == 2 ? 0x80_0000_0000UL : 0x80_8000_0000UL;
        ulong ipa = 0x6000_0000, pa = stage == 3 ? 0x2_0000_0000UL : 0x6000_0000UL;
        var t = b.AddTranslation(sid, stage, pageShift, leafLevel, iova, ipa, pa, twoLevel);
        ulong leafSize = 1UL << t;
        b.Access(sid, iova + 0x10, AccessKind.Write);
        b.Access(sid, iova + leafSize - 8, AccessKind.Read);
        var results = RunScenario(b.Build($"matrix stage {stage} {1 << pageShift >> 10}K leaf L{leafLevel} {(twoLevel ? "2-level" : "linear")}"));
        results.ShouldBe([new AccessResult.Pa(pa + 0x10), new AccessResult.Pa(pa + leafSize - 8)]);
    }

    /// <summary>QEMU's iommu-smmuv3-test example (QEMU tests/qtest/iommu-smmuv3-test.c) as three scenarios of our own: 0x8080604567 → 0x4ecba567.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Qemu_example_lands_at_0x4ecba567(int stage)
    {
        var b = new ScenarioBuilder();
        const ulong iova = 0x80_8060_4567, target = 0x4000_0000 + 0x0ecb_a000;
        b.AddTranslation(0x10, stage, 12, 3, iova & ~0xFFFUL, stage == 3 ? 0x5ecb_a000 : target, target, twoLevel: false);
        b.Access(0x10, iova, AccessKind.Write);
        b.Access(0x10, iova, AccessKind.Read);
        RunScenario(b.Build("QEMU example")).ShouldBe([new AccessResult.Pa(0x4ecb_a567), new AccessResult.Pa(0x4ecb_a567)]);
    }

    [Fact]
    public void Explain_shows_every_descriptor_read_of_a_nested_walk()
    {
        var b = new ScenarioBuilder();
        b.AddTranslation(0x10, 3, 12, 3, 0x80_8000_0000, 0x6000_0000, 0x2_0000_0000, false);
        b.Access(0x10, 0x80_8000_0000, AccessKind.Write);
        string file = CliRunner.TempFile("nested.json", ScenarioWriter.ToJson(b.Build("nested explain")));
        var run = CliRunner.Run("translate", file, "--explain");
        run.ExitCode.ShouldBe(0, run.Stderr);
        string[] lines = run.Stdout.Split('\n');
        // Stage 2 here starts at level 1 (3 levels). The CD address through stage 2 (3 reads), 4 stage-1
        // levels each preceded by the stage-2 walk of its table address (4 x (3 + 1)), and the output
        // IPA's stage-2 walk (3): 22 descriptor reads.
        lines.Count(l => l.TrimStart().StartsWith("descriptor")).ShouldBe(22);
        lines.Count(l => l.TrimStart().StartsWith("s1-table-ipa")).ShouldBe(4);
        run.Stdout.ShouldContain("STE for SID 0x10");
        run.Stdout.ShouldContain("CD 0 at");
        run.Stdout.ShouldContain("-> PA 0x200000000");
    }

    public static TheoryData<string> FaultCases() => new(FaultScenarios.Keys.Order());

    /// <summary>Each fault type from a scenario file, with the event record words computed by hand from IHI 0070 7.3.</summary>
    [Theory]
    [MemberData(nameof(FaultCases))]
    public void Fault_scenarios_give_the_expected_event(string name)
    {
        var (scenario, expected) = FaultScenarios[name]();
        RunScenario(scenario).ShouldBe([expected], name);
    }

    private const uint Sid = 0x10;
    private const ulong Iova = 0x80_8000_0000;

    private static AccessResult Fault(string type, int stage, params ulong[] words) => new AccessResult.Fault(type, stage, words);

    private static ulong W0(byte type, uint sid = Sid, uint? ssid = null) => type | ((ulong)sid << 32) | (ssid is { } s ? (1UL << 11) | ((ulong)s << 12) : 0);

    // evt1: RnW [35], S2 [39], CLASS [41:40] (0 CD, 1 TTD, 2 IN), TTRnW [44]
    private const ulong ClassIn = 2UL << 40, ClassTtd = 1UL << 40, ClassCd = 0, S2 = 1UL << 39, Read = 1UL << 35, TtRead = 1UL << 44;

    private static Dictionary<string, Func<(Scenario, AccessResult)>> FaultScenarios { get; } = new()
    {
        ["C_BAD_STREAMID"] = () =>
        {
            var b = Base(1); b.Access(0x100, Iova, AccessKind.Write); // LOG2SIZE 8: SIDs 0..255
            return (b.Build("sid beyond the table"), Fault("C_BAD_STREAMID", 1, W0(0x02, 0x100), 0, 0, 0));
        },
        ["F_STE_FETCH"] = () =>
        {
            var b = new ScenarioBuilder(); b.Enable(8, 1UL << 44); b.Access(Sid, Iova, AccessKind.Write); // table beyond the 44-bit OAS
            return (b.Build("stream table outside the OAS"), Fault("F_STE_FETCH", 1, W0(0x03), 0, 0, (1UL << 44) + Sid * 64));
        },
        ["C_BAD_STE"] = () =>
        {
            var b = Base(1); b.Word(ScenarioBuilder.StrtabBase + Sid * 64, b.Read(ScenarioBuilder.StrtabBase + Sid * 64) & ~1UL); // V = 0
            b.Access(Sid, Iova, AccessKind.Write);
            return (b.Build("STE.V = 0"), Fault("C_BAD_STE", 1, W0(0x04), 0, 0, 0));
        },
        ["ABORT_STE"] = () =>
        {
            var b = Base(1); b.Word(ScenarioBuilder.StrtabBase + Sid * 64, 0x1); // V = 1, Config abort
            b.Access(Sid, Iova, AccessKind.Write);
            return (b.Build("STE.Config = abort"), AccessResult.Abort.Instance);
        },
        ["C_BAD_SUBSTREAMID"] = () =>
        {
            var b = Base(1); b.Access(Sid, Iova, AccessKind.Write, ssid: 1); // S1CDMax = 0: no substreams
            // C_BAD_SUBSTREAMID always concerns a substream: its SubstreamID has no SSV qualifier (IHI 0070 7.3.9).
            return (b.Build("SSID with S1CDMax 0"), Fault("C_BAD_SUBSTREAMID", 1, W0(0x08) | (1UL << 12), 0, 0, 0));
        },
        ["C_BAD_CD"] = () =>
        {
            var b = Base(1); b.Word(ScenarioBuilder.CdBase, b.Read(ScenarioBuilder.CdBase) & ~(1UL << 31)); // CD.V = 0
            b.Access(Sid, Iova, AccessKind.Write);
            return (b.Build("CD.V = 0"), Fault("C_BAD_CD", 1, W0(0x0A), 0, 0, 0));
        },
        ["F_TRANSLATION_S1"] = () =>
        {
            var b = Base(1); b.Access(Sid, Iova + 0x20_0000, AccessKind.Read);
            return (b.Build("unmapped IOVA"), Fault("F_TRANSLATION", 1, W0(0x10), Read | ClassIn, Iova + 0x20_0000, 0));
        },
        ["F_TRANSLATION_S2"] = () =>
        {
            var b = Base(2); b.Access(Sid, 0x80_0000_0000 + 0x20_0000, AccessKind.Write);
            return (b.Build("unmapped IPA"), Fault("F_TRANSLATION", 2, W0(0x10), S2 | ClassIn, 0x80_0020_0000, 0x80_0020_0000));
        },
        ["F_TRANSLATION_S2_DURING_S1_WALK"] = () =>
        {
            // Nested, but stage 2 does not map the stage-1 root table's page: CLASS = TTD, IPA = the descriptor's.
            var b = new ScenarioBuilder();
            var s2 = new TranslationTables(b, 12, 40, 1, stage2: true);
            var s1 = new TranslationTables(b, 12, 48, 0, stage2: false);
            s1.Map(Iova, 0x6000_0000);
            s2.Map(ScenarioBuilder.CdBase, ScenarioBuilder.CdBase);
            s2.Map(0x6000_0000, 0x2_0000_0000);
            b.Cd(ScenarioBuilder.CdBase, ScenarioBuilder.CdWord0(12), s1.Root);
            b.Ste(Sid, ScenarioBuilder.CdBase | 0xF, 0xD4, ScenarioBuilder.Stage2Word2(12), s2.Root);
            b.Enable(); b.Access(Sid, Iova, AccessKind.Write);
            ulong descIpa = s1.Root + s1.Index(Iova, 0) * 8;
            return (b.Build("stage-2 fault on a stage-1 table"), Fault("F_TRANSLATION", 2, W0(0x10), S2 | ClassTtd | TtRead, Iova, descIpa & ~0xFFFUL));
        },
        ["F_PERMISSION_S2_ON_A_LATER_STAGE1_TABLE"] = () => NestedWithLaterTablePage(readable: false, af: true, "F_PERMISSION"),
        ["F_ACCESS_S2_ON_A_LATER_STAGE1_TABLE"] = () => NestedWithLaterTablePage(readable: true, af: false, "F_ACCESS"),
        ["F_TRANSLATION_S2_DURING_CD_FETCH"] = () =>
        {
            var b = new ScenarioBuilder();
            var s2 = new TranslationTables(b, 12, 40, 1, stage2: true);
            b.Cd(ScenarioBuilder.CdBase, ScenarioBuilder.CdWord0(12), 0x4100_0000);
            b.Ste(Sid, ScenarioBuilder.CdBase | 0xF, 0xD4, ScenarioBuilder.Stage2Word2(12), s2.Root);
            b.Enable(); b.Access(Sid, Iova, AccessKind.Read);
            return (b.Build("stage-2 fault fetching the CD"), Fault("F_TRANSLATION", 2, W0(0x10), Read | S2 | ClassCd | TtRead, Iova, ScenarioBuilder.CdBase));
        },
        ["F_PERMISSION_S1"] = () =>
        {
            var b = Base(1, writable: false); b.Access(Sid, Iova, AccessKind.Write);
            return (b.Build("read-only page written"), Fault("F_PERMISSION", 1, W0(0x13), ClassIn, Iova, 0));
        },
        ["F_PERMISSION_S2"] = () =>
        {
            var b = Base(2, writable: false); b.Access(Sid, 0x80_0000_0000, AccessKind.Write);
            return (b.Build("stage-2 read-only page written"), Fault("F_PERMISSION", 2, W0(0x13), S2 | ClassIn, 0x80_0000_0000, 0x80_0000_0000));
        },
        ["F_ACCESS"] = () =>
        {
            var b = Base(1, af: false); b.Access(Sid, Iova, AccessKind.Write);
            return (b.Build("AF = 0"), Fault("F_ACCESS", 1, W0(0x12), ClassIn, Iova, 0));
        },
        ["F_ADDR_SIZE"] = () =>
        {
            var b = Base(1, output: 1UL << 45); b.Access(Sid, Iova, AccessKind.Write); // beyond the CD's 44-bit IPS
            return (b.Build("output beyond IPS"), Fault("F_ADDR_SIZE", 1, W0(0x11), ClassIn, Iova, 0));
        },
        ["UNRECORDED_CD_R_0"] = () =>
        {
            var b = Base(1); b.Word(ScenarioBuilder.CdBase, b.Read(ScenarioBuilder.CdBase) & ~(1UL << 45)); // CD.R = 0
            b.Access(Sid, Iova + 0x20_0000, AccessKind.Write);
            return (b.Build("fault not recorded"), AccessResult.Abort.Instance);
        },
    };


    /// <summary>
    /// Nested 4K walk where the stage-1 level-0 table's page is mapped normally at stage 2 but the
    /// level-1 table's page (in the same 2 MiB IPA region, so the walker reuses the stage-2 path to
    /// it) is not readable or has AF clear: the stage-2 fault is reported for that descriptor.
    /// </summary>
    private static (Scenario, AccessResult) NestedWithLaterTablePage(bool readable, bool af, string fault)
    {
        var b = new ScenarioBuilder();
        var s2 = new TranslationTables(b, 12, 40, 1, stage2: true);
        var s1 = new TranslationTables(b, 12, 48, 0, stage2: false);
        s1.Map(Iova, 0x6000_0000);
        ulong l0Table = s1.Root;
        ulong l1Table = b.Read(l0Table + s1.Index(Iova, 0) * 8) & 0x0000_FFFF_FFFF_F000;
        foreach (ulong page in b.TablePages.ToList())
        {
            if (page == l1Table) s2.Map(page, page, readable: readable, af: af);
            else s2.Map(page, page);
        }
        s2.Map(0x6000_0000, 0x2_0000_0000);
        b.Cd(ScenarioBuilder.CdBase, ScenarioBuilder.CdWord0(12), s1.Root);
        s2.Map(ScenarioBuilder.CdBase, ScenarioBuilder.CdBase);
        b.Ste(Sid, ScenarioBuilder.CdBase | 0xF, 0xD4, ScenarioBuilder.Stage2Word2(12), s2.Root);
        b.Enable();
        b.Access(Sid, Iova, AccessKind.Write);
        ulong descIpa = l1Table + s1.Index(Iova, 1) * 8;
        byte type = fault == "F_PERMISSION" ? (byte)0x13 : (byte)0x12;
        return (b.Build($"{fault} at stage 2 on the level-1 table"), Fault(fault, 2, W0(type), S2 | ClassTtd | TtRead, Iova, descIpa & ~0xFFFUL));
    }

    private static ScenarioBuilder Base(int stage, bool writable = true, bool af = true, ulong? output = null)
    {
        var b = new ScenarioBuilder();
        ulong iova = stage == 2 ? 0x80_0000_0000UL : Iova;
        b.AddTranslation(Sid, stage, 12, 3, iova, 0, output ?? 0x6000_0000, false, writable, af);
        return b;
    }

    private static IReadOnlyList<AccessResult> RunScenario(Scenario s)
    {
        string file = CliRunner.TempFile("scenario.json", ScenarioWriter.ToJson(s));
        var run = CliRunner.Run("translate", file, "--json");
        run.ExitCode.ShouldBe(0, run.Stderr);
        return ScenarioResultReader.Parse(run.Stdout).Results;
    }
}
