namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// A host profile that cannot describe a host. <see cref="Path"/> is the JSON path of the
/// offending value (<c>$.devices[2].smmu</c>), <see cref="Detail"/> what is wrong with it; the
/// message joins them, after the source (file or embedded profile name) when known.
/// </summary>
public sealed class HostProfileException : FormatException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">JSON path of the problem (<c>$</c> for the document).</param>
    /// <param name="detail">What is wrong.</param>
    /// <param name="source">The file or embedded profile, or null.</param>
    /// <param name="innerException">The cause, or null.</param>
    public HostProfileException(string path, string detail, string? source = null, Exception? innerException = null)
        : base(source is null ? $"{path}: {detail}" : $"{source}: {path}: {detail}", innerException)
    {
        Path = path;
        Detail = detail;
        Source = source;
    }

    /// <summary>JSON path of the problem.</summary>
    public string Path { get; }

    /// <summary>What is wrong, without the path.</summary>
    public string Detail { get; }

    /// <summary>Where the profile came from (a file path or <c>embedded profile 'grace'</c>), or null.</summary>
    public new string? Source { get; }

    internal HostProfileException WithSource(string source) => new(Path, Detail, source, InnerException);
}
