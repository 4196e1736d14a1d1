using System.CommandLine;
using System.Diagnostics;
using NestedSmmu.Cli.Run;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Machine;
using Spectre.Console;
using CliCommand = System.CommandLine.Command;

namespace NestedSmmu.Cli;

/// <summary>
/// `nestedsmmu run [--host PROFILE|FILE] [--seed N] [--json] [-v] [--hotplug DEVICE]... [-- QEMU-ARGS]`:
/// boots a VM on the emulated host end to end (VMM, reference guest, emulated kernel, hardware
/// models) and runs a DMA workload per device on both invalidation paths. With no QEMU arguments,
/// the default machine (<see cref="DefaultMachine"/>). Exit 0 when every check held, 1 naming the
/// failed checks, 2 for bad input (one <c>error:</c> line).
/// </summary>
internal static class RunCommand
{
    /// <summary>Runs shorter than this show no progress display.</summary>
    private static readonly TimeSpan ProgressAfter = TimeSpan.FromSeconds(1);

    /// <summary>Columns of the table when the output is not a terminal.</summary>
    private const int RedirectedWidth = 150;

    public static CliCommand Create(TextWriter stdout, TextWriter stderr)
    {
        var hostOption = new Option<string>("--host")
        {
            Description = $"The emulated host: an embedded profile ({string.Join(", ", HostProfile.EmbeddedNames)}) or a host profile JSON file.",
            DefaultValueFactory = _ => HostProfile.DefaultName,
        };
        var seedOption = new Option<int>("--seed") { Description = "Varies the workloads' data patterns (the run is deterministic for a seed)." };
        var jsonOption = new Option<bool>("--json") { Description = "Print the report as one JSON object (verdict, failed_checks, vsmmus with devices, invalidation by path)." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Print the command line, and trace MMIO traps, guest commands and iommufd ioctls." };
        var hotplug = new Option<string[]>("--hotplug")
        {
            Description = "Hot-plug a device after the guest booted, as device_add would (the text after -device, e.g. vfio-pci,host=0009:01:00.0,bus=rp9,id=dev9,iommufd=iommufd0). Repeatable.",
            Arity = ArgumentArity.ZeroOrMore,
            AllowMultipleArgumentsPerToken = false,
        };
        var qemuArgs = new Argument<string[]>("qemu-arguments")
        {
            Description = "A QEMU command line after '--' (any line `check` accepts); none for the default machine.",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var cmd = new CliCommand("run",
            "Boot a VM on the emulated host end to end: the guest programs its vSMMUs and CMDQVs, each device DMAs through map, unmap and fault, " +
            "with invalidations through the vSMMU queue (trapped) and through VCMDQs (direct).\n" +
            "Examples:\n  nestedsmmu run\n  nestedsmmu run --json --host small\n" +
            "  nestedsmmu run -- -machine virt,iommu=smmuv3 -device pcie-root-port,id=rp0,chassis=1 -device e1000e,bus=rp0")
        { hostOption, seedOption, jsonOption, verbose, hotplug, qemuArgs };
        cmd.SetAction(parse =>
        {
            string hostName = parse.GetValue(hostOption) ?? HostProfile.DefaultName;
            bool json = parse.GetValue(jsonOption), v = parse.GetValue(verbose);
            HostProfile profile;
            try
            {
                profile = HostProfileArgument.Load(hostName);
            }
            catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                stderr.WriteLine($"error: host profile '{hostName}': {e.Message}");
                return 2;
            }
            // With --json, stdout carries the one object; traces go to stderr.
            TextWriter traceOut = json ? stderr : stdout;
            var request = new RunRequest(profile, parse.GetValue(qemuArgs) ?? [], parse.GetValue(seedOption), parse.GetValue(hotplug) ?? [],
                v ? traceOut.WriteLine : null);
            if (v)
            {
                var shown = request.QemuArguments.Count == 0 ? DefaultMachine.Arguments(profile) : request.QemuArguments;
                traceOut.WriteLine("qemu-system-aarch64 " + string.Join(' ', shown.Select(Quote)));
            }
            var sw = Stopwatch.StartNew();
            RunOutcome outcome = RunWithProgress(request, interactive: !json && !v && ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected);
            sw.Stop();
            foreach (string w in outcome.Warnings) stderr.WriteLine(w);
            if (outcome.Error is { } error || outcome.Report is null)
            {
                stderr.WriteLine($"error: {outcome.Error}");
                return 2;
            }
            VmReport report = outcome.Report;
            if (json) stdout.WriteLine(report.ToJson());
            else Print(stdout, report, sw.Elapsed);
            foreach (string failed in report.FailedChecks) stderr.WriteLine($"FAILED: {failed}");
            return report.Verdict == "pass" ? 0 : 1;
        });
        return cmd;
    }

    private static string Quote(string arg) => arg.Any(c => char.IsWhiteSpace(c) || c is '"' or '\'') ? $"'{arg}'" : arg;

    /// <summary>Runs the harness; on a terminal, a progress line appears once the run passes one second.</summary>
    private static RunOutcome RunWithProgress(RunRequest request, bool interactive)
    {
        if (!interactive) return RunHarness.Run(request);
        string phase = "starting";
        var task = Task.Run(() => RunHarness.Run(request with { Phase = p => Volatile.Write(ref phase, p) }));
        if (!task.Wait(ProgressAfter))
        {
            AnsiConsole.Status().Spinner(Spinner.Known.Dots).Start("run", ctx =>
            {
                while (!task.Wait(100)) ctx.Status(Markup.Escape(Volatile.Read(ref phase)));
            });
        }
        return task.GetAwaiter().GetResult();
    }

    /// <summary>The people view: one table per vSMMU with its devices, the paths side by side, the verdict.</summary>
    private static void Print(TextWriter stdout, VmReport report, TimeSpan elapsed)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(stdout),
            Ansi = ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        // Redirected or captured output has no terminal width to follow: wide enough for one row per device.
        if (!ReferenceEquals(stdout, Console.Out) || Console.IsOutputRedirected) console.Profile.Width = RedirectedWidth;
        console.MarkupLine($"[bold]NestedSmmu run[/] on {Markup.Escape(report.Host)}: guest booted from {Markup.Escape(report.Boot)}, " +
                           $"{report.GuestRamBytes >> 20} MiB guest RAM, {report.Vsmmus.Count} vSMMU(s)");
        foreach (VsmmuReport v in report.Vsmmus)
        {
            string title = $"{v.Name} @ {v.Base} (SPI {v.Spi}) {(v.Accel ? $"accel on {v.PhysicalSmmu ?? "(unbound)"}" : "emulated")}" +
                           $"{(v.Cmdqv ? " + CMDQV" : "")}: ats={OnOff(v.Ats)} ril={OnOff(v.Ril)} ssidsize={v.Ssidsize} oas={v.Oas}";
            var t = new Table { Title = new TableTitle(Markup.Escape(title)), Border = TableBorder.Rounded };
            t.AddColumns("device", "host", "vSID", "DMAs", "bytes", "faults expected/seen", "trapped batches/commands", "direct batches/commands", "VMM traps trapped/direct");
            foreach (DeviceReport d in v.Devices)
            {
                t.AddRow(Markup.Escape(d.Name + (d.HotPlugged ? " (hot-plugged)" : "")), Markup.Escape(d.HostAddress ?? d.Kind), d.Vsid,
                    d.Dmas.ToString(), d.Bytes.ToString(), $"{d.FaultsExpected}/{d.FaultsSeen}",
                    $"{d.Trapped.Batches}/{d.Trapped.Commands}", $"{d.Direct.Batches}/{d.Direct.Commands}", $"{d.Trapped.VmmTraps}/{d.Direct.VmmTraps}");
            }
            if (v.Devices.Count == 0) t.AddRow("(no device)", "", "", "", "", "", "", "", "");
            t.Caption = new TableTitle(Markup.Escape($"MMIO traps {v.MmioTraps} (CMDQ_PROD/CONS {v.CommandQueueTraps}), CMDQV traps {v.CmdqvTraps}, " +
                $"direct VCMDQ accesses {v.CmdqvDirectAccesses} ({v.CmdqvDirectDoorbells} doorbells), forwarded {v.CommandsForwarded} commands " +
                $"in {v.HostInvalidateBatches} IOMMU_HWPT_INVALIDATE, {v.EventsDelivered} events delivered, {v.Interrupts} interrupts"));
            console.Write(t);
        }
        var paths = new Table { Title = new TableTitle("invalidation by path"), Border = TableBorder.Rounded };
        paths.AddColumns("path", "batches", "commands", "VMM traps", "traps per batch");
        foreach (var (name, p) in new[] { ("trapped (vSMMU queue)", report.Invalidation.Trapped), ("direct (VCMDQ)", report.Invalidation.Direct) })
            paths.AddRow(name, p.Batches.ToString(), p.Commands.ToString(), p.VmmTraps.ToString(), p.TrapsPerBatch is { } r ? r.ToString("F2") : "-");
        console.Write(paths);
        foreach (string note in report.Notes) console.MarkupLine($"note: {Markup.Escape(note)}");
        int failed = report.FailedChecks.Count;
        console.MarkupLine(report.Verdict == "pass"
            ? $"[green]PASS[/]: {report.Checks.Count} checks passed in {elapsed.TotalSeconds:F1} s"
            : $"[red]FAIL[/]: {failed} of {report.Checks.Count} checks failed in {elapsed.TotalSeconds:F1} s: {Markup.Escape(string.Join("; ", report.FailedChecks))}");
    }

    private static string OnOff(bool on) => on ? "on" : "off";
}
