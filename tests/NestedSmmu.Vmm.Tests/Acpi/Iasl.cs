using System.Diagnostics;

namespace NestedSmmu.Vmm.Tests.Acpi;

/// <summary>ACPICA's iasl (acpica-tools), when it is installed: disassembles tables as an independent check.</summary>
internal static class Iasl
{
    /// <summary>iasl's full path on PATH, or null.</summary>
    public static string? Path { get; } = Environment.GetEnvironmentVariable("PATH")?
        .Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        .Select(dir => System.IO.Path.Combine(dir, "iasl"))
        .FirstOrDefault(File.Exists);

    public const string MissingReason = "iasl (acpica-tools) is not on PATH: install acpica-tools to disassemble the tables";

    /// <summary>Disassembles <paramref name="tables"/> (name → bytes) with iasl -d; returns (exit code, output, .dsl texts).</summary>
    public static (int ExitCode, string Output, Dictionary<string, string> Dsl) Disassemble(IReadOnlyDictionary<string, byte[]> tables)
    {
        string dir = Directory.CreateTempSubdirectory("nestedsmmu-iasl-").FullName;
        try
        {
            foreach (var (name, bytes) in tables) File.WriteAllBytes(System.IO.Path.Combine(dir, name + ".dat"), bytes);
            var psi = new ProcessStartInfo(Path!) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add("-d");
            foreach (string name in tables.Keys) psi.ArgumentList.Add(name + ".dat");
            using var p = Process.Start(psi)!;
            string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            p.WaitForExit();
            var dsl = tables.Keys.Where(n => File.Exists(System.IO.Path.Combine(dir, n + ".dsl")))
                .ToDictionary(n => n, n => File.ReadAllText(System.IO.Path.Combine(dir, n + ".dsl")));
            return (p.ExitCode, output, dsl);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
