namespace NestedSmmu.Scenarios.SelfChecks;

/// <summary>
/// The outcome of a self-check: each named check passes or fails, and is logged as it runs
/// ("  [ok] what" / "  [FAIL] what") so a user sees where a run went wrong.
/// </summary>
public sealed class CheckList(TextWriter log)
{
    private readonly List<string> _failures = new();

    public int Passed { get; private set; }
    public IReadOnlyList<string> Failures => _failures;

    /// <summary>Records <paramref name="what"/> as passed when <paramref name="ok"/>, failed otherwise; returns <paramref name="ok"/>.</summary>
    public bool Check(string what, bool ok)
    {
        log.WriteLine($"  [{(ok ? "ok" : "FAIL")}] {what}");
        if (ok) Passed++;
        else _failures.Add(what);
        return ok;
    }

    /// <summary>Writes an informational line to the log.</summary>
    public void Note(string line) => log.WriteLine(line);
}
