namespace NestedSmmu.Iommufd.Conformance;

/// <summary>
/// One call of the conformance sequence and what the backend answered: <c>ok</c> plus the
/// values that matter, or the errno's name. Printed as <c>name: result</c>, one per line, which
/// is also the format of the committed real-kernel vector.
/// </summary>
/// <param name="Name">The step, dotted (<c>viommu.alloc.flags</c>); unique within a run.</param>
/// <param name="Result">The answer (<c>ok id=3</c>, <c>EOPNOTSUPP</c>).</param>
public sealed record ConformanceLine(string Name, string Result)
{
    /// <summary>Separates name and result in the text form.</summary>
    public const string Separator = ": ";

    /// <summary>The text form, <c>name: result</c>.</summary>
    public override string ToString() => Name + Separator + Result;

    /// <summary>Parses the text form; null when the line is not one (blank lines, comments, console noise).</summary>
    public static ConformanceLine? TryParse(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        string text = line.Trim();
        if (text.Length == 0 || text[0] == '#') return null;
        int at = text.IndexOf(Separator, StringComparison.Ordinal);
        if (at <= 0 || text[..at].Contains(' ', StringComparison.Ordinal)) return null;
        return new ConformanceLine(text[..at], text[(at + Separator.Length)..]);
    }
}
