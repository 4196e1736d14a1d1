using NestedSmmu.Tests.Common;

namespace NestedSmmu.Cli.Tests;

/// <summary>Runs the `nestedsmmu` command in process and captures what it prints.</summary>
internal static class CliRunner
{
    public sealed record Output(int ExitCode, string Stdout, string Stderr);

    public static Output Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return new Output(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>The probe scenarios folder (tests/vectors/scenarios).</summary>
    public static string ScenarioDir => TestVectors.DirectoryOf("scenarios");

    public static string TempFile(string name, string contents)
    {
        string dir = Path.Combine(Path.GetTempPath(), "nestedsmmu-cli-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, contents);
        return path;
    }
}
