using System.Diagnostics;
using CliCommand = System.CommandLine.Command;
using System.CommandLine;

namespace NestedSmmu.Cli;

/// <summary>
/// `nestedsmmu run`: the main job. Until the VMM and guest layers exist it runs the hardware
/// self-check: a driver programs a physical SMMUv3 through its registers and queues, an endpoint
/// DMAs through stage 1, stage 2 and nested translations, invalidations and faults are checked.
/// </summary>
internal static class RunCommand
{
    public static CliCommand Create(TextWriter stdout, TextWriter stderr)
    {
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Print each check as it runs." };
        var cmd = new CliCommand("run", "Run NestedSmmu end to end on the embedded emulated host (today: the SMMUv3 hardware self-check).") { verbose };
        cmd.SetAction(parse =>
        {
            bool v = parse.GetValue(verbose);
            stdout.WriteLine("NestedSmmu run: SMMUv3 hardware self-check (the VMM and guest layers are not built yet).");
            var sw = Stopwatch.StartNew();
            var check = new HardwareSelfCheck(v ? stdout : TextWriter.Null);
            int failed = check.Run();
            stdout.WriteLine($"{check.Passed} checks passed, {failed} failed in {sw.Elapsed.TotalMilliseconds:F0} ms; " +
                             $"{check.Counters.Translations} translations, {check.Counters.CommandsExecuted} commands, {check.Counters.EventsWritten} events, " +
                             $"IOTLB {check.TlbHits} hits / {check.TlbMisses} misses.");
            foreach (var f in check.Failures) stderr.WriteLine($"FAILED: {f}");
            return failed == 0 ? 0 : 1;
        });
        return cmd;
    }
}
