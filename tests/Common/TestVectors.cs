using System.Reflection;

namespace NestedSmmu.Tests.Common;

/// <summary>
/// The one way tests find their reference vectors: tests/vectors in the repository, copied
/// beside the test binaries at build time (tests/Directory.Build.props). Nothing outside the
/// repository is read. A missing vector is an error, never a skip.
/// </summary>
internal static class TestVectors
{
    /// <summary>The vectors folder beside the test binaries.</summary>
    public static string Root
    {
        get
        {
            string dir = Path.Combine(AppContext.BaseDirectory, "vectors");
            if (!Directory.Exists(dir))
                throw new DirectoryNotFoundException($"Test vectors missing: '{dir}' does not exist (tests/vectors is copied there at build time).");
            return dir;
        }
    }

    /// <summary>A file under the vectors folder (<c>scenarios/probe-x.json</c>); it must exist.</summary>
    public static string PathOf(params string[] parts)
    {
        string path = Path.Combine([Root, .. parts]);
        if (!File.Exists(path)) throw new FileNotFoundException($"Test vector missing: '{path}'.", path);
        return path;
    }

    /// <summary>A folder under the vectors folder (<c>scenarios</c>, <c>qemu</c>); it must exist and hold files.</summary>
    public static string DirectoryOf(params string[] parts)
    {
        string dir = Path.Combine([Root, .. parts]);
        if (!Directory.Exists(dir) || !Directory.EnumerateFiles(dir).Any())
            throw new DirectoryNotFoundException($"Test vectors missing: '{dir}' is absent or empty.");
        return dir;
    }

    /// <summary>The repository's root folder, as the build saw it (for tests over the source tree).</summary>
    public static string RepositoryRoot =>
        typeof(TestVectors).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "NestedSmmu.RepositoryRoot").Value
        ?? throw new InvalidOperationException("NestedSmmu.RepositoryRoot metadata missing.");
}
