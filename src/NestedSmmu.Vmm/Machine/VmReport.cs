using System.Text.Json;
using System.Text.Json.Serialization;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Vmm.Machine;

/// <summary>
/// Invalidation traffic on one path. <see cref="Batches"/> and <see cref="Commands"/> are what the
/// guest published (one batch per doorbell); <see cref="VmmTraps"/> are the VM exits those
/// submissions cost: traps on the vSMMU's CMDQ_PROD/CMDQ_CONS and on every trapped CMDQV page
/// while the path ran. A direct (VCMDQ) batch rings a doorbell in the host page mapped into the
/// guest, so it costs none.
/// </summary>
public sealed record PathFigures(long Batches, long Commands, long VmmTraps)
{
    /// <summary>Nothing.</summary>
    public static PathFigures Zero { get; } = new(0, 0, 0);

    /// <summary>Traps per batch, or null without a batch.</summary>
    [JsonIgnore]
    public double? TrapsPerBatch => Batches == 0 ? null : (double)VmmTraps / Batches;

    /// <summary>The sum of two figures.</summary>
    public static PathFigures operator +(PathFigures a, PathFigures b) =>
        new(a.Batches + b.Batches, a.Commands + b.Commands, a.VmmTraps + b.VmmTraps);
}

/// <summary>One check of a run and whether it held.</summary>
public sealed record RunCheck(string Name, bool Passed, string Detail = "");

/// <summary>What a workload harness measured for one device.</summary>
public sealed record DeviceRunFigures(long Dmas, long Bytes, int FaultsExpected, int FaultsSeen, PathFigures Trapped, PathFigures Direct)
{
    /// <summary>Nothing run.</summary>
    public static DeviceRunFigures None { get; } = new(0, 0, 0, 0, PathFigures.Zero, PathFigures.Zero);
}

/// <summary>One device in the report.</summary>
public sealed record DeviceReport(
    string Name, string Kind, string? HostAddress, string? PhysicalSmmu, string Bus, string RequesterId, string Vsid, bool HotPlugged,
    long Dmas, long Bytes, int FaultsExpected, int FaultsSeen, PathFigures Trapped, PathFigures Direct);

/// <summary>One vSMMU in the report, with its devices.</summary>
public sealed record VsmmuReport(
    string Name, string Base, int Spi, bool Accel, bool Cmdqv, string? PhysicalSmmu, bool Ats, bool Ril, int Ssidsize, int Oas,
    long MmioTraps, long CommandQueueTraps, long CmdqvTraps, long CmdqvDirectAccesses, long CmdqvDirectDoorbells, long Interrupts,
    long CommandsForwarded, long HostInvalidateBatches, long EventsDelivered, IReadOnlyList<DeviceReport> Devices);

/// <summary>Invalidation by path, over every device.</summary>
public sealed record InvalidationReport(PathFigures Trapped, PathFigures Direct);

/// <summary>
/// The one report of <c>nestedsmmu run</c> (VMM.md "One report type"): per vSMMU, per device and
/// per invalidation path, with the checks that decide the verdict. The CLI's table, its
/// <c>--json</c> and the tests all read this record.
/// </summary>
public sealed record VmReport(
    string Host, string Boot, ulong GuestRamBytes, IReadOnlyList<VsmmuReport> Vsmmus, InvalidationReport Invalidation,
    IReadOnlyList<RunCheck> Checks, IReadOnlyList<string> Notes)
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary><c>pass</c> when there were checks and every one held, else <c>fail</c>.</summary>
    [JsonPropertyOrder(-2)]
    public string Verdict => Checks.Count > 0 && Checks.All(c => c.Passed) ? "pass" : "fail";

    /// <summary>The names of the checks that did not hold.</summary>
    [JsonPropertyOrder(-1)]
    public IReadOnlyList<string> FailedChecks => [.. Checks.Where(c => !c.Passed).Select(c => c.Name)];

    /// <summary>The report as one JSON object (snake_case names).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads a report written by <see cref="ToJson"/> back (for tools and tests).</summary>
    public static JsonElement Parse(string json) => JsonDocument.Parse(json).RootElement.Clone();

    /// <summary>
    /// The report of <paramref name="vm"/> now: its vSMMUs and devices with the VMM's own counters,
    /// and what the harness measured per device (<paramref name="figures"/>, by device name).
    /// </summary>
    public static VmReport Build(Vm vm, string host, IReadOnlyDictionary<string, DeviceRunFigures> figures, IReadOnlyList<RunCheck> checks,
        IEnumerable<string>? notes = null)
    {
        ArgumentNullException.ThrowIfNull(vm);
        ArgumentNullException.ThrowIfNull(figures);
        ArgumentNullException.ThrowIfNull(checks);
        var vsmmus = vm.Vsmmus.Select(v =>
        {
            VSmmuProperties p = v.Device.Properties;
            AcceleratedVSmmuCounters? c = (v.Device as AcceleratedVSmmu)?.Counters;
            return new VsmmuReport(v.Name, $"0x{v.Placed.Base:X}", v.Placed.Spi, v.Accel, p.Cmdqv, v.PhysicalSmmu, p.Ats, p.Ril, p.SsidSize, p.OasBits,
                v.Traps, v.CommandQueueTraps, v.CmdqvTraps, v.CmdqvDirectAccesses, v.CmdqvDirectDoorbells, v.TotalInterrupts,
                c?.CommandsForwarded ?? 0, c?.Batches ?? 0, c?.EventsDelivered ?? 0,
                [.. v.Devices.Select(d => Device(d, figures))]);
        }).ToList();
        var unattached = vm.Devices.Where(d => d.Vsmmu is null).Select(d => Device(d, figures)).ToList();
        var all = vsmmus.SelectMany(v => v.Devices).Concat(unattached).ToList();
        var invalidation = new InvalidationReport(
            all.Aggregate(PathFigures.Zero, (s, d) => s + d.Trapped), all.Aggregate(PathFigures.Zero, (s, d) => s + d.Direct));
        return new VmReport(host, vm.Tables.DeviceTreeBoot ? "device tree" : "acpi", vm.Ram.Size, vsmmus, invalidation, checks,
            [.. vm.Notes, .. notes ?? [], .. unattached.Select(d => $"{d.Name}: no vIOMMU above it ({d.Kind})")]);
    }

    private static DeviceReport Device(VmDevice d, IReadOnlyDictionary<string, DeviceRunFigures> figures)
    {
        DeviceRunFigures f = figures.GetValueOrDefault(d.Name) ?? DeviceRunFigures.None;
        string kind = d.Kind switch
        {
            VmDeviceKind.Vfio => "vfio",
            VmDeviceKind.VfioUntranslated => "vfio-untranslated",
            VmDeviceKind.Emulated => "emulated",
            _ => "not-run",
        };
        return new DeviceReport(d.Name, kind, d.Host?.Address, d.Host?.PhysicalSmmu, d.Bus,
            $"{d.RequesterId >> 8:x2}:{(d.RequesterId >> 3) & 0x1F:x2}.{d.RequesterId & 7}", $"0x{d.Vsid:X}", d.HotPlugged,
            f.Dmas, f.Bytes, f.FaultsExpected, f.FaultsSeen, f.Trapped, f.Direct);
    }
}
