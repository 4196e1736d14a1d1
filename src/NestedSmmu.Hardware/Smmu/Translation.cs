namespace NestedSmmu.Hardware.Smmu;

/// <summary>What a device asks for.</summary>
public enum AccessKind { Read, Write }

/// <summary>Data permissions granted by a translation.</summary>
[Flags]
public enum Permissions : byte { None = 0, Read = 1, Write = 2, ReadWrite = Read | Write }

/// <summary>Checks on <see cref="Permissions"/>.</summary>
public static class PermissionsExtensions
{
    /// <summary>Whether <paramref name="p"/> grants <paramref name="access"/>.</summary>
    public static bool Allows(this Permissions p, AccessKind access) => (p & (access == AccessKind.Read ? Permissions.Read : Permissions.Write)) != 0;
}

/// <summary>How an access ended.</summary>
public enum TranslationStatus
{
    /// <summary>Translated; <see cref="TranslationResult.PhysicalAddress"/> is valid.</summary>
    Success,
    /// <summary>Faulted with an event (recorded or not, see <see cref="TranslationResult.Recorded"/>).</summary>
    Fault,
    /// <summary>Terminated without any event (GBPA abort, STE.Config abort, unrecorded fault with no event at all).</summary>
    Abort,
}

/// <summary>
/// The outcome of one device access through an SMMU: never null, never an exception for a
/// guest-caused fault. A fault carries the event record the SMMU generates for it, whether or
/// not it was recorded in the event queue (CD.R / STE.S2R clear, or the queue off).
/// </summary>
public readonly record struct TranslationResult(
    TranslationStatus Status,
    ulong PhysicalAddress,
    Permissions Permissions,
    EventRecord Event,
    bool Recorded,
    int Stage)
{
    public bool IsSuccess => Status == TranslationStatus.Success;
    public EventType FaultType => Event.Type;

    public static TranslationResult Ok(ulong pa, Permissions perms) => new(TranslationStatus.Success, pa, perms, default, false, 0);
    public static TranslationResult Aborted() => new(TranslationStatus.Abort, 0, Permissions.None, default, false, 0);
    public static TranslationResult Faulted(EventRecord evt, int stage, bool recorded) => new(TranslationStatus.Fault, 0, Permissions.None, evt, recorded, stage);

    public override string ToString() => Status switch
    {
        TranslationStatus.Success => $"PA 0x{PhysicalAddress:X} ({Permissions})",
        TranslationStatus.Abort => "abort (no event)",
        _ => $"{Event.Type} stage {Stage}{(Recorded ? "" : " (not recorded)")}",
    };
}

/// <summary>One step of a translation, for `translate --explain`.</summary>
public sealed record TraceStep(string Kind, int Stage, int Level, ulong Address, ulong Value, string Detail, int Depth = 0);

/// <summary>Collects the steps of one translation. Pass null where no explanation is wanted.</summary>
public sealed class TranslationTrace
{
    private readonly List<TraceStep> _steps = new();
    public IReadOnlyList<TraceStep> Steps => _steps;
    /// <summary>Nesting depth: stage-2 walks of stage-1 table addresses are indented one level.</summary>
    public int Depth { get; set; }
    public void Add(string kind, int stage, int level, ulong address, ulong value, string detail) =>
        _steps.Add(new TraceStep(kind, stage, level, address, value, detail, Depth));
    public void Note(string detail) => _steps.Add(new TraceStep("note", 0, -1, 0, 0, detail, Depth));
}
