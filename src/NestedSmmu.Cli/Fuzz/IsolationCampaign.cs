using System.Diagnostics;
using NestedSmmu.Cli.Run;
using NestedSmmu.Guest;
using NestedSmmu.Guest.Dma;
using NestedSmmu.Guest.Smmu;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.Machine;
using NestedSmmu.Vmm.VCmdqv;

namespace NestedSmmu.Cli.Fuzz;

/// <summary>One broken invariant or escaped exception: the step and seed replay it.</summary>
internal sealed record FuzzFinding(long Step, string Vm, string Operation, string Invariant, string Detail);

/// <summary>The campaign's outcome.</summary>
/// <param name="Kinds">Operations by kind and outcome (e.g. <c>dma translated</c>, <c>command</c>), so a run shows what it exercised.</param>
internal sealed record FuzzOutcome(int Seed, long Operations, long InvariantChecks, IReadOnlyList<string> Invariants,
    IReadOnlyList<FuzzFinding> Violations, IReadOnlyList<FuzzFinding> Crashes, IReadOnlyDictionary<string, long> Kinds);

/// <summary>
/// The VM-level isolation campaign behind `nestedsmmu fuzz`: two VMs realized with <see cref="Vm.Realize"/>
/// on one emulated host, each given every other device behind each physical SMMU, so the VMs share the
/// physical SMMUs. A seeded generator drives guest operations through each VM's MMIO bus and guest RAM
/// only (register writes of every width, commands in the vSMMU's queue, garbage in the guest's tables,
/// device DMA); the emulated host's diagnostics check the invariants after every step.
/// </summary>
internal static class IsolationCampaign
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
    }

    public static FuzzOutcome Run(int seed, long operations)
    {
        HostProfile profile = HostProfile.LoadEmbedded(HostName);
        HostView view = ProfileHostView.From(profile);
        var host = new EmulatedHost(profile);
        ulong memoryBefore = host.Diagnostics.HostMemoryAllocated;
        var violations = new List<FuzzFinding>();
        var crashes = new List<FuzzFinding>();
        long checks = 0;
        var rng = new Random(seed);
        Guest a = Start(host, view, profile, "vm0", 0), b = Start(host, view, profile, "vm1", 1);
        EmulatedHostDiagnostics diag = host.Diagnostics;
        var kinds = new SortedDictionary<string, long>(StringComparer.Ordinal);
        long step;
        for (step = 0; step < operations; step++)
        {
            Guest self = rng.Next(2) == 0 ? a : b, other = self == a ? b : a;
            var stes = other.Devices.Select(d => diag.ReadSte(d.Host!.Address)).ToList();
            var tlbs = OtherTlb(diag, other);
            string op = "";
            var sw = Stopwatch.StartNew();
            try
            {
                op = Step(rng, self, other, diag, violations, step);
            }
            catch (Exception e)
            {
                crashes.Add(new FuzzFinding(step, self.Name, op, InvariantNames[0], $"{e.GetType().Name}: {e.Message}"));
            }
            sw.Stop();
            string kind = op.Contains(": fault", StringComparison.Ordinal) ? "dma faulted" : op.Contains(" -> ", StringComparison.Ordinal) ? "dma translated"
                : op.Split(' ')[0] + (op.Contains("outside guest RAM", StringComparison.Ordinal) ? " (queue or table outside RAM)"
                    : op.Contains("not consumed", StringComparison.Ordinal) ? " (not consumed)" : op.Contains("consumed", StringComparison.Ordinal) ? " (consumed)" : "");
            kinds[kind] = kinds.GetValueOrDefault(kind) + 1;
            checks += 4;
            if (sw.Elapsed > StepBudget)
                violations.Add(new FuzzFinding(step, self.Name, op, InvariantNames[1], $"{sw.Elapsed.TotalMilliseconds:F0} ms"));
            var stesAfter = other.Devices.Select(d => diag.ReadSte(d.Host!.Address)).ToList();
            for (int i = 0; i < stes.Count; i++)
                if (stes[i] != stesAfter[i])
                    violations.Add(new FuzzFinding(step, self.Name, op, InvariantNames[2], $"{other.Devices[i].Name}: {stes[i]} -> {stesAfter[i]}"));
            foreach (var (smmu, before) in tlbs)
            {
                if (before is null) continue;
                kinds["(other VM's TLB entries watched)"] = kinds.GetValueOrDefault("(other VM's TLB entries watched)") + before.Count;
                var after = OtherEntries(diag, smmu, other);
                if (!before.SetEquals(after))
                    violations.Add(new FuzzFinding(step, self.Name, op, InvariantNames[3],
                        $"{smmu}: {before.Count} entries of {other.Name} before, {after.Count} after, {before.Except(after).Count()} gone, {after.Except(before).Count()} new"));
            }
            if (violations.Count + crashes.Count > 0) { step++; break; }
        }

        checks++;
        try
        {
            foreach (Guest g in new[] { a, b })
            {
                g.Vm.Dispose();
                g.Fd.Dispose();
            }
            ulong left = diag.HostMemoryAllocated - memoryBefore;
            if (left != 0) violations.Add(new FuzzFinding(step, "both", "teardown", InvariantNames[5], $"0x{left:X} bytes of host memory left"));
        }
        catch (Exception e)
        {
            crashes.Add(new FuzzFinding(step, "both", "teardown", InvariantNames[5], $"{e.GetType().Name}: {e.Message}"));
        }
        return new FuzzOutcome(seed, step, checks, InvariantNames, violations, crashes, kinds);
    }

    /// <summary>Realizes and boots one VM with every other device (starting at <paramref name="parity"/>) behind each physical SMMU.</summary>
    private static Guest Start(EmulatedHost host, HostView view, HostProfile profile, string name, int parity)
    {
        var mine = new HashSet<string>(profile.Smmus.SelectMany(s => profile.Devices.Where(d => d.Smmu == s.Name).Where((_, i) => i % 2 == parity)).Select(d => d.Name));
        IReadOnlyList<string> args = DefaultMachine.Arguments(profile, d => mine.Contains(d.Name));
        MachineCheck check = MachineValidator.Check(args, view);
        if (check.Error is { } refused) throw new InvalidOperationException($"{name}: {refused.Message}");
        IIommufd fd = host.Open();
        Vm vm = Vm.Realize(check, view, fd, new VmOptions { PassthroughDma = new EmulatedPassthroughDma(host.Diagnostics) });
        vm.Boot();
        var g = new Guest(name, vm, null!, fd, (EmulatedHostMemoryRegion)vm.Ram.Region);
        g.Devices.AddRange(vm.Devices.Where(d => d.CanDma && d.Vsmmu is not null && d.Host is not null));
        Reboot(g);
        return g;
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
            DmaDevice? dma = g.Kernel.AddPciDevice(d.Name, d.RequesterId);
            for (int i = 0; i < 4 && dma is not null; i++, buffer += 0x1000)
                if (dma.Map(buffer, 0x1000) is { } m) g.Iovas.Add(m.Iova);
        }
        return $"reboot ({g.Iovas.Count} IOVAs mapped)";
    }

    private static List<(string Smmu, HashSet<TlbEntry>? Entries)> OtherTlb(EmulatedHostDiagnostics diag, Guest other) =>
        [.. other.Devices.Select(d => diag.SmmuOf(d.Host!.Address)).Distinct()
            .Select(s => (s, diag.TlbEntries(s).Count >= new Iotlb().Capacity - TlbHeadroom ? null : OtherEntries(diag, s, other)))];

    private static HashSet<TlbEntry> OtherEntries(EmulatedHostDiagnostics diag, string smmu, Guest other)
    {
        var vmids = other.Devices.Where(d => diag.SmmuOf(d.Host!.Address) == smmu).Select(d => diag.ReadSte(d.Host!.Address).S2VMID).ToHashSet();
        return [.. diag.TlbEntries(smmu).Where(e => e.Regime != TlbRegime.El2 && vmids.Contains(e.Vmid))];
    }

    /// <summary>One random guest operation; returns what it was (for the report).</summary>
    private static string Step(Random rng, Guest self, Guest other, EmulatedHostDiagnostics diag, List<FuzzFinding> violations, long step)
    {
        if (rng.Next(RebootOneIn) == 0) return Reboot(self);
        VmVsmmu v = self.Vm.Vsmmus[rng.Next(self.Vm.Vsmmus.Count)];
        ulong bas = v.Placed.Base;
        switch (rng.Next(11))
        {
            case 10 when v.Cmdqv is { } cmdqv:
            {
                // The CMDQV frame: global registers, VINTF0, the VCMDQ pages (the guest's VINTF page is the host's, mapped in).
                ulong offset = (ulong)rng.NextInt64((long)Tegra241VCmdqv.Size) & ~3UL;
                int width = rng.Next(3) == 0 ? 8 : 4;
                ulong value = rng.Next(3) switch { 0 => 0, 1 => (ulong)rng.NextInt64(), _ => 1UL << rng.Next(64) };
                self.Vm.Bus.Write(cmdqv.MmioBase + (offset & ~((ulong)width - 1)), width, value);
                return $"cmdqv-write{width * 8} {v.Name}+0x{offset:X} = 0x{value:X}";
            }
            case 0:
            case 1:
            {
                // A register write: a defined register or any offset in the two pages, any width, valid-looking or random bits.
                SmmuRegister[] regs = Enum.GetValues<SmmuRegister>();
                ulong offset = rng.Next(4) == 0 ? (ulong)rng.Next(2 * (int)SmmuRegister.Page1) & ~3UL : (ulong)regs[rng.Next(regs.Length)];
                int width = new[] { 1, 2, 4, 8 }[rng.Next(4)];
                ulong value = rng.Next(3) switch { 0 => 0, 1 => (ulong)rng.NextInt64(), _ => 1UL << rng.Next(64) };
                self.Vm.Bus.Write(bas + offset, width, value);
                return $"write{width * 8} {v.Name}+0x{offset:X} = 0x{value:X}";
            }
            case 2:
            case 3:
            case 4:
            {
                Command c = RandomCommand(rng, self, other, diag);
                return $"command {c.Opcode} 0x{c.W0:X16} 0x{c.W1:X16} on {v.Name}: {Submit(self.Vm, bas, c)}";
            }
            case 5:
            {
                // Garbage in the guest's tables: the STE of one of its StreamIDs (linear table) or any driver page.
                ulong strtab = self.Vm.Bus.Read(bas + (ulong)SmmuRegister.STRTAB_BASE, 8) & 0x000F_FFFF_FFFF_FFC0UL;
                ulong at = rng.Next(2) == 0 && self.Devices.Count > 0
                    ? strtab + self.Devices[rng.Next(self.Devices.Count)].Vsid * 64UL
                    : self.Vm.Ram.Base + ((ulong)rng.NextInt64((long)(self.Vm.Ram.Size / 2)) & ~63UL);
                var junk = new byte[64];
                rng.NextBytes(junk);
                if (!self.Vm.Ram.Contains(at, 64)) return $"garbage at 0x{at:X} skipped (outside guest RAM)";
                self.Vm.Ram.Write(at, junk);
                Command inv = rng.Next(2) == 0 ? Command.CfgiAll() : Command.CfgiSte(self.Devices.Count > 0 ? self.Devices[0].Vsid : 0);
                return $"garbage at 0x{at:X}, then {inv.Opcode}: {Submit(self.Vm, bas, inv)}";
            }
            case 9:
                self.Vm.ServiceEvents();
                self.Kernel.ServiceInterrupts();
                return "service events";
            default:
                return Dma(rng, self, violations, step);
        }
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
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(bytes, c.W0);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(8), c.W1);
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
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(sync, Command.Sync().W0);
            vm.Ram.Write(failed, sync);
        }
        vm.Bus.Write(bas + (ulong)SmmuRegister.GERRORN, 4, gerrorn ^ SmmuV3.GERROR_CMDQ_ERR);
    }

    private static Command RandomCommand(Random rng, Guest self, Guest other, EmulatedHostDiagnostics diag)
    {
        uint sid = rng.Next(4) switch
        {
            0 when self.Devices.Count > 0 => self.Devices[rng.Next(self.Devices.Count)].Vsid,
            1 when other.Devices.Count > 0 => other.Devices[rng.Next(other.Devices.Count)].Vsid,
            // Any SID a PCI requester ID can name (the ones nobody was given), or far out of range.
            2 => (uint)rng.Next(0x10000),
            _ => (uint)rng.NextInt64(uint.MaxValue),
        };
        ushort vmid = rng.Next(2) == 0 && other.Devices.Count > 0 ? diag.ReadSte(other.Devices[0].Host!.Address).S2VMID : (ushort)rng.Next(0x10000);
        ushort asid = (ushort)rng.Next(rng.Next(2) == 0 ? 4 : 0x10000);
        ulong va = (ulong)rng.NextInt64() & ~0xFFFUL;
        return rng.Next(16) switch
        {
            0 => Command.CfgiSte(sid, rng.Next(2) == 0),
            1 => Command.CfgiSteRange(sid, (uint)rng.Next(32)),
            2 => Command.CfgiCd(sid, (uint)rng.Next(4)),
            3 => Command.CfgiCdAll(sid),
            4 => Command.TlbiNhAll(vmid),
            5 => Command.TlbiNhAsid(vmid, asid),
            6 => Command.TlbiNhVa(vmid, asid, va, rng.Next(2) == 0, (uint)rng.Next(4), (uint)rng.Next(4), (uint)rng.Next(32), (uint)rng.Next(32)),
            7 => Command.TlbiNhVaa(vmid, va),
            8 => Command.TlbiS12Vmall(vmid),
            9 => Command.TlbiS2Ipa(vmid, va),
            10 => Command.TlbiNsnhAll(),
            11 => Command.TlbiEl2All(),
            12 => Command.AtcInv(sid, rng.Next(2) == 0 ? null : (uint)rng.Next(4), va, (uint)rng.Next(64), rng.Next(2) == 0),
            13 => Command.Sync(),
            14 => Command.PrefetchConfig(sid),
            // Any bits at all: illegal opcodes, reserved fields.
            _ => new Command((ulong)rng.NextInt64() ^ ((ulong)rng.Next(2) << 63), (ulong)rng.NextInt64()),
        };
    }

    /// <summary>Device DMA through the passthrough hook: a mapped IOVA or any; where it translates, it must land in this VM's RAM.</summary>
    private static string Dma(Random rng, Guest self, List<FuzzFinding> violations, long step)
    {
        if (self.Devices.Count == 0) return "dma (no device)";
        VmDevice d = self.Devices[rng.Next(self.Devices.Count)];
        ulong iova = rng.Next(3) > 0 && self.Iovas.Count > 0 ? self.Iovas[rng.Next(self.Iovas.Count)] + (ulong)rng.Next(0x1000 - 8)
            : (ulong)rng.NextInt64() >> rng.Next(64);
        AccessKind access = rng.Next(2) == 0 ? AccessKind.Read : AccessKind.Write;
        var data = new byte[8];
        rng.NextBytes(data);
        DmaResult r = d.Dma(iova, access, data);
        string op = $"dma {access} {d.Name} iova 0x{iova:X}";
        if (!r.IsSuccess) return op + ": fault";
        ulong pa = r.Translation.PhysicalAddress;
        if (pa - self.Ram.HostPhysicalAddress >= self.Ram.Length)
            violations.Add(new FuzzFinding(step, self.Name, op, InvariantNames[4], $"landed at host 0x{pa:X}, outside the VM's RAM [0x{self.Ram.HostPhysicalAddress:X}, +0x{self.Ram.Length:X})"));
        return op + $" -> 0x{pa:X}";
    }
}
