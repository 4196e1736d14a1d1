using NestedSmmu.Tests.Common;

namespace NestedSmmu.Iommufd.Tests;

/// <summary>
/// The two backends share the uAPI codecs (Uapi/) and nothing else: the emulated kernel does not
/// use the real-kernel backend, so either can change without the other. Both live in one
/// assembly, so this reads the source rather than the metadata.
/// </summary>
public sealed class LayeringTests
{
    [Fact]
    public void Emulated_does_not_import_the_linux_backend()
    {
        string emulated = Path.Combine(TestVectors.RepositoryRoot, "src", "NestedSmmu.Iommufd", "Emulated");
        var files = Directory.EnumerateFiles(emulated, "*.cs", SearchOption.AllDirectories).ToList();
        files.ShouldNotBeEmpty();
        files.Where(f => File.ReadAllText(f).Contains("NestedSmmu.Iommufd.Linux", StringComparison.Ordinal))
            .Select(f => Path.GetRelativePath(TestVectors.RepositoryRoot, f))
            .ShouldBeEmpty();
    }
}
