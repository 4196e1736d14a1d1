using System.CommandLine;

namespace NestedSmmu.Cli;

/// <summary>The `nestedsmmu` command tree. Output streams are parameters so tests can run it in-process.</summary>
public static class CliApp
{
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("NestedSmmu: accelerated, nested Arm SMMUv3 virtualization, modelled end to end.")
        {
            RunCommand.Create(stdout, stderr),
            TranslateCommand.Create(stdout, stderr),
            CheckCommand.Create(stdout, stderr),
            TablesCommand.Create(stdout, stderr),
        };
        var config = new InvocationConfiguration { Output = stdout, Error = stderr };
        return root.Parse(args).Invoke(config);
    }
}
