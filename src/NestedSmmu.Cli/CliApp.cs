using System.CommandLine;

namespace NestedSmmu.Cli;

/// <summary>The `nestedsmmu` command tree. Output streams are parameters so tests can run it in-process.</summary>
public static class CliApp
{
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("NestedSmmu: accelerated, nested Arm SMMUv3 virtualization, modelled end to end.\n" +
            "Examples:\n  nestedsmmu run\n  nestedsmmu plan --host grace --cmdqv on > vm.args\n" +
            "  nestedsmmu check --host grace -- \"$(cat vm.args)\"\n  nestedsmmu tables --out tables -- -machine virt,accel=kvm -bios fw.fd ...\n" +
            "  nestedsmmu translate scenario.json --explain\n  nestedsmmu fuzz --seed 1 --ops 100000\n" +
            "Each command's --help lists its options with an example; data output has --json.")
        {
            RunCommand.Create(stdout, stderr),
            TranslateCommand.Create(stdout, stderr),
            CheckCommand.Create(stdout, stderr),
            TablesCommand.Create(stdout, stderr),
            PlanCommand.Create(stdout, stderr),
            BenchCommand.Create(stdout, stderr),
            FuzzCommand.Create(stdout, stderr),
        };
        var config = new InvocationConfiguration { Output = stdout, Error = stderr };
        return root.Parse(args).Invoke(config);
    }
}
