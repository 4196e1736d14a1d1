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

    /// <summary>The shared/ folder beside the repository (reference vectors).</summary>
    public static string SharedDir
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "shared", "vectors", "scenarios");
                if (Directory.Exists(candidate)) return Path.Combine(dir.FullName, "shared");
            }
            throw new DirectoryNotFoundException("shared/vectors/scenarios not found above the test directory: the repository must sit beside shared/.");
        }
    }

    public static string TempFile(string name, string contents)
    {
        string dir = Path.Combine(Path.GetTempPath(), "nestedsmmu-cli-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, contents);
        return path;
    }
}
