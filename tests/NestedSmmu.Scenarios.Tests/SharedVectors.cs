using NestedSmmu.Tests.Common;

namespace NestedSmmu.Scenarios.Tests;

/// <summary>
/// The probe scenarios and their results (tests/vectors/scenarios; provenance in
/// tests/vectors/README.md), found through <see cref="TestVectors"/>.
/// </summary>
internal static class SharedVectors
{
    /// <summary>The scenarios folder; throws when it is absent or empty.</summary>
    public static string ScenarioDirectory => TestVectors.DirectoryOf("scenarios");

    /// <summary>A scenario (<c>name.json</c>) or result (<c>name.kind.json</c>) file's full path.</summary>
    public static string PathOf(string fileName) => TestVectors.PathOf("scenarios", fileName);

    /// <summary>Scenario inputs: <c>name.json</c> with no other dot.</summary>
    public static TheoryData<string> ScenarioFiles() => Names(isResult: false);

    /// <summary>Results: <c>name.intended.json</c>, <c>name.qemu.json</c>, <c>name.quirks.json</c>, ...</summary>
    public static TheoryData<string> ResultFiles() => Names(isResult: true);

    /// <summary>The scenario a result file belongs to: <c>probe-x.qemu.json</c> → <c>probe-x.json</c>.</summary>
    public static string ScenarioOf(string resultFileName)
    {
        string stem = Path.GetFileNameWithoutExtension(resultFileName);
        return Path.GetFileNameWithoutExtension(stem) + ".json";
    }

    private static TheoryData<string> Names(bool isResult)
    {
        var data = new TheoryData<string>();
        foreach (string path in Directory.EnumerateFiles(ScenarioDirectory, "*.json").Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(path);
            bool result = Path.GetFileNameWithoutExtension(name).Contains('.');
            if (result == isResult) data.Add(name);
        }
        return data;
    }
}
