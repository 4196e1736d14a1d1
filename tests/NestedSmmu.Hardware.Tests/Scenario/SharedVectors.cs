namespace NestedSmmu.Hardware.Tests.Scenarios;

/// <summary>
/// Finds the project's shared reference vectors: the repository sits next to <c>shared/</c>, so
/// the folder is found by walking up from the test binaries.
/// </summary>
internal static class SharedVectors
{
    public const string RelativePath = "shared/vectors/scenarios";

    private static readonly Lazy<string?> Found = new(Find);

    /// <summary>The scenarios folder; fails with a message saying where it was looked for.</summary>
    public static string ScenarioDirectory => Found.Value ?? throw new DirectoryNotFoundException(
        $"No '{RelativePath}' folder in {AppContext.BaseDirectory} or any folder above it. " +
        "The tests expect the repository to sit next to the project's shared/ folder.");

    public static bool Available => Found.Value is not null;

    /// <summary>A scenario (<c>name.json</c>) or result (<c>name.kind.json</c>) file's full path.</summary>
    public static string PathOf(string fileName) => Path.Combine(ScenarioDirectory, fileName);

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
        if (Found.Value is not string dir)
        {
            // One row whose test then fails on ScenarioDirectory with the message above.
            data.Add("(shared vectors not found)");
            return data;
        }
        foreach (string path in Directory.EnumerateFiles(dir, "*.json").Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(path);
            bool result = Path.GetFileNameWithoutExtension(name).Contains('.');
            if (result == isResult) data.Add(name);
        }
        return data;
    }

    private static string? Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, RelativePath);
            if (Directory.Exists(candidate)) return candidate;
        }
        return null;
    }
}
