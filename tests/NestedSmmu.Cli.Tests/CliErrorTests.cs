namespace NestedSmmu.Cli.Tests;

/// <summary>Bad input gives one clear error (naming the JSON path) and a non-zero exit; nothing crashes.</summary>
public sealed class CliErrorTests
{
    private const string Valid = """
        { "format": "nestedsmmu-scenario/1",
          "smmu": { "writes": [ { "reg": "CR0", "value": "0x0" } ] },
          "memory": [ { "address": "0x40000000", "qwords": ["0x1"] } ],
          "accesses": [ { "sid": 8, "ssid": null, "iova": "0x1000", "access": "write" } ] }
        """;

    [Theory]
    [InlineData("bad hex", "\"0x1\"]", "\"0xZZ\"]", "$.memory[0].qwords[0]")]
    [InlineData("unknown register", "\"CR0\"", "\"CR9\"", "$.smmu.writes[0].reg")]
    [InlineData("memory outside 52 bits", "\"0x40000000\"", "\"0x10000000000000\"", "$.memory[0]")]
    [InlineData("missing field", "\"iova\": \"0x1000\", ", "", "$.accesses[0]")]
    [InlineData("wrong format", "nestedsmmu-scenario/1", "nestedsmmu-scenario/2", "$.format")]
    public void Malformed_scenario_gives_one_clear_error(string what, string from, string to, string path)
    {
        string json = Valid.Replace(from, to);
        json.ShouldNotBe(Valid, what);
        var run = CliRunner.Run("translate", CliRunner.TempFile("bad.json", json));
        run.ExitCode.ShouldBe(2, what);
        run.Stdout.ShouldBeEmpty();
        string[] lines = run.Stderr.Trim().Split('\n');
        lines.Length.ShouldBe(1, run.Stderr);
        lines[0].ShouldStartWith("error: ");
        lines[0].ShouldContain(path);
    }

    [Fact]
    public void Valid_base_scenario_runs()
    {
        var run = CliRunner.Run("translate", CliRunner.TempFile("ok.json", Valid), "--json");
        run.ExitCode.ShouldBe(0, run.Stderr);
        run.Stdout.ShouldContain("\"pa\": \"0x1000\""); // SMMU disabled, GBPA bypass
    }

    [Fact]
    public void Missing_file_and_missing_arguments_are_errors()
    {
        CliRunner.Run("translate", Path.Combine(Path.GetTempPath(), "does-not-exist.json")).ExitCode.ShouldBe(2);
        var none = CliRunner.Run("translate");
        none.ExitCode.ShouldBe(2);
        none.Stderr.ShouldContain("--from-dump");
        var dumpNoRegs = CliRunner.Run("translate", "--from-dump", "--access", "0x10:0x1000");
        dumpNoRegs.ExitCode.ShouldBe(2);
        dumpNoRegs.Stderr.ShouldContain("--registers");
    }

    [Theory]
    [InlineData("0x10")]
    [InlineData("0x10:0xZZ")]
    [InlineData("0x10:0x1000:execute")]
    [InlineData("0x10/0x100000:0x1000")]
    public void Bad_access_specs_are_rejected(string spec)
    {
        string regs = CliRunner.TempFile("regs.txt", "CR0 = 0\n");
        var run = CliRunner.Run("translate", "--from-dump", "--registers", regs, "--access", spec);
        run.ExitCode.ShouldBe(2);
        run.Stderr.ShouldContain(spec);
    }
}
