namespace NestedSmmu.Scenarios;

/// <summary>
/// A scenario or result document that does not follow its format. <see cref="Path"/> is the JSON
/// path of the offending value (<c>$.memory[2].qwords[1]</c>), <see cref="Detail"/> what is wrong
/// with it; the message joins them, after the file name when the document came from a file.
/// </summary>
public sealed class ScenarioFormatException : FormatException
{
    public ScenarioFormatException(string path, string detail, string? fileName = null, Exception? innerException = null)
        : base(Compose(path, detail, fileName), innerException)
    {
        Path = path;
        Detail = detail;
        FileName = fileName;
    }

    /// <summary>JSON path of the problem, <c>$</c> for the document itself.</summary>
    public string Path { get; }

    /// <summary>What is wrong, without the path.</summary>
    public string Detail { get; }

    /// <summary>The file the document came from, when known.</summary>
    public string? FileName { get; }

    /// <summary>The same error, attributed to <paramref name="fileName"/>.</summary>
    public ScenarioFormatException WithFileName(string fileName) => new(Path, Detail, fileName, InnerException);

    private static string Compose(string path, string detail, string? fileName) =>
        fileName is null ? $"{path}: {detail}" : $"{fileName}: {path}: {detail}";
}
