using System.Runtime.CompilerServices;

namespace NestedSmmu.Hardware.Smmu;

public sealed partial class SmmuV3
{
    // `translate --explain` messages, built out of line: string interpolation inside the
    // translation path would make the JIT reserve and zero stack for it on every call.

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void TraceDisabled(TranslationTrace trace, bool abort) =>
        trace.Note($"SMMU disabled (CR0.SMMUEN = 0): GBPA.ABORT = {(abort ? 1 : 0)}, {(abort ? "abort" : "bypass")}");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void TraceBeyondOas(TranslationTrace trace, ulong iova, int oasBits) =>
        trace.Note($"input 0x{iova:X} exceeds the {oasBits}-bit OAS: aborted");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void TraceConfigAbort(TranslationTrace trace, uint configRaw) =>
        trace.Note(configRaw == 0 ? "STE.Config = abort: terminated without an event"
            : $"STE.Config 0b{Convert.ToString(configRaw, 2).PadLeft(3, '0')} is reserved and behaves as abort: terminated without an event");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void TraceTlbHit(TranslationTrace trace, in TlbEntry hit, ulong iova, ulong pa, ushort vmid, ushort asid) =>
        trace.Add("tlb", 0, hit.Level, iova, pa, $"IOTLB hit: VMID {vmid} ASID {asid} 0x{hit.InputBase:X} +{hit.Size:#,0} -> 0x{hit.OutputBase:X}");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void TraceTtbRange(TranslationTrace trace, bool hasRegime, bool upper, ulong iova, int inputBits) =>
        trace.Note(!hasRegime
            ? $"TTB{(upper ? 1 : 0)} walks are disabled (EPD{(upper ? 1 : 0)}) or its granule is unusable"
            : $"input 0x{iova:X} is outside the {inputBits}-bit range of TTB{(upper ? 1 : 0)}");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void TraceStage1(TranslationTrace trace, in WalkRegime r1, bool upper, ushort asid) =>
        trace.Add("s1", 1, r1.StartLevel, r1.TableBase, 0,
            $"stage 1: TTB{(upper ? 1 : 0)} 0x{r1.TableBase:X}, {1 << r1.PageShift >> 10}K granule, {r1.InputBits}-bit input, start level {r1.StartLevel}, {r1.OutputBits}-bit output, ASID {asid}");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void TraceStage2(TranslationTrace trace, in WalkRegime r2, ulong output, ushort vmid) =>
        trace.Add("s2", 2, r2.StartLevel, r2.TableBase, 0, $"stage 2 of output IPA 0x{output:X}: " + DescribeStage2(r2, vmid));

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void TraceResult(TranslationTrace trace, ulong iova, ulong output, Permissions perms) =>
        trace.Add("result", 0, -1, iova, output, $"PA 0x{output:X} ({perms})");
}
