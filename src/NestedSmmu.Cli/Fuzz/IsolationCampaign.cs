using System.Buffers.Binary;
using System.Diagnostics;
using NestedSmmu.Cli.Run;
using NestedSmmu.Guest;
using NestedSmmu.Guest.Dma;
using NestedSmmu.Guest.Smmu;
using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.Machine;
using NestedSmmu.Vmm.VCmdqv;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Cli.Fuzz;

/// <summary>One broken invariant or escaped exception: the step and seed replay it.</summary>
internal sealed record FuzzFinding(long Step, string Vm, string Operation, string Invariant, string Detail);

/// <summary>The campaign's outcome.</summary>
/// <param name="Kinds">Operations by kind and outcome (e.g. <c>dma translated</c>, <c>command</c>), so a run shows what it exercised.</param>
/// <param name="Counterexample">On a finding: the shrunk operation list that replays it (null when clean or not shrunk).</param>
internal sealed record FuzzOutcome(int Seed, long Operations, long InvariantChecks, IReadOnlyList<string> Invariants,
    IReadOnlyList<FuzzFinding> Violations, IReadOnlyList<FuzzFinding> Crashes, IReadOnlyDictionary<string, long> Kinds,
    FuzzCounterexample? Counterexample = null)
{
    public IEnumerable<FuzzFinding> Findings => Violations.Concat(Crashes);
}

/// <summary>
/// A fault the campaign's own tests inject, to prove the shrinker and the replay work on a real
/// violation: called after every operation with the acting VM and the other one (and the other
/// one's guest kernel, to act as its driver would). Never set by the CLI.
/// </summary>
internal delegate void InjectedFault(FuzzOp op, Vm self, Vm other, EmulatedHostDiagnostics host, GuestKernel otherKernel);

/// <summary>How a campaign runs besides its seed and length.</summary>
internal sealed record CampaignOptions
{
    /// <summary>Shrink the failing operation list on a finding (delta debugging).</summary>
    public bool Shrink { get; init; } = true;

    /// <summary>Replays the shrinker may spend (each one a whole campaign from a fresh host).</summary>
    public int MaxShrinkTests { get; init; } = 400;

    /// <summary>Test hook: a fresh fault per campaign (so a stateful fault starts over in every replay).</summary>
    internal Func<InjectedFault>? InjectFault { get; init; }

    public static CampaignOptions Default { get; } = new();
}

/// <summary>
/// The VM-level isolation campaign behind `nestedsmmu fuzz`: two VMs realized with <see cref="Vm.Realize"/>
/// on one emulated host, each given every other device behind each physical SMMU, so the VMs share the
/// physical SMMUs. A seeded generator makes guest operations (<see cref="FuzzOp"/>, data a replay reads
/// back) that go through each VM's MMIO bus and guest RAM only (register writes of every width, commands
/// in the vSMMU's queue, garbage in the guest's tables, device DMA); the emulated host's diagnostics check
/// the invariants after every step. On a finding the operation list is shrunk by delta debugging
/// (<see cref="OperationShrinker"/>) into a <see cref="FuzzCounterexample"/>.
/// </summary>
internal static partial class IsolationCampaign
{
    public const string HostName = "grace";

    /// <summary>A step slower than this counts as a hang (the model has no loop the guest may make unbounded).</summary>
    public static readonly TimeSpan StepBudget = TimeSpan.FromSeconds(2);

    public static readonly string[] InvariantNames =
    [
        "no exception escapes to the guest",
        "every step ends within the step budget",
        "the other VM's physical STEs are unchanged",
        "the other VM's TLB entries are unchanged",
        "DMA lands only in the VM's own stage-2 mapped RAM",
        "destroying both VMs succeeds and returns every host page",
        "no command of one VM changes the other VM's walk-cache entries",
        "no operation of one VM changes the other VM's ATC entries",
        "a guest VINTF runs only its allowed commands, with its own VMID and StreamIDs",
        "every fault reaches the VM's event queue or is marked lost (overflow, LOST_EVENTS, host log), never dropped silently",
        "each VM's iommufd object table stays consistent after every step (refcounts, live references)",
    ];

    /// <summary>Entries to leave free in a TLB for the TLB check: a full TLB is cleared whole on insert (<see cref="Iotlb"/>), which is not a command's doing.</summary>
    private const int TlbHeadroom = 256;

    /// <summary>One step in this many reboots the guest (see <see cref="Reboot"/>).</summary>
    private const int RebootOneIn = 400;

    private sealed class Guest(string name, Vm vm, GuestKernel kernel, IIommufd fd, EmulatedHostMemoryRegion ram)
    {
        public string Name { get; } = name;
        public Vm Vm { get; } = vm;
        public GuestKernel Kernel { get; set; } = kernel;
        public IIommufd Fd { get; } = fd;
        public EmulatedHostMemoryRegion Ram { get; } = ram;
        public List<VmDevice> Devices { get; } = [];
        public List<ulong> Iovas { get; } = [];

        /// <summary>The -device options of each vfio device it started with (what device_add of it again says).</summary>
        public Dictionary<string, string> PlugOptions { get; } = new(StringComparer.Ordinal);

        /// <summary>Its devices that are unplugged now, in unplug order.</summary>
        public List<string> Unplugged { get; } = [];

        /// <summary>The VMIDs its stage-2 domains have had on each physical SMMU (learned from its devices' STEs).</summary>
        public Dictionary<string, HashSet<ushort>> Vmids { get; } = new(StringComparer.Ordinal);

        public EmulatedIommufd Context => (EmulatedIommufd)Fd;
    }

    /// <summary>Runs <paramref name="operations"/> generated operations from <paramref name="seed"/>; on a finding, shrinks it into a counterexample.</summary>
    public static FuzzOutcome Run(int seed, long operations, CampaignOptions? options = null)
    {
        options ??= CampaignOptions.Default;
        var rng = new Random(seed);
        FuzzOutcome o = Campaign(seed, operations, options, (c, _) => c.Generate(rng), record: null);
        if (!options.Shrink || !o.Findings.Any()) return o;
        // The generator is deterministic: a second run to the failing step records the operations.
        var ops = new List<FuzzOp>();
        var rerun = new Random(seed);
        FuzzOutcome again = Campaign(seed, o.Operations, options, (c, _) => c.Generate(rerun), ops);
        FuzzFinding target = (again.Findings.FirstOrDefault() ?? o.Findings.First());
        return o with { Counterexample = ShrinkToCounterexample(seed, target, ops, options) };
    }

    /// <summary>Replays a counterexample's operations (no generator, no shrinking).</summary>
    public static FuzzOutcome Replay(FuzzCounterexample c, CampaignOptions? options = null) =>
        Replay(c.Seed, c.Operations, options ?? CampaignOptions.Default);

    private static FuzzOutcome Replay(int seed, IReadOnlyList<FuzzOp> ops, CampaignOptions options) =>
        Campaign(seed, ops.Count, options, (_, i) => ops[(int)i], record: null);

    /// <summary>Delta debugging: the smallest operation list that still breaks the same invariant.</summary>
    private static FuzzCounterexample ShrinkToCounterexample(int seed, FuzzFinding target, List<FuzzOp> ops, CampaignOptions options)
    {
        bool Fails(IReadOnlyList<FuzzOp> candidate) =>
            Replay(seed, candidate, options).Findings.Any(f => f.Invariant == target.Invariant);
        (List<FuzzOp> shrunk, _) = ops.Count > 0 && Fails(ops) ? OperationShrinker.Shrink(ops, Fails, options.MaxShrinkTests) : (ops, 0);
        FuzzFinding shown = Replay(seed, shrunk, options).Findings.FirstOrDefault(f => f.Invariant == target.Invariant) ?? target;
        return new FuzzCounterexample(FuzzCounterexample.FormatTag, seed, HostName, FuzzCounterexample.CurrentVersions(),
            shown.Invariant, shown.Detail, ops.Count, shrunk);
    }

    /// <summary>One campaign from a fresh host: <paramref name="next"/> gives each step's operation; the invariants are checked after each.</summary>
    private static FuzzOutcome Campaign(int seed, long operations, CampaignOptions options, Func<CampaignRun, long, FuzzOp> next, List<FuzzOp>? record)
    {
        using var run = new CampaignRun(options);
        long step;
        for (step = 0; step < operations; step++)
        {
            FuzzOp op = next(run, step);
            record?.Add(op);
            if (!run.Step(op, step)) { step++; break; }
        }
        run.Teardown(step);
        return new FuzzOutcome(seed, step, run.Checks, InvariantNames, run.Violations, run.Crashes, run.Kinds);
    }

    /// <summary>The two VMs on one emulated host, the invariant checks, and what the run saw.</summary>
    private sealed partial class CampaignRun : IDisposable
    {
        private readonly EmulatedHost _host;
        private readonly EmulatedHostDiagnostics _diag;
        private readonly HostProfile _profile;
        private readonly ulong _memoryBefore;
        private readonly Guest[] _guests;
        private readonly InjectedFault? _fault;
        private readonly IDisposable _vintfWatch;
        private readonly List<(string Smmu, VintfCommand Command)> _admitted = [];
        private StepFaults _faults;
        private bool _tornDown;

        public List<FuzzFinding> Violations { get; } = [];
        public List<FuzzFinding> Crashes { get; } = [];
        public SortedDictionary<string, long> Kinds { get; } = new(StringComparer.Ordinal);
        public long Checks { get; private set; }

        public CampaignRun(CampaignOptions options)
        {
            _profile = HostProfile.LoadEmbedded(HostName);
            HostView view = ProfileHostView.From(_profile);
            _host = new EmulatedHost(_profile);
            _diag = _host.Diagnostics;
            _memoryBefore = _diag.HostMemoryHeldForContexts;
            _guests = [Start(_host, view, _profile, "vm0", 0), Start(_host, view, _profile, "vm1", 1)];
            _fault = options.InjectFault?.Invoke();
            _vintfWatch = _diag.ObserveVintfCommands((smmu, c) => _admitted.Add((smmu, c)));
        }

        /// <summary>The next random operation for a random VM, drawn against what the VMs have now.</summary>
        public FuzzOp Generate(Random rng)
        {
            int vm = rng.Next(2);
            return GenerateFor(rng, vm, _guests[vm], _guests[1 - vm], _diag);
        }

        /// <summary>Runs one operation and checks every invariant; false once anything broke (the campaign stops).</summary>
        public bool Step(FuzzOp op, long step)
        {
            Guest self = _guests[op.Vm], other = _guests[1 - op.Vm];
            Learn(self);
            Learn(other);
            var before = Snapshot.Take(this, self, other, watchWalkCache: op.Kind != "dma");
            _admitted.Clear();
            _faults = default;
            string text = op.Kind;
            var sw = Stopwatch.StartNew();
            try
            {
                text = Execute(op, self, other, step);
                _fault?.Invoke(op, self.Vm, other.Vm, _diag, other.Kernel);
            }
            catch (Exception e)
            {
                Crashes.Add(new FuzzFinding(step, self.Name, text, InvariantNames[0], $"{e.GetType().Name}: {e.Message}"));
            }
            sw.Stop();
            Count(KindOf(text));
            if (sw.Elapsed > StepBudget)
                Violations.Add(new FuzzFinding(step, self.Name, text, InvariantNames[1], $"{sw.Elapsed.TotalMilliseconds:F0} ms"));
            void Fail(int invariant, string detail) => Violations.Add(new FuzzFinding(step, self.Name, text, InvariantNames[invariant], detail));
            try
            {
                before.Check(this, Fail);
                CheckEvents(self, other, before, Fail);
                CheckVintfCommands(before, Fail);
                foreach (Guest g in _guests)
                    if (_diag.ObjectTableProblem(g.Context) is { } problem) Fail(10, $"{g.Name}: {problem}");
            }
            catch (Exception e)
            {
                Crashes.Add(new FuzzFinding(step, self.Name, text, InvariantNames[0], $"while checking: {e.GetType().Name}: {e.Message}"));
            }
            Checks += 9;
            return Violations.Count + Crashes.Count == 0;
        }

        /// <summary>Destroys both VMs; every host page must come back.</summary>
        public void Teardown(long step)
        {
            _tornDown = true;
            Checks++;
            try
            {
                foreach (Guest g in _guests)
                {
                    g.Vm.Dispose();
                    g.Fd.Dispose();
                }
                ulong left = _diag.HostMemoryHeldForContexts - _memoryBefore;
                if (left != 0) Violations.Add(new FuzzFinding(step, "both", "teardown", InvariantNames[5], $"0x{left:X} bytes of host memory left"));
            }
            catch (Exception e)
            {
                Crashes.Add(new FuzzFinding(step, "both", "teardown", InvariantNames[5], $"{e.GetType().Name}: {e.Message}"));
            }
            _vintfWatch.Dispose();
        }

        public void Dispose()
        {
            if (_tornDown) return;
            _vintfWatch.Dispose();
            foreach (Guest g in _guests)
            {
                g.Vm.Dispose();
                g.Fd.Dispose();
            }
        }

        private void Count(string kind, long n = 1) => Kinds[kind] = Kinds.GetValueOrDefault(kind) + n;

        private string Execute(FuzzOp op, Guest self, Guest other, long step) => op.Kind switch
        {
            "reboot" => Reboot(self),
            "service" => ServiceEvents(self),
            "write" => WriteRegister(self, op),
            "cmdqv-write" => WriteCmdqv(self, op),
            "command" => SubmitCommand(self, op),
            "garbage" => Garbage(self, op),
            "dma" => Dma(self, op, step),
            "vcmdq" => IssueVcmdq(self, op),
            "unplug" => Unplug(self, op),
            "hotplug" => HotPlug(self, op),
            "viommu-teardown" => TeardownViommu(self, op),
            "mutate" => Mutate(self, op),
            _ => throw new InvalidDataException($"unknown operation kind '{op.Kind}'"),
        };

        /// <summary>Device DMA through the passthrough hook; where it translates, it must land in this VM's RAM.</summary>
        private string Dma(Guest self, FuzzOp op, long step)
        {
            if (self.Devices.Count == 0) return "dma (no device)";
            VmDevice d = self.Devices[op.Device % self.Devices.Count];
            ulong iova = op.Slot >= 0 && self.Iovas.Count > 0 ? self.Iovas[op.Slot % self.Iovas.Count] + op.Offset : op.W0;
            AccessKind access = op.Flag ? AccessKind.Write : AccessKind.Read;
            var data = new byte[sizeof(ulong)];
            BinaryPrimitives.WriteUInt64LittleEndian(data, op.Value);
            // What the fault (if any) must become, decided from the VMM's view before the access: the host reports
            // it to the vIOMMU when the device has a vDEVICE and sits on one of the vIOMMU's nested HWPTs (the
            // guest STE's, or the abort and bypass ones the vSMMU uses while SMMUEN = 0), i.e. it is a vmaster.
            bool nested = d.Vsmmu?.Device is AcceleratedVSmmu a && a.VdeviceOf(d.Vsid) is not null && a.AttachedHwptOf(d.Vsid) is { } attached
                && (attached == a.NestedHwptOf(d.Vsid) || attached == a.AbortHwpt || attached == a.BypassHwpt);
            bool hasVeventq = d.Vsmmu?.Device is AcceleratedVSmmu { Veventq: not null };
            DmaResult r = d.Dma(iova, access, data);
            string text = $"dma {access} {d.Name} iova 0x{iova:X}";
            if (!r.IsSuccess)
            {
                if (r.Translation is { Status: TranslationStatus.Fault, Recorded: true } t)
                {
                    _faults.Recorded++;
                    if (nested && ForwardedToGuest(t.Event))
                    {
                        if (hasVeventq) _faults.ForGuest++;
                        else _faults.HostLogged++;
                    }
                }
                return text + ": fault";
            }
            ulong pa = r.Translation.PhysicalAddress;
            if (pa - self.Ram.HostPhysicalAddress >= self.Ram.Length)
                Violations.Add(new FuzzFinding(step, self.Name, text, InvariantNames[4],
                    $"landed at host 0x{pa:X}, outside the VM's RAM [0x{self.Ram.HostPhysicalAddress:X}, +0x{self.Ram.Length:X})"));
            return text + $" -> 0x{pa:X}";
        }
    }

    private static string KindOf(string op) =>
        op.Contains(": fault", StringComparison.Ordinal) ? "dma faulted" : op.Contains(" -> ", StringComparison.Ordinal) ? "dma translated"
        : op.Split(' ')[0] + (op.Contains("refused", StringComparison.Ordinal) ? " (refused)" : op.Contains("outside guest RAM", StringComparison.Ordinal) ? " (queue or table outside RAM)"
            : op.Contains("not consumed", StringComparison.Ordinal) ? " (not consumed)" : op.Contains("consumed", StringComparison.Ordinal) ? " (consumed)"
            : op.Contains("skipped", StringComparison.Ordinal) ? " (skipped)" : op.Contains("refused", StringComparison.Ordinal) ? " (refused)" : "");

    /// <summary>Realizes and boots one VM with every other device (starting at <paramref name="parity"/>) behind each physical SMMU.</summary>
    private static Guest Start(EmulatedHost host, HostView view, HostProfile profile, string name, int parity)
    {
        var mine = new HashSet<string>(profile.Smmus.SelectMany(s => profile.Devices.Where(d => d.Smmu == s.Name).Where((_, i) => i % 2 == parity)).Select(d => d.Name));
        IReadOnlyList<string> args = WithoutCmdqvOnLastSmmu(profile, DefaultMachine.Arguments(profile, d => mine.Contains(d.Name)));
        MachineCheck check = MachineValidator.Check(args, view);
        if (check.Error is { } refused) throw new InvalidOperationException($"{name}: {refused.Message}");
        IIommufd fd = host.Open();
        Vm vm = Vm.Realize(check, view, fd, new VmOptions { PassthroughDma = new EmulatedPassthroughDma(host.Diagnostics) });
        vm.Boot();
        var g = new Guest(name, vm, null!, fd, (EmulatedHostMemoryRegion)vm.Ram.Region);
        g.Devices.AddRange(vm.Devices.Where(d => d.CanDma && d.Vsmmu is not null && d.Host is not null));
        for (int i = 0; i + 1 < args.Count; i++)
            if (args[i] == "-device" && args[i + 1].StartsWith("vfio-pci,", StringComparison.Ordinal)
                && args[i + 1].Split(',').FirstOrDefault(p => p.StartsWith("id=", StringComparison.Ordinal)) is { } id)
                g.PlugOptions[id["id=".Length..]] = args[i + 1];
        Reboot(g);
        return g;
    }

    /// <summary>
    /// cmdqv=off on the vSMMUs over the profile's last physical SMMU: QEMU keeps the device that made a
    /// CMDQV vIOMMU from being unplugged, so only there can unplugging its devices tear a vIOMMU down
    /// (with its command and event queues running) and hot-plug build it again. The other vSMMUs keep
    /// their CMDQV, which both VMs then share.
    /// </summary>
    private static List<string> WithoutCmdqvOnLastSmmu(HostProfile profile, IReadOnlyList<string> args)
    {
        string last = profile.Smmus[^1].Name;
        var result = args.ToList();
        for (int i = 0; i + 1 < result.Count; i++)
        {
            if (result[i] != "-device" || !result[i + 1].StartsWith("arm-smmuv3,", StringComparison.Ordinal)) continue;
            // The physical SMMU of the first vfio device after this vSMMU (DefaultMachine lists each vSMMU's devices after it).
            string? host = result.Skip(i + 2).FirstOrDefault(a => a.StartsWith("vfio-pci,", StringComparison.Ordinal))?
                .Split(',').FirstOrDefault(p => p.StartsWith("host=", StringComparison.Ordinal))?["host=".Length..];
            if (host is not null && profile.Devices.FirstOrDefault(d => d.Address == PciAddress.Parse(host))?.Smmu == last)
                result[i + 1] = result[i + 1].Replace("cmdqv=on", "cmdqv=off", StringComparison.Ordinal);
        }
        return result;
    }

    /// <summary>
    /// Boots the reference guest (again): it resets and programs every vSMMU from scratch and maps
    /// DMA buffers for each device. A long campaign reboots now and then, or the register and table
    /// garbage would leave every later step facing a dead queue.
    /// </summary>
    private static string Reboot(Guest g)
    {
        Vm vm = g.Vm;
        var pages = new GuestPageAllocator(vm.Ram, vm.Ram.Base, vm.Ram.Size / 2);
        g.Kernel = GuestKernel.BootFromAcpi(vm.Bus, vm.Ram, pages, vm.Tables.Iort, vm.Tables.Dsdt);
        g.Iovas.Clear();
        ulong buffer = vm.Ram.Base + vm.Ram.Size / 2;
        foreach (VmDevice d in g.Devices)
        {
            DmaDevice? dma = g.Kernel.AddPciDevice(d.Name, d.RequesterId, ats: true);
            for (int i = 0; i < 4 && dma is not null; i++, buffer += 0x1000)
                if (dma.Map(buffer, 0x1000) is { } m) g.Iovas.Add(m.Iova);
        }
        return $"reboot ({g.Iovas.Count} IOVAs mapped)";
    }

    private static string ServiceEvents(Guest self)
    {
        self.Vm.ServiceEvents();
        self.Kernel.ServiceInterrupts();
        return "service events";
    }

    private static VmVsmmu VsmmuOf(Guest self, FuzzOp op) => self.Vm.Vsmmus[op.Vsmmu % self.Vm.Vsmmus.Count];

    /// <summary>The CMDQV frame: global registers, VINTF0, the VCMDQ pages (the guest's VINTF page is the host's, mapped in).</summary>
    private static string WriteCmdqv(Guest self, FuzzOp op)
    {
        VmVsmmu v = VsmmuOf(self, op);
        if (v.Cmdqv is not { } cmdqv) return $"cmdqv-write skipped ({v.Name} has no CMDQV)";
        self.Vm.Bus.Write(cmdqv.MmioBase + (op.Offset & ~((ulong)op.Width - 1)), op.Width, op.Value);
        return $"cmdqv-write{op.Width * 8} {v.Name}+0x{op.Offset:X} = 0x{op.Value:X}";
    }

    /// <summary>A register write: a defined register or any offset in the two pages, any width.</summary>
    private static string WriteRegister(Guest self, FuzzOp op)
    {
        VmVsmmu v = VsmmuOf(self, op);
        self.Vm.Bus.Write(v.Placed.Base + op.Offset, op.Width, op.Value);
        return $"write{op.Width * 8} {v.Name}+0x{op.Offset:X} = 0x{op.Value:X}";
    }

    private static string SubmitCommand(Guest self, FuzzOp op)
    {
        VmVsmmu v = VsmmuOf(self, op);
        var c = new Command(op.W0, op.W1);
        return $"command {c.Opcode} 0x{c.W0:X16} 0x{c.W1:X16} on {v.Name}: {Submit(self.Vm, v.Placed.Base, c)}";
    }

    /// <summary>Garbage in the guest's tables: the STE of one of its StreamIDs (linear table) or any driver page.</summary>
    private static string Garbage(Guest self, FuzzOp op)
    {
        VmVsmmu v = VsmmuOf(self, op);
        ulong bas = v.Placed.Base;
        ulong strtab = self.Vm.Bus.Read(bas + (ulong)SmmuRegister.STRTAB_BASE, 8) & 0x000F_FFFF_FFFF_FFC0UL;
        ulong at = op.Device >= 0 && self.Devices.Count > 0
            ? strtab + self.Devices[op.Device % self.Devices.Count].Vsid * 64UL
            : self.Vm.Ram.Base + (op.Offset % (self.Vm.Ram.Size / 2) & ~63UL);
        byte[] junk = Convert.FromHexString(op.Bytes ?? "");
        if (!self.Vm.Ram.Contains(at, (ulong)junk.Length)) return $"garbage at 0x{at:X} skipped (outside guest RAM)";
        self.Vm.Ram.Write(at, junk);
        Command inv = op.Flag ? Command.CfgiAll() : Command.CfgiSte(self.Devices.Count > 0 ? self.Devices[0].Vsid : 0);
        return $"garbage at 0x{at:X}, then {inv.Opcode}: {Submit(self.Vm, bas, inv)}";
    }

    /// <summary>Writes a command at the guest queue's PROD slot (when the queue is in guest RAM) and publishes it.</summary>
    private static string Submit(Vm vm, ulong bas, Command c)
    {
        ulong q = vm.Bus.Read(bas + (ulong)SmmuRegister.CMDQ_BASE, 8);
        int log2 = (int)(q & 0x1F);
        ulong qbase = q & 0x000F_FFFF_FFFF_FFE0UL;
        uint prod = (uint)vm.Bus.Read(bas + (ulong)SmmuRegister.CMDQ_PROD, 4);
        int shift = Math.Min(log2, 19);
        uint index = prod & ((1u << shift) - 1);
        Recover(vm, bas, qbase, shift);
        ulong slot = qbase + index * (ulong)Command.Size;
        if (!vm.Ram.Contains(slot, Command.Size)) return "queue outside guest RAM";
        var bytes = new byte[Command.Size];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, c.W0);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(8), c.W1);
        vm.Ram.Write(slot, bytes);
        // PROD = index + 1 with the wrap bit toggled on wrap (IHI 0070 3.5.1).
        uint wrap = 1u << shift;
        uint next = ((prod & (wrap | (wrap - 1))) + 1) & (wrap | (wrap - 1));
        vm.Bus.Write(bas + (ulong)SmmuRegister.CMDQ_PROD, 4, next);
        uint cons = (uint)vm.Bus.Read(bas + (ulong)SmmuRegister.CMDQ_CONS, 4);
        // CONS.ERR (bits [30:24]) names a refused command; otherwise the queue caught up, or it is disabled or stalled.
        return (cons & (wrap | (wrap - 1))) == next ? $"consumed, CONS 0x{cons:X}" : $"not consumed, CONS 0x{cons:X}";
    }

    /// <summary>
    /// What a guest driver does after a refused command, so the queue keeps running: the failed
    /// command is replaced by a CMD_SYNC and GERROR.CMDQ_ERR acknowledged (IHI 0070 7.1; Linux's
    /// arm_smmu_cmdq_skip_err), and a queue the register writes turned off is turned on again.
    /// </summary>
    private static void Recover(Vm vm, ulong bas, ulong qbase, int shift)
    {
        uint cr0 = (uint)vm.Bus.Read(bas + (ulong)SmmuRegister.CR0, 4);
        if ((cr0 & SmmuV3.CR0_CMDQEN) == 0)
            vm.Bus.Write(bas + (ulong)SmmuRegister.CR0, 4, cr0 | SmmuV3.CR0_CMDQEN | SmmuV3.CR0_EVENTQEN | SmmuV3.CR0_SMMUEN);
        uint gerror = (uint)vm.Bus.Read(bas + (ulong)SmmuRegister.GERROR, 4), gerrorn = (uint)vm.Bus.Read(bas + (ulong)SmmuRegister.GERRORN, 4);
        if (((gerror ^ gerrorn) & SmmuV3.GERROR_CMDQ_ERR) == 0) return;
        uint cons = (uint)vm.Bus.Read(bas + (ulong)SmmuRegister.CMDQ_CONS, 4);
        ulong failed = qbase + (cons & ((1u << shift) - 1)) * (ulong)Command.Size;
        if (vm.Ram.Contains(failed, Command.Size))
        {
            var sync = new byte[Command.Size];
            BinaryPrimitives.WriteUInt64LittleEndian(sync, Command.Sync().W0);
            vm.Ram.Write(failed, sync);
        }
        vm.Bus.Write(bas + (ulong)SmmuRegister.GERRORN, 4, gerrorn ^ SmmuV3.GERROR_CMDQ_ERR);
    }
}
