using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using NestedSmmu.Scenarios.Perf;
using CliCommand = System.CommandLine.Command;

namespace NestedSmmu.Cli;

/// <summary>
/// `nestedsmmu bench [--json] [--quick]`: a short in-process run of the performance figures
/// (translation, commands) on the same workloads as the BenchmarkDotNet suite, each with its
/// median, target, ratio to a baseline timed beside it, and pass/miss.
/// </summary>
internal static class BenchCommand
{
    public static CliCommand Create(TextWriter stdout, TextWriter stderr)
    {
        var jsonOption = new Option<bool>("--json") { Description = "Print {\"machine\": {...}, \"benchmarks\": [...]} instead of the table." };
        var quickOption = new Option<bool>("--quick") { Description = "Fewer, shorter samples (a few seconds; noisier)." };
        var cmd = new CliCommand("bench",
            "Time the model's hot paths in process (under a minute): TLB hit, nested cold walks, walk-cache hits, command streams.\n" +
            "The full BenchmarkDotNet suite: dotnet run -c Release --project bench/NestedSmmu.Benchmarks -- --filter '*'")
        { jsonOption, quickOption };
        cmd.SetAction(parse =>
        {
            bool json = parse.GetValue(jsonOption), quick = parse.GetValue(quickOption);
            if (!json) stdout.WriteLine($"{"benchmark",-40} {"median",10} {"target",22} {"x baseline",10} {"B/op",6}  result");
            var figures = QuickSuite.Run(quick, json ? null : f => stdout.WriteLine(Row(f)));
            if (json) stdout.WriteLine(ToJson(figures).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else stdout.WriteLine($"machine: {Machine()["os"]}, {Environment.ProcessorCount} logical CPUs, .NET {Environment.Version}; medians; ratios are to the baseline timed in the same run.");
            return 0;
        });
        return cmd;
    }

    private static string Ns(double ns) => ns >= 1e6 ? $"{ns / 1e6:0.00} ms" : ns >= 1e3 ? $"{ns / 1e3:0.00} us" : $"{ns:0.0} ns";

    private static string Row(BenchFigure f)
    {
        string target = f.TargetNs is { } t ? "<= " + Ns(t) : "";
        if (f.TargetRatio is { } r) target += $" & <= {r:0.0}x";
        string ratio = f.BaselineRatio is { } b ? b.ToString("0.00", CultureInfo.InvariantCulture) + "x" : "";
        string result = f.Pass switch { true => "pass", false => "miss", null => "" };
        return $"{f.Name,-40} {Ns(f.MedianNs),10} {target,22} {ratio,10} {f.AllocatedBytesPerOp,6:0.#}  {result}";
    }

    private static JsonObject Machine() => new()
    {
        ["os"] = RuntimeInformation.OSDescription,
        ["architecture"] = RuntimeInformation.ProcessArchitecture.ToString(),
        ["logical_cpus"] = Environment.ProcessorCount,
        ["runtime"] = RuntimeInformation.FrameworkDescription,
    };

    internal static JsonObject ToJson(IReadOnlyList<BenchFigure> figures)
    {
        var list = new JsonArray();
        foreach (var f in figures)
        {
            list.Add(new JsonObject
            {
                ["name"] = f.Name,
                ["median_ns"] = Math.Round(f.MedianNs, 3),
                ["target_ns"] = f.TargetNs is { } t ? Math.Round(t, 3) : null,
                ["baseline_ratio"] = f.BaselineRatio is { } b ? Math.Round(b, 4) : null,
                ["target_ratio"] = f.TargetRatio,
                ["baseline"] = f.Baseline,
                ["allocated_bytes_per_op"] = Math.Round(f.AllocatedBytesPerOp, 3),
                ["pass"] = f.Pass,
            });
        }
        return new JsonObject { ["machine"] = Machine(), ["benchmarks"] = list };
    }
}
