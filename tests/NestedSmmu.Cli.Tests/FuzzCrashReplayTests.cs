using NestedSmmu.Fuzz;
using NestedSmmu.Tests.Common;

namespace NestedSmmu.Cli.Tests;

/// <summary>
/// Every input that once crashed a coverage-guided fuzz target (fuzz/run.sh copies them to
/// tests/vectors/fuzz-crashes/TARGET/) is replayed through the same target: it must now end in
/// success or in the input's documented error, never in another exception.
/// </summary>
public sealed class FuzzCrashReplayTests
{
    public static TheoryData<string, string> Crashes()
    {
        var data = new TheoryData<string, string>();
        foreach (string dir in Directory.EnumerateDirectories(TestVectors.DirectoryOf("fuzz-crashes")).Order(StringComparer.Ordinal))
            foreach (string file in Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal))
                data.Add(Path.GetFileName(dir), Path.GetFileName(file));
        return data;
    }

    [Theory]
    [MemberData(nameof(Crashes))]
    public void A_saved_crash_input_no_longer_crashes(string target, string file)
    {
        FuzzTargets.All.ShouldContainKey(target, "each folder is named after a fuzz target");
        byte[] input = File.ReadAllBytes(TestVectors.PathOf("fuzz-crashes", target, file));
        Should.NotThrow(() => FuzzTargets.Run(target, input));
    }

    [Fact]
    public void Every_target_has_a_seed_corpus_and_accepts_it()
    {
        string corpus = Path.Combine(TestVectors.RepositoryRoot, "fuzz", "corpus");
        foreach (string target in FuzzTargets.All.Keys)
        {
            string[] seeds = Directory.GetFiles(Path.Combine(corpus, target));
            seeds.ShouldNotBeEmpty(target);
            foreach (string seed in seeds) Should.NotThrow(() => FuzzTargets.Run(target, File.ReadAllBytes(seed)), seed);
        }
    }
}
