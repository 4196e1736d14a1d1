#:project ../../src/NestedSmmu.Scenarios/NestedSmmu.Scenarios.csproj
#:property PublishAot=false
// Writes the scenarios of the QEMU comparison corpus (tests/NestedSmmu.Cli.Tests/Vectors/qemu):
// translations and faults chosen where QEMU 11.1's SMMUv3 model and the architecture agree (none of
// the places where QEMU departs from IHI 0070 (docs/ARCHITECTURE.md) applies), so QEMU's answer is a reference.
// Usage: dotnet run tools/qemu-vectors/generate.cs -- OUTDIR   (make-vectors.sh runs QEMU on them)
using NestedSmmu.Scenarios;
using NestedSmmu.Hardware.Smmu;

string outDir = args.Length == 1 ? args[0] : throw new ArgumentException("usage: generate.cs OUTDIR");
Directory.CreateDirectory(outDir);
int count = 0;
void Save(string name, ScenarioBuilder b, string description)
{
    File.WriteAllText(Path.Combine(outDir, name + ".json"), ScenarioWriter.ToJson(b.Build(description)));
    count++;
}

const uint Sid = 0x10;
// QEMU's RAM starts at 0x40000000 and spans at least 512 MiB: every output stays inside it. The
// 64K level-2 block (512 MiB) is the only one that needs 0x40000000 itself.
foreach (int stage in new[] { 1, 2, 3 })
foreach (int pageShift in new[] { 12, 14, 16 })
foreach (int leaf in new[] { 3, 2 })
foreach (bool twoLevel in new[] { false, true })
{
    var b = new ScenarioBuilder();
    bool hugeBlock = pageShift == 16 && leaf == 2;
    ulong pa = hugeBlock ? 0x4000_0000UL : 0x5000_0000UL;
    // Stage-2-only inputs stay in the first of the concatenated 4K start tables (quirk Q1).
    ulong iova = stage == 2 ? 0x6000_0000UL : 0x80_8000_0000UL;
    int shift = b.AddTranslation(Sid, stage, pageShift, leaf, iova, 0x6000_0000, pa, twoLevel);
    b.Access(Sid, iova + 0x10, AccessKind.Write);
    b.Access(Sid, iova + (1UL << shift) - 0x40, AccessKind.Read);
    string name = $"map-s{(stage == 3 ? "12" : stage.ToString())}-{1 << pageShift >> 10}k-{(leaf == 3 ? "page" : "block")}-{(twoLevel ? "2lvl" : "linear")}";
    Save(name, b, $"stage {(stage == 3 ? "nested" : stage.ToString())}, {1 << pageShift >> 10}K granule, {(leaf == 3 ? "page" : "level-2 block")}, {(twoLevel ? "2-level" : "linear")} stream table");
}

ScenarioBuilder Base(int stage, bool writable = true, bool af = true, ulong pa = 0x5000_0000)
{
    var b = new ScenarioBuilder();
    b.AddTranslation(Sid, stage, 12, 3, stage == 2 ? 0x6000_0000UL : 0x80_8000_0000UL, 0x6000_0000, pa, false, writable, af);
    return b;
}
const ulong S1Iova = 0x80_8000_0000, S2Iova = 0x6000_0000;
ScenarioBuilder f;
f = Base(1); f.Access(Sid, S1Iova + 0x20_0000, AccessKind.Write); f.Access(Sid, S1Iova + 0x20_0000, AccessKind.Read);
Save("fault-s1-translation", f, "stage 1: unmapped IOVA, written then read");
f = Base(2); f.Access(Sid, S2Iova + 0x20_0000, AccessKind.Write);
Save("fault-s2-translation", f, "stage 2: unmapped page-aligned IPA");
f = Base(1, writable: false); f.Access(Sid, S1Iova, AccessKind.Write); f.Access(Sid, S1Iova + 0x100, AccessKind.Read);
Save("fault-s1-permission", f, "stage 1: read-only page written, then read");
f = Base(2, writable: false); f.Access(Sid, S2Iova, AccessKind.Write);
Save("fault-s2-permission", f, "stage 2: read-only page written (first access, nothing cached)");
f = Base(1, af: false); f.Access(Sid, S1Iova, AccessKind.Write);
Save("fault-s1-access-flag", f, "stage 1: AF = 0, no hardware update");
f = Base(1, pa: 1UL << 45); f.Access(Sid, S1Iova, AccessKind.Write);
Save("fault-s1-addr-size", f, "stage 1: output beyond the CD's 44-bit IPS (AF and permissions fine)");
f = Base(1); f.Word(ScenarioBuilder.StrtabBase + Sid * 64, f.Read(ScenarioBuilder.StrtabBase + Sid * 64) & ~1UL); f.Access(Sid, S1Iova, AccessKind.Write);
Save("fault-ste-invalid", f, "STE.V = 0");
f = Base(1); f.Word(ScenarioBuilder.StrtabBase + Sid * 64, 1); f.Access(Sid, S1Iova, AccessKind.Write);
Save("abort-ste-config", f, "STE.Config = abort: no event");
f = Base(1); f.Word(ScenarioBuilder.CdBase, f.Read(ScenarioBuilder.CdBase) & ~(1UL << 31)); f.Access(Sid, S1Iova, AccessKind.Write);
Save("fault-cd-invalid", f, "CD.V = 0");
f = Base(1); f.Word(ScenarioBuilder.CdBase, f.Read(ScenarioBuilder.CdBase) & ~(1UL << 45)); f.Access(Sid, S1Iova + 0x20_0000, AccessKind.Write);
Save("abort-cd-r-clear", f, "CD.R = 0: the stage-1 fault is not recorded");
f = Base(1); f.Access(Sid, S1Iova, AccessKind.Write); f.Access(0x110, S1Iova, AccessKind.Write);
Save("fault-bad-streamid", f, "SID 0x110 beyond a 256-entry stream table");
f = Base(2); f.Word(ScenarioBuilder.StrtabBase + Sid * 64 + 16, f.Read(ScenarioBuilder.StrtabBase + Sid * 64 + 16) & ~(1UL << 58)); f.Access(Sid, S2Iova + 0x20_0000, AccessKind.Write);
Save("abort-s2r-clear", f, "STE.S2R = 0: the stage-2 fault is not recorded");
Console.WriteLine($"{count} scenarios written to {outDir}");
