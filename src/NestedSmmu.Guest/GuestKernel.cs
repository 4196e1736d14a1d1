using NestedSmmu.Guest.Cmdqv;
using NestedSmmu.Guest.Dma;
using NestedSmmu.Guest.Firmware;
using NestedSmmu.Guest.Smmu;

namespace NestedSmmu.Guest;

/// <summary>One SMMU the guest found and brought up, with its CMDQV when the firmware described one.</summary>
public sealed record GuestSmmu(int Index, uint? IortIdentifier, ArmSmmuV3Driver Driver, Tegra241CmdqvDriver? Cmdqv)
{
    public ulong BaseAddress => Driver.BaseAddress;
}

/// <summary>Invalidation traffic by path, summed over every SMMU.</summary>
public readonly record struct InvalidationTotals(long Batches, long Commands, long Syncs, long Errors);

/// <summary>
/// The part of a guest OS that deals with IOMMUs, driven end to end by the `run` command or tests:
/// reads the firmware (IORT + DSDT, or a device tree), probes and resets every SMMUv3, brings up each
/// CMDQV whose NVDA200C _UID matches an SMMUv3 node's identifier, and hands out DMA-API devices
/// for PCI requester IDs (resolved through the IORT ID mappings or the DT iommu-map, as Linux's
/// iort_iommu_configure / of_iommu_configure do). It reaches the VM only through the MMIO bus,
/// guest RAM and the table bytes given.
/// </summary>
public sealed class GuestKernel
{
    private readonly MmioBus _bus;
    private readonly IPhysicalMemory _ram;
    private readonly GuestPageAllocator _pages;
    private readonly List<GuestSmmu> _smmus = new();
    private readonly Dictionary<(int Segment, ushort Rid), DmaDevice> _devices = new();
    private Iort? _iort;
    private FdtIommuTopology? _fdt;

    private GuestKernel(MmioBus bus, IPhysicalMemory ram, GuestPageAllocator pages, GuestLog log, ArmSmmuV3Options smmuOptions, Tegra241CmdqvDriverOptions cmdqvOptions)
    {
        _bus = bus;
        _ram = ram;
        _pages = pages;
        Log = log;
        SmmuOptions = smmuOptions;
        CmdqvOptions = cmdqvOptions;
    }

    public GuestLog Log { get; }

    /// <summary>
    /// Traces MMIO accesses and commands of every driver (set before boot to see the bring-up too:
    /// pass it to the Boot methods).
    /// </summary>
    public Action<string>? Trace
    {
        get => _trace;
        set
        {
            _trace = value;
            foreach (var s in _smmus)
            {
                s.Driver.Trace = value;
                if (s.Cmdqv is not null) s.Cmdqv.Trace = value;
            }
        }
    }

    private Action<string>? _trace;
    public ArmSmmuV3Options SmmuOptions { get; }
    public Tegra241CmdqvDriverOptions CmdqvOptions { get; }
    public IReadOnlyList<GuestSmmu> Smmus => _smmus;
    public IReadOnlyCollection<DmaDevice> Devices => _devices.Values;
    public GuestPageAllocator Pages => _pages;

    /// <summary>
    /// Boots from ACPI: every SMMUv3 node of <paramref name="iort"/> is probed and reset; with a
    /// <paramref name="dsdt"/>, each NVDA200C device is bound to the SMMU whose identifier is its _UID.
    /// An SMMU that fails to probe is logged and left out (the guest carries on without it, as Linux).
    /// </summary>
    public static GuestKernel BootFromAcpi(MmioBus bus, IPhysicalMemory ram, GuestPageAllocator pages, ReadOnlySpan<byte> iort,
        ReadOnlySpan<byte> dsdt = default, GuestLog? log = null, ArmSmmuV3Options? smmuOptions = null, Tegra241CmdqvDriverOptions? cmdqvOptions = null,
        Action<string>? trace = null)
    {
        ArgumentNullException.ThrowIfNull(bus);
        ArgumentNullException.ThrowIfNull(ram);
        ArgumentNullException.ThrowIfNull(pages);
        var k = new GuestKernel(bus, ram, pages, log ?? new GuestLog(), smmuOptions ?? ArmSmmuV3Options.Default, cmdqvOptions ?? Tegra241CmdqvDriverOptions.Default) { _trace = trace };
        k._iort = Iort.Parse(iort);
        var problems = new List<string>();
        var cmdqvs = dsdt.IsEmpty ? [] : CmdqvAcpiNode.FindAll(AmlScanner.FindDevices(dsdt), problems);
        foreach (var p in problems) k.Log.Error("acpi", p);
        int index = 0;
        foreach (var node in k._iort.SmmuV3Nodes)
        {
            var driver = k.BringUp(index, node.BaseAddress);
            if (driver is null) { index++; continue; }
            Tegra241CmdqvDriver? cmdqv = null;
            if (CmdqvAcpiNode.ForSmmu(cmdqvs, node.Identifier) is { } cv)
            {
                cmdqv = new Tegra241CmdqvDriver($"NVDA200C:{cv.Uid:X2}", bus, cv.Base, cv.Interrupt, driver, k.CmdqvOptions);
                cmdqv.Registers.Trace = trace;
                if (!cmdqv.Probe()) cmdqv = null;
            }
            k._smmus.Add(new GuestSmmu(index++, node.Identifier, driver, cmdqv));
            foreach (var rmr in k._iort.Rmrs)
                foreach (uint sid in k._iort.RmrStreamIds(rmr, node)) driver.InstallBypassSte(sid);
        }
        return k;
    }

    /// <summary>Boots from a flattened device tree (virt with iommu=smmuv3): every "arm,smmu-v3" node.</summary>
    public static GuestKernel BootFromDeviceTree(MmioBus bus, IPhysicalMemory ram, GuestPageAllocator pages, ReadOnlySpan<byte> dtb,
        GuestLog? log = null, ArmSmmuV3Options? smmuOptions = null, Action<string>? trace = null)
    {
        ArgumentNullException.ThrowIfNull(bus);
        ArgumentNullException.ThrowIfNull(ram);
        ArgumentNullException.ThrowIfNull(pages);
        var k = new GuestKernel(bus, ram, pages, log ?? new GuestLog(), smmuOptions ?? ArmSmmuV3Options.Default, Tegra241CmdqvDriverOptions.Default) { _trace = trace };
        k._fdt = FdtIommuTopology.Read(FlattenedDeviceTree.Parse(dtb));
        int index = 0;
        foreach (var node in k._fdt.Smmus)
        {
            var driver = k.BringUp(index, node.BaseAddress);
            if (driver is not null) k._smmus.Add(new GuestSmmu(index, null, driver, null));
            index++;
        }
        return k;
    }

    private ArmSmmuV3Driver? BringUp(int index, ulong baseAddress)
    {
        var driver = new ArmSmmuV3Driver($"smmuv3.{index}", _bus, baseAddress, _ram, _pages, Log, SmmuOptions) { Trace = _trace };
        if (driver.Probe() && driver.Reset()) return driver;
        Log.Error(driver.Name, $"probe of the SMMU at 0x{baseAddress:X} failed; its devices get no DMA translation");
        return null;
    }

    /// <summary>
    /// A PCI function's DMA-API device: the firmware says which SMMU and StreamID serve
    /// <paramref name="rid"/>; the master gets its own stage-1 domain. Null when no SMMU serves it
    /// (its DMA is untranslated; logged).
    /// </summary>
    public DmaDevice? AddPciDevice(string name, ushort rid, int segment = 0, bool ats = false)
    {
        if (_devices.ContainsKey((segment, rid))) throw new InvalidOperationException($"{name}: requester ID {segment:X4}:{rid >> 8:X2}:{(rid >> 3) & 0x1F:X2}.{rid & 7} is already set up.");
        if (!TryRoute(segment, rid, out var smmu, out uint sid))
        {
            Log.Info(name, $"no IOMMU for requester ID 0x{rid:X4}: DMA is not translated");
            return null;
        }
        bool useAts = ats && smmu.Driver.Features.Ats && (_iort is null || _iort.RootComplexes.Any(rc => rc.PciSegment == (uint)segment && rc.AtsSupported));
        var master = smmu.Driver.AddMaster(name, sid, useAts);
        var dev = new DmaDevice(smmu.Driver, master);
        // Reserved memory ranges of IORT RMR nodes naming this StreamID stay reachable one to one.
        if (_iort is not null && smmu.IortIdentifier is not null)
        {
            var node = _iort.SmmuV3Nodes.First(n => n.BaseAddress == smmu.BaseAddress);
            foreach (var rmr in _iort.Rmrs)
            {
                if (!_iort.RmrStreamIds(rmr, node).Contains(sid)) continue;
                foreach (var range in rmr.Ranges)
                    if (!dev.MapDirect(range.Base, range.Length))
                        Log.Error(name, $"RMR range 0x{range.Base:X} + 0x{range.Length:X} could not be mapped one to one");
            }
        }
        _devices[(segment, rid)] = dev;
        Log.Info(name, $"attached to {smmu.Driver.Name} (sid 0x{sid:X}, asid {dev.Domain.Asid}{(useAts ? ", ATS" : "")})");
        return dev;
    }

    /// <summary>Which of the guest's SMMUs and which StreamID serve a requester ID.</summary>
    public bool TryRoute(int segment, ushort rid, out GuestSmmu smmu, out uint streamId)
    {
        smmu = null!;
        streamId = 0;
        ulong baseAddress;
        if (_iort is not null)
        {
            if (!_iort.TryResolve(segment, rid, out var route)) return false;
            baseAddress = route.Smmu.BaseAddress;
            streamId = route.StreamId;
        }
        else if (_fdt is not null && segment == 0 && _fdt.TryResolve(rid, out var node, out streamId)) baseAddress = node.BaseAddress;
        else return false;
        smmu = _smmus.FirstOrDefault(s => s.BaseAddress == baseAddress)!;
        return smmu is not null;
    }

    /// <summary>The device for a requester ID set up earlier, if any.</summary>
    public DmaDevice? Device(ushort rid, int segment = 0) => _devices.GetValueOrDefault((segment, rid));

    /// <summary>
    /// Route invalidations through the SMMUs' own queues (true: the trapped path) or let CMDQVs take
    /// what they accept (false: the direct path), as Linux's bypass_vcmdq knob does.
    /// </summary>
    public void BypassVcmdq(bool bypass)
    {
        foreach (var s in _smmus) if (s.Cmdqv is not null) s.Cmdqv.BypassVcmdq = bypass;
    }

    /// <summary>
    /// What the SMMUs' interrupt handlers would do now: GERROR and the event queue of every SMMU.
    /// Returns the new faults. (Each reads SMMU registers: in a VM these are trapped accesses.)
    /// </summary>
    public List<SmmuFaultReport> ServiceInterrupts()
    {
        var faults = new List<SmmuFaultReport>();
        foreach (var s in _smmus) faults.AddRange(s.Driver.Service());
        return faults;
    }

    /// <summary>
    /// The CMDQV interrupt of SMMU <paramref name="index"/> (bind it to the _CRS interrupt): reads the
    /// error maps and recovers the queues. VCMDQ errors are also recovered when a sync poll sees CONS.ERR.
    /// </summary>
    public int HandleCmdqvInterrupt(int index) => _smmus[index].Cmdqv?.HandleInterrupt() ?? 0;

    /// <summary>Traffic through the SMMUs' own command queues (each PROD write a VM exit in a VM).</summary>
    public InvalidationTotals Trapped => Sum(_smmus.Select(s => s.Driver.SmmuQueueCounters));

    /// <summary>Traffic through CMDQV VCMDQs (PROD writes in a mapped page: no exit).</summary>
    public InvalidationTotals Direct => Sum(_smmus.Where(s => s.Cmdqv is not null).Select(s => s.Cmdqv!.DirectCounters));

    private static InvalidationTotals Sum(IEnumerable<CommandPathCounters> counters)
    {
        long b = 0, c = 0, y = 0, e = 0;
        foreach (var x in counters) { b += x.Batches; c += x.Commands; y += x.Syncs; e += x.Errors; }
        return new InvalidationTotals(b, c, y, e);
    }
}
