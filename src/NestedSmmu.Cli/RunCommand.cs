using System.Diagnostics;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Scenarios.SelfChecks;
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
        var profileOption = new Option<string>("--profile")
        {
            Description = $"The emulated host: an embedded profile ({string.Join(", ", HostProfile.EmbeddedNames)}) or a host profile JSON file.",
            DefaultValueFactory = _ => "grace",
        };
        var cmd = new CliCommand("run", "Run NestedSmmu end to end on the embedded emulated host (today: the SMMUv3 self-check and a nested iommufd run on the emulated Grace-class host).") { verbose, profileOption };
        cmd.SetAction(parse =>
        {
            bool v = parse.GetValue(verbose);
            string profileName = parse.GetValue(profileOption) ?? "grace";
            HostProfile profile;
            try
            {
                if (!HostProfile.EmbeddedNames.Contains(profileName) && !File.Exists(profileName))
                {
                    stderr.WriteLine($"error: host profile '{profileName}' is neither an embedded profile ({string.Join(", ", HostProfile.EmbeddedNames)}) nor a file.");
                    return 2;
                }
                profile = HostProfile.EmbeddedNames.Contains(profileName) ? HostProfile.LoadEmbedded(profileName) : HostProfile.Load(profileName);
                profile.Validate();
            }
            catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                stderr.WriteLine($"error: host profile '{profileName}': {e.Message}");
                return 2;
            }
            var log = v ? stdout : TextWriter.Null;
            stdout.WriteLine("NestedSmmu run (the VMM and guest layers are not built yet: this run drives the hardware model and the emulated host's iommufd directly).");
            var sw = Stopwatch.StartNew();
            stdout.WriteLine("1. SMMUv3 hardware self-check: a driver on the registers and command queue, an endpoint's DMA.");
            var check = new HardwareSelfCheck(log);
            int failed = check.Run();
            stdout.WriteLine($"   {check.Passed} checks passed, {failed} failed; " +
                             $"{check.Counters.Translations} translations, {check.Counters.CommandsExecuted} commands, {check.Counters.EventsWritten} events, " +
                             $"IOTLB {check.TlbHits} hits / {check.TlbMisses} misses.");
            stdout.WriteLine($"2. Emulated host '{profile.Name}' through IIommufd: nested translation across two SMMUs.");
            var host = new EmulatedHostSelfCheck(log, profile);
            int hostFailed = host.Run();
            stdout.WriteLine($"   {host.Passed} checks passed, {hostFailed} failed.");
            foreach (var f in check.Failures.Concat(host.Failures)) stderr.WriteLine($"FAILED: {f}");
            stdout.WriteLine($"{check.Passed + host.Passed} checks passed, {failed + hostFailed} failed in {sw.Elapsed.TotalMilliseconds:F0} ms.");
            return failed + hostFailed == 0 ? 0 : 1;
        });
        return cmd;
    }
}
