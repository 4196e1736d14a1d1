using NestedSmmu.Guest;
using NestedSmmu.Guest.Dma;
using NestedSmmu.Guest.Smmu;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.Machine;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Cli.Run;

/// <summary>What `nestedsmmu run` is asked to do.</summary>
/// <param name="Profile">The emulated host.</param>
/// <param name="QemuArguments">The machine; empty for <see cref="DefaultMachine"/>.</param>
/// <param name="Seed">Varies the workloads' data patterns.</param>
/// <param name="HotPlug">-device option strings to hot-plug after the guest booted (device_add).</param>
/// <param name="Trace">-v: MMIO traps, guest commands and ioctls, one line each; or null.</param>
/// <param name="Phase">Told what the run is doing (for a progress display); or null.</param>
internal sealed record RunRequest(HostProfile Profile, IReadOnlyList<string> QemuArguments, int Seed = 0, IReadOnlyList<string>? HotPlug = null,
    Action<string>? Trace = null, Action<string>? Phase = null);

/// <summary>The outcome: a report, or the one error that stopped the run before it (bad input).</summary>
internal sealed record RunOutcome(IReadOnlyList<string> Arguments, IReadOnlyList<string> Warnings, VmReport? Report, string? Error);

/// <summary>
/// The workload harness behind `nestedsmmu run`: validate the machine on the emulated host, realize
/// it (<see cref="Vm.Realize"/>), boot the reference guest from the VM's firmware tables, hot-plug
/// what was asked, then run the standard DMA workload for every device the guest can translate:
/// once with invalidations through the vSMMU's own queue (trapped) and once through the CMDQV's
/// VCMDQs (direct) where the vSMMU has one; tear down and check nothing stays allocated on the host.
/// </summary>
internal static class RunHarness
{
    /// <summary>The two invalidation paths, in the order they run.</summary>
    private enum Path { Trapped, Direct }

    public static RunOutcome Run(RunRequest request)
    {
        IReadOnlyList<string> machineNotes = [];
        IReadOnlyList<string> args = request.QemuArguments.Count == 0 ? DefaultMachine.Arguments(request.Profile, out machineNotes)
            : request.QemuArguments.Count == 1 && request.QemuArguments[0].Any(char.IsWhiteSpace)
                ? QemuCommandLine.SplitShellWords(request.QemuArguments[0]) : request.QemuArguments;
        StartOutcome start = Start(request.Profile, args, request.HotPlug, request.Trace, request.Phase);
        if (start.Machine is not { } m) return new RunOutcome(args, start.Check.Warnings, null, start.Error);

        List<RunCheck> checks = m.Checks;
        var figures = new Dictionary<string, DeviceRunFigures>(StringComparer.Ordinal);
        VmReport report;
        try
        {
            var totals = RunPaths(m.Vm, m.Host.Diagnostics, m.Kernel, m.Workloads, request, checks, figures);
            PathChecks(m.Vm, figures, totals, checks);
            var guestErrors = m.Kernel.Log.Errors.ToList();
            checks.Add(new RunCheck("the guest kernel logged no error", guestErrors.Count == 0, string.Join("; ", guestErrors)));
            var deviceMessages = m.Vm.DeviceMessages.ToList();
            checks.Add(new RunCheck("the vSMMUs and CMDQVs reported no guest or host error", deviceMessages.Count == 0, string.Join("; ", deviceMessages)));
            report = VmReport.Build(m.Vm, $"emulated host '{request.Profile.Name}'", figures, checks);
            if (machineNotes.Count > 0) report = report with { Notes = [.. report.Notes, .. machineNotes] };
        }
        catch
        {
            m.Dispose();
            throw;
        }

        request.Phase?.Invoke("tearing down");
        m.Dispose();
        ulong left = m.Host.Diagnostics.HostMemoryHeldForContexts - m.HostMemoryBefore;
        checks.Add(new RunCheck("teardown: the VM gave back every byte of host memory", left == 0, $"0x{left:X} bytes left"));
        return new RunOutcome(args, start.Check.Warnings, report with { Checks = [.. checks] }, null);
    }

    /// <summary>
    /// A machine running on a fresh emulated host: realized, its guest booted (the boot checks made),
    /// the asked devices hot-plugged and every device behind a vIOMMU probed by the guest. `run`'s
    /// workloads and the whole-system bench start from here; disposing it tears the VM down.
    /// </summary>
    /// <param name="Host">The emulated host.</param>
    /// <param name="HostMemoryBefore">Host memory held for contexts before the VM existed (the teardown check compares with it).</param>
    /// <param name="Fd">The VM's iommufd on that host.</param>
    /// <param name="Vm">The VM.</param>
    /// <param name="Kernel">The booted guest.</param>
    /// <param name="Workloads">The devices the guest drives.</param>
    /// <param name="Checks">The boot and probe checks so far, in order.</param>
    internal sealed record StartedMachine(EmulatedHost Host, ulong HostMemoryBefore, IIommufd Fd, Vm Vm, GuestKernel Kernel,
        List<Workload> Workloads, List<RunCheck> Checks) : IDisposable
    {
        public void Dispose()
        {
            Vm.Dispose();
            Fd.Dispose();
        }
    }

    /// <summary>What <see cref="Start"/> came to: the machine, or (no machine) the error that stopped it.</summary>
    /// <param name="Check">The validator's verdict (its warnings are reported either way).</param>
    /// <param name="Machine">The running machine, or null.</param>
    /// <param name="Error">QEMU's refusal, the kernel's or the board's at realize, or a refused hot-plug; null with a machine.</param>
    internal sealed record StartOutcome(MachineCheck Check, StartedMachine? Machine, string? Error);

    /// <summary>
    /// Everything before the workloads: validate <paramref name="args"/> on the emulated host, realize
    /// the VM (<see cref="Vm.Realize"/>) on a fresh one, boot the reference guest from the VM's
    /// firmware tables, hot-plug <paramref name="hotPlug"/>, and probe every device behind a vIOMMU.
    /// </summary>
    internal static StartOutcome Start(HostProfile profile, IReadOnlyList<string> args, IReadOnlyList<string>? hotPlug = null,
        Action<string>? trace = null, Action<string>? phase = null)
    {
        HostView view = ProfileHostView.From(profile);
        phase?.Invoke("checking the machine");
        MachineCheck check = MachineValidator.Check(args, view);
        if (check.Error is { } refused) return new StartOutcome(check, null, refused.Message);

        var host = new EmulatedHost(profile);
        ulong hostMemoryBefore = host.Diagnostics.HostMemoryHeldForContexts;
        IIommufd fd = host.Open();
        if (trace is { } t) fd = new TracingIommufd(fd, t);
        phase?.Invoke("realizing the VM");
        Vm vm;
        try
        {
            vm = Vm.Realize(check, view, fd, new VmOptions { PassthroughDma = new EmulatedPassthroughDma(host.Diagnostics), Trace = trace });
        }
        catch (Exception e) when (e is IommufdException or InvalidOperationException)
        {
            // The kernel said no (an errno), or the board cannot hold the devices (QEMU's platform-bus messages).
            fd.Dispose();
            return new StartOutcome(check, null, e.Message);
        }
        try
        {
            phase?.Invoke("booting the guest");
            GuestKernel kernel = Boot(vm, trace);
            vm.Boot();
            var checks = new List<RunCheck>();
            BootChecks(vm, kernel, checks);
            foreach (string text in hotPlug ?? [])
            {
                phase?.Invoke($"hot-plugging {text}");
                try
                {
                    vm.HotPlug(text);
                }
                catch (Exception e) when (e is QemuConfigException or IommufdException)
                {
                    vm.Dispose();
                    fd.Dispose();
                    return new StartOutcome(check, null, e.Message);
                }
            }
            List<Workload> workloads = GuestDevices(vm, kernel, checks);
            return new StartOutcome(check, new StartedMachine(host, hostMemoryBefore, fd, vm, kernel, workloads, checks), null);
        }
        catch
        {
            vm.Dispose();
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Each vSMMU probed and reset by the guest, each live CMDQV enabled by it with VINTF0's host page mapped in.</summary>
    private static void BootChecks(Vm vm, GuestKernel kernel, List<RunCheck> checks)
    {
        foreach (VmVsmmu v in vm.Vsmmus)
        {
            GuestSmmu? g = kernel.Smmus.FirstOrDefault(s => s.BaseAddress == v.Placed.Base);
            checks.Add(new RunCheck($"boot: the guest probed and reset {v.Name}", g is not null, $"at 0x{v.Placed.Base:X}"));
            if (v.Cmdqv is not null)
                checks.Add(new RunCheck($"boot: the guest enabled {v.Name}'s CMDQV (VINTF0, guest-owned)",
                    g?.Cmdqv is { VintfEnabled: true, HypOwn: false } && v.Cmdqv.VintfPageMapped, $"at 0x{v.Cmdqv.MmioBase:X}"));
        }
    }

    /// <summary>A device the guest drives: the VM's side, the guest's DMA-API device and the guest SMMU it sits behind.</summary>
    internal sealed record Workload(VmDevice Vm, DmaDevice Guest, GuestSmmu Smmu);

    /// <summary>
    /// The guest's DMA-API device for every VM device behind a vIOMMU, routed by the firmware tables;
    /// a device behind a vIOMMU that the VM cannot drive leaves what the run promises unverified: a failed check.
    /// </summary>
    private static List<Workload> GuestDevices(Vm vm, GuestKernel kernel, List<RunCheck> checks)
    {
        foreach (VmDevice d in vm.Devices.Where(d => d.Vsmmu is not null && !d.CanDma))
            checks.Add(new RunCheck($"{d.Name}: the VM can make it issue DMA", false, WhyNoDma(d)));
        var workloads = new List<Workload>();
        foreach (VmDevice d in vm.Devices.Where(d => d.CanDma && d.Vsmmu is not null))
        {
            bool ats = d.Spec is VfioPciDevice vfio && d.Host is { } h && SmmuResolution.DeviceAtsExposed(vfio, h);
            DmaDevice? dma = kernel.AddPciDevice(d.Name, d.RequesterId, ats: ats);
            checks.Add(new RunCheck($"{d.Name}: the guest found its IOMMU from the firmware (rid 0x{d.RequesterId:X4})", dma is not null,
                dma is null ? "" : $"sid 0x{dma.StreamId:X}"));
            if (dma is null) continue;
            checks.Add(new RunCheck($"{d.Name}: firmware StreamID is the vSID the VMM attached", dma.StreamId == d.Vsid,
                $"guest 0x{dma.StreamId:X}, VMM 0x{d.Vsid:X}"));
            workloads.Add(new Workload(d, dma, kernel.Smmus.First(s => ReferenceEquals(s.Driver, dma.Smmu))));
        }
        return workloads;
    }

    private static string WhyNoDma(VmDevice d) => d.Spec switch
    {
        VfioPciDevice when d.Host is null => "vfio device not named by a host address (sysfsdev or fd): the model binds host functions by address",
        // Validation refuses vfio behind an emulated SMMU that exists when it realizes; one given later on the
        // command line sets the bus's IOMMU after vfio took system memory for its DMA (hw/pci/pci.c
        // pci_device_iommu_address_space), though the firmware tables put the device behind that SMMU.
        VfioPciDevice when d.Vsmmu?.Device is EmulatedVSmmu =>
            $"vfio device realized before its emulated vSMMU {d.Vsmmu.Name}: QEMU maps its DMA untranslated while the firmware puts it behind {d.Vsmmu.Name}",
        _ => $"{d.Kind} device",
    };

    /// <summary>
    /// Every device's workload with bypass_vcmdq on (trapped), then, for devices behind a CMDQV, off
    /// (direct); returns the guest's batches on each queue kind during each run.
    /// </summary>
    private static Dictionary<Path, (long TrappedBatches, long DirectBatches)> RunPaths(Vm vm, EmulatedHostDiagnostics hostMemory, GuestKernel kernel,
        List<Workload> workloads, RunRequest request, List<RunCheck> checks, Dictionary<string, DeviceRunFigures> figures)
    {
        ulong half = vm.Ram.Size / 2;
        var buffers = new GuestPageAllocator(vm.Ram, vm.Ram.Base + half, half);
        var totals = new Dictionary<Path, (long TrappedBatches, long DirectBatches)>();
        foreach (Path path in Enum.GetValues<Path>())
        {
            var runs = path == Path.Trapped ? workloads : workloads.Where(w => w.Smmu.Cmdqv is not null).ToList();
            if (runs.Count == 0) continue;
            kernel.BypassVcmdq(path == Path.Trapped);
            long trappedBefore = kernel.Trapped.Batches, directBefore = kernel.Direct.Batches;
            int n = 0;
            foreach (Workload w in runs)
            {
                request.Phase?.Invoke($"{path.ToString().ToLowerInvariant()} path: workload {++n} of {runs.Count} ({w.Vm.Name})");
                RunWorkload(vm, hostMemory, w.Vm, w.Guest, w.Smmu, path, buffers, request.Seed, checks, figures);
            }
            totals[path] = (kernel.Trapped.Batches - trappedBefore, kernel.Direct.Batches - directBefore);
        }
        return totals;
    }

    private static GuestKernel Boot(Vm vm, Action<string>? trace)
    {
        // Driver allocations (queues, tables) come from the lower half of RAM, DMA buffers from the upper.
        var pages = new GuestPageAllocator(vm.Ram, vm.Ram.Base, vm.Ram.Size / 2);
        Action<string>? guestTrace = trace is null ? null : line => trace($"guest {line}");
        return vm.Tables.DeviceTreeBoot
            ? GuestKernel.BootFromDeviceTree(vm.Bus, vm.Ram, pages, vm.Tables.Dtb!, trace: guestTrace)
            : GuestKernel.BootFromAcpi(vm.Bus, vm.Ram, pages, vm.Tables.Iort, vm.Tables.Dsdt, trace: guestTrace);
    }

    /// <summary>One device's workload on one path, with what it cost on each path measured around it.</summary>
    private static void RunWorkload(Vm vm, EmulatedHostDiagnostics hostMemory, VmDevice d, DmaDevice dma, GuestSmmu smmu, Path path, GuestPageAllocator buffers, int seed,
        List<RunCheck> checks, Dictionary<string, DeviceRunFigures> figures)
    {
        VmVsmmu v = d.Vsmmu!;
        (long b, long c) trappedBefore = Counters(smmu.Driver.SmmuQueueCounters), directBefore = Counters(smmu.Cmdqv?.DirectCounters);
        long cmdqTrapsBefore = v.CommandQueueTraps, cmdqvTrapsBefore = v.CmdqvTraps;
        var engine = new VmDmaEngine(d, d.Kind == VmDeviceKind.Emulated ? vm.Ram.Read : hostMemory.ReadHostMemory);
        DmaWorkloadResult r = DmaWorkload.Run(dma, engine, buffers, seed * 16 + (int)path);
        vm.ServiceEvents();
        (long b, long c) trappedAfter = Counters(smmu.Driver.SmmuQueueCounters), directAfter = Counters(smmu.Cmdqv?.DirectCounters);
        // A trapped batch is rung at the vSMMU's CMDQ_PROD; a direct one at a VCMDQ's PROD in the mapped host page,
        // so any CMDQV access that trapped counts against the direct path.
        var trapped = new PathFigures(trappedAfter.b - trappedBefore.b, trappedAfter.c - trappedBefore.c, v.CommandQueueTraps - cmdqTrapsBefore);
        var direct = new PathFigures(directAfter.b - directBefore.b, directAfter.c - directBefore.c, v.CmdqvTraps - cmdqvTrapsBefore);
        string p = path.ToString().ToLowerInvariant();
        foreach (WorkloadCheck c in r.Checks) checks.Add(new RunCheck($"{d.Name} [{p}]: {c.Name}", c.Passed, c.Detail));
        checks.Add(new RunCheck($"{d.Name} [{p}]: device writes are in {(d.Kind == VmDeviceKind.Emulated ? "guest RAM" : "host memory")} where the SMMU translated them",
            engine.Writes > 0 && engine.Mismatches == 0, $"{engine.Writes - engine.Mismatches} of {engine.Writes}"));
        DeviceRunFigures f = figures.GetValueOrDefault(d.Name) ?? DeviceRunFigures.None;
        figures[d.Name] = new DeviceRunFigures(f.Dmas + r.Dmas, f.Bytes + r.Bytes, f.FaultsExpected + r.FaultsExpected, f.FaultsSeen + r.FaultsSeen,
            f.Trapped + trapped, f.Direct + direct);
    }

    private static (long Batches, long Commands) Counters(CommandPathCounters? c) => c is null ? (0, 0) : (c.Batches, c.Commands);

    /// <summary>The point of CMDQV, checked: trapped batches cost VM exits, direct ones none, and the direct run stayed direct.</summary>
    private static void PathChecks(Vm vm, Dictionary<string, DeviceRunFigures> figures, Dictionary<Path, (long TrappedBatches, long DirectBatches)> totals,
        List<RunCheck> checks)
    {
        PathFigures trapped = figures.Values.Aggregate(PathFigures.Zero, (s, f) => s + f.Trapped);
        PathFigures direct = figures.Values.Aggregate(PathFigures.Zero, (s, f) => s + f.Direct);
        if (trapped.Batches > 0)
            checks.Add(new RunCheck("trapped path: every batch cost at least one VMM trap", trapped.VmmTraps >= trapped.Batches,
                $"{trapped.VmmTraps} traps for {trapped.Batches} batches"));
        if (totals.TryGetValue(Path.Direct, out var d))
        {
            checks.Add(new RunCheck("direct path: the VCMDQ run's invalidations went through VCMDQs", d.DirectBatches > 0 && d.TrappedBatches == 0,
                $"{d.DirectBatches} VCMDQ batches, {d.TrappedBatches} on the vSMMU queue"));
            checks.Add(new RunCheck("direct path: no VMM trap for any batch", direct.Batches > 0 && direct.VmmTraps == 0,
                $"{direct.VmmTraps} traps for {direct.Batches} batches"));
        }
        else if (vm.Vsmmus.Any(v => v.Cmdqv is not null))
        {
            checks.Add(new RunCheck("direct path: a vSMMU with a CMDQV ran a VCMDQ workload", false, "no device of a CMDQV vSMMU could run"));
        }
    }

    /// <summary>
    /// The guest workload's device side: the VM makes the device issue the access. Each write that
    /// translated is read back from where the translation put it (host memory for a vfio device,
    /// guest RAM for an emulated one), so the data is checked on the host side too.
    /// </summary>
    private sealed class VmDmaEngine(VmDevice device, ReadMemory output) : IDmaEngine
    {
        public long Writes { get; private set; }
        public long Mismatches { get; private set; }

        public bool Write(ulong iova, ReadOnlySpan<byte> data)
        {
            byte[] bytes = data.ToArray();
            DmaResult r = device.Dma(iova, AccessKind.Write, bytes);
            if (!r.IsSuccess) return false;
            // The workload's transfers stay within one 4 KiB page: one translation covers them.
            var landed = new byte[bytes.Length];
            output(r.Translation.PhysicalAddress, landed);
            Writes++;
            if (!landed.AsSpan().SequenceEqual(bytes)) Mismatches++;
            return true;
        }

        public bool Read(ulong iova, Span<byte> data) => device.Dma(iova, AccessKind.Read, data).IsSuccess;
    }

    /// <summary>Reads the memory a device's translated address names.</summary>
    private delegate void ReadMemory(ulong address, Span<byte> destination);
}
