using NestedSmmu.Scenarios;

namespace NestedSmmu.Cli.Tests;

public sealed class FromDumpAndRunTests
{
    /// <summary>
    /// The QEMU stage-1 example as a raw memory image plus a register list, the way a dump from a
    /// real system or another emulator arrives: it must land at 0x4ecba567.
    /// </summary>
    [Fact]
    public void From_dump_replays_a_memory_image_and_register_list()
    {
        var scenario = ScenarioReader.ReadFile(Path.Combine(CliRunner.ScenarioDir, "probe-qemu-example-s1.json"));
        const ulong imageBase = 0x4000_0000;
        ulong end = scenario.Memory.Max(m => m.Address + (ulong)m.Qwords.Length * 8);
        var image = new byte[end - imageBase];
        foreach (var block in scenario.Memory)
            for (int i = 0; i < block.Qwords.Length; i++)
                BitConverter.GetBytes(block.Qwords.Span[i]).CopyTo(image, (int)(block.Address - imageBase) + 8 * i);
        string imagePath = CliRunner.TempFile("ram.bin", "");
        File.WriteAllBytes(imagePath, image);
        string regs = CliRunner.TempFile("regs.txt", """
            # SMMU registers captured from the example
            STRTAB_BASE = 0x40000000
            STRTAB_BASE_CFG = 0x5
            EVENTQ_BASE: 0x40f00006
            CR0 0x5
            """);

        var run = CliRunner.Run("translate", "--from-dump", "--registers", regs, "--memory", $"{imagePath}@0x40000000",
            "--access", "0x10:0x8080604567:write", "--access", "0x10:0x8080604567:read", "--json");
        run.ExitCode.ShouldBe(0, run.Stderr);
        ScenarioResultReader.Parse(run.Stdout).Results.ShouldBe([new AccessResult.Pa(0x4ecba567), new AccessResult.Pa(0x4ecba567)]);
        run.Stderr.ShouldContain("loaded ram.bin");
    }

    [Fact]
    public void Help_lists_the_commands()
    {
        var run = CliRunner.Run("--help");
        run.ExitCode.ShouldBe(0);
        run.Stdout.ShouldContain("translate");
        run.Stdout.ShouldContain("run");
    }
}
