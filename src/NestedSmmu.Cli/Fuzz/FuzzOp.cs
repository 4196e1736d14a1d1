using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace NestedSmmu.Cli.Fuzz;

/// <summary>
/// One guest operation of the isolation campaign, as data: everything the generator chose, so a
/// list of them replays without the random generator and a shrinker can drop any of them. Indices
/// (vSMMU, device, mapped IOVA) are taken modulo what the VM has when the operation runs, so an
/// operation stays meaningful after others were dropped; one that cannot apply is skipped.
/// </summary>
/// <param name="Kind">What it does: <c>reboot</c>, <c>write</c> (vSMMU register), <c>cmdqv-write</c>, <c>command</c>
/// (through the vSMMU's queue), <c>garbage</c> (bytes into guest tables), <c>service</c>, <c>dma</c>,
/// <c>vcmdq</c> (commands into a guest VCMDQ), <c>hotplug</c>, <c>unplug</c>, <c>viommu-teardown</c>, <c>mutate</c>
/// (one word of a live STE, CD or stage-1 table).</param>
/// <param name="Vm">The acting VM: 0 or 1.</param>
/// <param name="Vsmmu">The VM's vSMMU (index).</param>
/// <param name="Offset">Register offset (write, cmdqv-write), guest RAM offset (garbage without a device), the offset in a mapped IOVA's page (dma), or the word or entry (mutate).</param>
/// <param name="Width">Access width in bytes (write, cmdqv-write).</param>
/// <param name="Value">The value written (write, cmdqv-write) or the data a DMA write carries.</param>
/// <param name="W0">Command word 0 (command), or a raw IOVA (dma with <paramref name="Slot"/> -1).</param>
/// <param name="W1">Command word 1 (command).</param>
/// <param name="Device">The VM's device (index); -1 where none is meant.</param>
/// <param name="Slot">dma: which mapped IOVA (index), or -1 for the raw IOVA in <paramref name="W0"/>; vcmdq: the logical VCMDQ; mutate: 0 STE, 1 CD, 2 stage-1 table.</param>
/// <param name="Flag">dma: a write; garbage: CFGI_ALL after it (else CFGI_STE); vcmdq: end the batch with a CMD_SYNC; mutate: XOR (else replace).</param>
/// <param name="Bytes">garbage: the bytes (hex); vcmdq: the commands (hex, 16 bytes each).</param>
internal sealed record FuzzOp(
    string Kind,
    int Vm,
    int Vsmmu = 0,
    ulong Offset = 0,
    int Width = 0,
    ulong Value = 0,
    ulong W0 = 0,
    ulong W1 = 0,
    int Device = -1,
    int Slot = -1,
    bool Flag = false,
    string? Bytes = null);

/// <summary>
/// A replayable counterexample: the shrunk operation list, the seed and the build it came from,
/// and the violation it shows. Written by `nestedsmmu fuzz` on a violation, read by `--replay`.
/// </summary>
internal sealed record FuzzCounterexample(
    string Format,
    int Seed,
    string Host,
    IReadOnlyDictionary<string, string> Versions,
    string Invariant,
    string Detail,
    long OriginalOperations,
    IReadOnlyList<FuzzOp> Operations)
{
    /// <summary>The format tag; a reader refuses any other.</summary>
    public const string FormatTag = "nestedsmmu-fuzz-counterexample/1";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
    };

    /// <summary>The versions a replay should match: the tool's and the runtime's.</summary>
    public static IReadOnlyDictionary<string, string> CurrentVersions() => new SortedDictionary<string, string>(StringComparer.Ordinal)
    {
        ["nestedsmmu"] = typeof(FuzzCounterexample).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown",
        ["dotnet"] = Environment.Version.ToString(),
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads a counterexample file; a malformed one is an <see cref="InvalidDataException"/> naming what is wrong.</summary>
    public static FuzzCounterexample Read(string path)
    {
        FuzzCounterexample? c;
        try
        {
            c = JsonSerializer.Deserialize<FuzzCounterexample>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a fuzz counterexample: {e.Message}", e);
        }
        if (c is null) throw new InvalidDataException($"{path}: not a fuzz counterexample: empty");
        if (c.Format != FormatTag) throw new InvalidDataException($"{path}: $.format is '{c.Format}', expected '{FormatTag}'");
        if (c.Operations is null) throw new InvalidDataException($"{path}: $.operations is missing");
        for (int i = 0; i < c.Operations.Count; i++)
        {
            FuzzOp op = c.Operations[i];
            if (op is null || string.IsNullOrEmpty(op.Kind)) throw new InvalidDataException($"{path}: $.operations[{i}].kind is missing");
            if (op.Vm is not (0 or 1)) throw new InvalidDataException($"{path}: $.operations[{i}].vm is {op.Vm}, expected 0 or 1");
        }
        return c;
    }
}
