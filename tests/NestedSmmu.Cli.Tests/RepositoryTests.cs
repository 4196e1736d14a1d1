using NestedSmmu.Tests.Common;

namespace NestedSmmu.Cli.Tests;

/// <summary>
/// The repository stands on its own: a user's clone has no team folder beside it, so nothing
/// that builds, tests or runs the product may name one. Only the maintainer tools under
/// tools/qemu-vectors (which regenerate vectors with QEMU, by hand) may.
/// </summary>
public sealed class RepositoryTests
{
    // The team folder's name, spelled so that this file does not itself name the path it looks for.
    private static readonly string TeamFolder = string.Concat("sha", "red");

    private static readonly string[] Forbidden =
        [$"../{TeamFolder}", $"{TeamFolder}/vectors", $"{TeamFolder}/tools", $"{TeamFolder}/design", $"{TeamFolder}/reference"];

    private static readonly string[] Extensions = [".cs", ".csproj", ".props", ".targets", ".slnx", ".sh", ".json", ".md", ".txt"];

    private static IEnumerable<string> ProductFiles()
    {
        string root = TestVectors.RepositoryRoot;
        var files = new List<string>();
        foreach (string top in new[] { "src", "tests", "bench", "examples", "docs", ".ci" })
        {
            string dir = Path.Combine(root, top);
            if (!Directory.Exists(dir)) continue;
            files.AddRange(Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
                .Where(f => Extensions.Contains(Path.GetExtension(f)) || top == ".ci")
                .Where(f => !IsBuildOutput(Path.GetRelativePath(root, f))));
        }
        files.AddRange(Directory.EnumerateFiles(root).Where(f => Extensions.Contains(Path.GetExtension(f)) || Path.GetFileName(f) == "test.sh"));
        return files;
    }

    private static bool IsBuildOutput(string relative) =>
        relative.Replace('\\', '/').Split('/') is var parts && (parts.Contains("bin") || parts.Contains("obj") || parts.Contains("BenchmarkDotNet.Artifacts"));

    [Fact]
    public void Repository_root_is_found_and_has_the_solution()
    {
        File.Exists(Path.Combine(TestVectors.RepositoryRoot, "NestedSmmu.slnx")).ShouldBeTrue(TestVectors.RepositoryRoot);
        ProductFiles().Count().ShouldBeGreaterThan(100);
    }

    [Fact]
    public void No_source_test_or_doc_file_names_the_team_folder_beside_the_repository()
    {
        var offenders = new List<string>();
        foreach (string file in ProductFiles())
        {
            string text = File.ReadAllText(file);
            foreach (string needle in Forbidden)
                if (text.Contains(needle, StringComparison.Ordinal))
                    offenders.Add($"{Path.GetRelativePath(TestVectors.RepositoryRoot, file)}: {needle}");
        }
        offenders.ShouldBeEmpty();
    }
}
