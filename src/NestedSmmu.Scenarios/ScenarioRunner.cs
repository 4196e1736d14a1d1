using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Scenarios;

/// <summary>One access's outcome with its explanation.</summary>
public sealed record AccessOutcome(Access Access, TranslationResult Translation, AccessResult Result, TranslationTrace? Trace);

/// <summary>The outcome of replaying a scenario.</summary>
public sealed record ScenarioRun(SmmuFeatures Features, IReadOnlyList<AccessOutcome> Outcomes, IReadOnlyList<string> Warnings, SmmuV3 Smmu)
{
    public ScenarioResult Result => new(Outcomes.Select(o => o.Result));
}

/// <summary>
/// Replays a scenario on a fresh physical SMMU: ID registers (QEMU's virt SMMUv3 "nested" where
/// the scenario is silent), memory, register writes in order (a CMDQ_PROD write runs the commands
/// already in memory, as on hardware), then each access.
/// </summary>
public static class ScenarioRunner
{
    /// <summary>The defaults for omitted ID registers: QEMU's virt SMMUv3 with stage=nested (<see cref="SmmuFeatures.QemuVirtNestedIdrs"/>).</summary>
    public static IReadOnlyDictionary<SmmuRegister, uint> DefaultIdrs => SmmuFeatures.QemuVirtNestedIdrs;

    public static ScenarioRun Run(Scenario scenario, bool explain = false) => Run(scenario, new SparseMemory(), explain);

    /// <summary>Replays on <paramref name="memory"/>, which may already hold a dump's contents.</summary>
    public static ScenarioRun Run(Scenario scenario, SparseMemory memory, bool explain = false)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        uint Idr(SmmuRegister r) => scenario.Idr.TryGetValue(r, out uint v) ? v : DefaultIdrs.GetValueOrDefault(r);
        var features = SmmuFeatures.FromIdrs(Idr(SmmuRegister.IDR0), Idr(SmmuRegister.IDR1), Idr(SmmuRegister.IDR3),
            Idr(SmmuRegister.IDR5), Idr(SmmuRegister.IIDR), Idr(SmmuRegister.AIDR));
        var warnings = new List<string>();
        if (!features.Stage1 && !features.Stage2)
            throw new ScenarioFormatException("$.smmu.idr.IDR0", "IDR0 implements neither stage 1 nor stage 2 (S1P = S2P = 0)");
        foreach (var (reg, presented) in new[] { (SmmuRegister.IDR0, features.Idr0), (SmmuRegister.IDR1, features.Idr1),
                     (SmmuRegister.IDR3, features.Idr3), (SmmuRegister.IDR5, features.Idr5) })
        {
            uint asked = Idr(reg);
            if (asked != presented)
                warnings.Add($"{reg} 0x{asked:X8}: bits 0x{asked ^ presented:X8} name features this model does not implement; it presents 0x{presented:X8}");
        }

        scenario.LoadMemory(memory);
        var smmu = new SmmuV3(memory, features);
        foreach (var w in scenario.Writes) smmu.Write(w.Offset, w.Width / 8, w.Value);

        var outcomes = new List<AccessOutcome>(scenario.Accesses.Count);
        foreach (var a in scenario.Accesses)
        {
            var trace = explain ? new TranslationTrace() : null;
            var t = smmu.Translate(a.Sid, a.Ssid, a.Iova, a.Kind, trace);
            outcomes.Add(new AccessOutcome(a, t, ToResult(t), trace));
        }
        return new ScenarioRun(features, outcomes, warnings, smmu);
    }

    /// <summary>The result-format view of a translation (docs/SCENARIO.md): pa, fault with its recorded event, or ABORT.</summary>
    public static AccessResult ToResult(in TranslationResult t) => t.Status switch
    {
        TranslationStatus.Success => new AccessResult.Pa(t.PhysicalAddress),
        TranslationStatus.Abort => AccessResult.Abort.Instance,
        _ => new AccessResult.Fault(Enum.GetName(t.Event.Type) ?? $"0x{(byte)t.Event.Type:X2}", t.Stage,
            t.Recorded ? t.Event.ToArray() : ReadOnlySpan<ulong>.Empty),
    };
}
