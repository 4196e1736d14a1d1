namespace NestedSmmu.Guest.Smmu;

/// <summary>Severity of a guest driver message, as the kernel's dev_err/dev_warn/dev_info.</summary>
public enum GuestLogLevel { Info, Warning, Error }

/// <summary>One driver message.</summary>
public readonly record struct GuestLogEntry(GuestLogLevel Level, string Device, string Message)
{
    public override string ToString() => $"{Device}: {Level.ToString().ToLowerInvariant()}: {Message}";
}

/// <summary>The guest kernel's log (dmesg): what the drivers report, in order.</summary>
public sealed class GuestLog
{
    private readonly List<GuestLogEntry> _entries = new();
    public IReadOnlyList<GuestLogEntry> Entries => _entries;
    /// <summary>Optional live sink (a -v trace).</summary>
    public Action<GuestLogEntry>? Sink { get; set; }

    public void Info(string device, string message) => Add(GuestLogLevel.Info, device, message);
    public void Warn(string device, string message) => Add(GuestLogLevel.Warning, device, message);
    public void Error(string device, string message) => Add(GuestLogLevel.Error, device, message);

    public IEnumerable<GuestLogEntry> Errors => _entries.Where(e => e.Level == GuestLogLevel.Error);

    private void Add(GuestLogLevel level, string device, string message)
    {
        var e = new GuestLogEntry(level, device, message);
        _entries.Add(e);
        Sink?.Invoke(e);
    }
}
