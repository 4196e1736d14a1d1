using NestedSmmu.Hardware.Memory;
using NestedSmmu.Iommufd;
using NestedSmmu.Vmm.Acpi;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.Fdt;
using NestedSmmu.Vmm.VCmdqv;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Vmm.Machine;

/// <summary>How a <see cref="Vm"/> is realized.</summary>
public sealed record VmOptions
{
    /// <summary>The defaults: guest RAM capped at <see cref="DefaultMaxGuestRam"/>, no passthrough DMA, no trace.</summary>
    public static VmOptions Default { get; } = new();

    /// <summary>1 GiB: enough for every queue, table and buffer the workloads use, and cheap to map on an emulated host.</summary>
    public const ulong DefaultMaxGuestRam = 1UL << 30;

    /// <summary>
    /// Guest RAM is min(-m, this). The firmware tables still describe the machine as given; only
    /// the RAM actually backed (and mapped into the IOAS) is smaller. <see cref="Vm.Notes"/> says so.
    /// </summary>
    public ulong MaxGuestRam { get; init; } = DefaultMaxGuestRam;

    /// <summary>How vfio devices issue DMA (a workload harness on a host that allows it), or null.</summary>
    public IPassthroughDma? PassthroughDma { get; init; }

    /// <summary>Receives one line per trapped MMIO access, per vSMMU/CMDQV message, and per plug step.</summary>
    public Action<string>? Trace { get; init; }
}

/// <summary>The firmware tables a <see cref="Vm"/> gives its guest, as bytes.</summary>
/// <param name="Iort">The IORT.</param>
/// <param name="Dsdt">The DSDT.</param>
/// <param name="Dtb">The device tree, where QEMU would write one (no accel SMMU).</param>
/// <param name="DeviceTreeBoot">The guest boots from the device tree (virt with iommu=smmuv3), not ACPI.</param>
public sealed record FirmwareTables(byte[] Iort, byte[] Dsdt, byte[]? Dtb, bool DeviceTreeBoot);

/// <summary>
/// A realized virt machine (VMM.md "Realize" and "Run"): from a machine the validator accepted and
/// a host's <see cref="IIommufd"/>: guest RAM mapped at IOVA = GPA in an IOAS, the guest's
/// <see cref="MmioBus"/>, each vSMMU on the board's platform-bus address (accelerated ones sharing
/// one <see cref="VSmmuHostContext"/>), a guest CMDQV per cmdqv vSMMU while its vIOMMU lives, and
/// the PCI functions plugged in creation order (vfio ones bound with their host BDF and attached at
/// vSID = requester ID). It shows the guest only <see cref="Bus"/>, <see cref="Ram"/> and
/// <see cref="Tables"/>; a workload harness may also make devices DMA (<see cref="VmDevice.Dma"/>).
/// </summary>
/// <remarks>
/// Nothing validation checked is checked again. Realize can still fail where only the kernel can
/// say no (an errno); it then unwinds what it built, in reverse order, and rethrows. Hot-plug
/// after <see cref="Boot"/> reuses each vSMMU's resolved properties and is refused (with
/// <see cref="VsmmuBindingRules"/>' messages) when the device would change them; unplug follows
/// the CMDQV policy (<see cref="Tegra241VCmdqv.CheckUnplug"/>). <see cref="Dispose"/> tears down
/// in reverse: devices (last plugged first), CMDQVs with their vIOMMUs, vSMMUs, the bus, RAM.
/// Not thread-safe: one vCPU thread drives it.
/// </remarks>
public sealed partial class Vm : IDisposable
{
    private readonly List<VmVsmmu> _vsmmus = [];
    private readonly List<VmDevice> _devices = [];
    private readonly List<string> _notes = [];
    private readonly List<GuestRamBlock> _ramBlocks = [];
    private readonly HostView _host;
    private readonly VmOptions _options;
    private MachineSpec _spec;
    // QEMU's SMMU device regions, numbered once for the machine's life (unplug leaves them): hot-plug refusals name one.
    private readonly SmmuDeviceRegions _smmuRegions;
    private bool _disposed;

    private Vm(MachineCheck check, HostView host, IIommufd iommufd, VmOptions options, VirtBoard board, FirmwareTables tables)
    {
        Check = check;
        _spec = check.Spec;
        _smmuRegions = SmmuDeviceRegions.AtMachineDone(check.Topology!);
        _host = host;
        Iommufd = iommufd;
        _options = options;
        Board = board;
        Tables = tables;
    }

    /// <summary>The validator's verdict this VM was realized from.</summary>
    public MachineCheck Check { get; }

    /// <summary>The machine as running: the checked spec plus hot-plugged devices.</summary>
    public MachineSpec Spec => _spec;

    /// <summary>The host.</summary>
    public IIommufd Iommufd { get; }

    /// <summary>Memory map, SMMU placement and SPIs.</summary>
    public VirtBoard Board { get; }

    /// <summary>What the guest's firmware hands the OS.</summary>
    public FirmwareTables Tables { get; }

    /// <summary>Guest RAM (guest-physical view of host memory).</summary>
    public GuestRam Ram { get; private set; } = null!;

    /// <summary>The guest's MMIO bus: vSMMU frames and CMDQV pages.</summary>
    public MmioBus Bus { get; } = new();

    /// <summary>The host objects shared by the accelerated vSMMUs, or null without one.</summary>
    public VSmmuHostContext? HostContext { get; private set; }

    /// <summary>The vSMMUs in creation order (the legacy iommu=smmuv3 alone when the machine has it).</summary>
    public IReadOnlyList<VmVsmmu> Vsmmus => _vsmmus;

    /// <summary>The PCI functions in plug order.</summary>
    public IReadOnlyList<VmDevice> Devices => _devices;

    /// <summary>Things a user should know about how this VM differs from the command line (e.g. RAM capped).</summary>
    public IReadOnlyList<string> Notes => _notes;

    /// <summary>True once the guest booted: plugging is hot-plug from then on.</summary>
    public bool Booted { get; private set; }

    /// <summary>What the guest asked of the vSMMUs and CMDQVs that they refused or reported (QEMU's error_report lines).</summary>
    public IEnumerable<string> DeviceMessages =>
        _vsmmus.SelectMany(v => (v.Device is AcceleratedVSmmu a ? a.Log : []).Concat(v.Cmdqv?.Messages ?? []).Select(m => $"{v.Name}: {m}"));

    /// <summary>
    /// Builds the machine <paramref name="check"/> accepted on the host behind <paramref name="iommufd"/>.
    /// </summary>
    /// <param name="check">An accepted verdict (with a host view, so accel vSMMUs are resolved).</param>
    /// <param name="host">The host view the check was made with.</param>
    /// <param name="iommufd">An open iommufd on that host; the VM allocates in it and frees everything on dispose.</param>
    /// <param name="options">RAM cap, passthrough DMA, trace.</param>
    /// <exception cref="ArgumentException">The machine was not accepted.</exception>
    /// <exception cref="IommufdException">The kernel refused something; everything built so far was unwound.</exception>
    public static Vm Realize(MachineCheck check, HostView host, IIommufd iommufd, VmOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(check);
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(iommufd);
        if (!check.Accepted || check.Topology is null)
            throw new ArgumentException($"Only an accepted machine is realized: {check.Error?.Message}", nameof(check));
        options ??= VmOptions.Default;

        // The guest's view of bus numbers: after its firmware's depth-first scan (the IORT is read then).
        VirtBoard board = VirtBoard.Layout(VirtBoardSpec.From(check, PciNumberingView.FirmwareEnumerated));
        bool dt = board.Spec.LegacySmmu && VirtDeviceTree.Supports(board);
        var tables = new FirmwareTables(Iort.Build(board), Dsdt.Build(board), VirtDeviceTree.Supports(board) ? VirtDeviceTree.Build(board) : null, dt);

        var vm = new Vm(check, host, iommufd, options, board, tables);
        try
        {
            vm.BuildRam();
            vm.BuildVsmmus();
            foreach (DeviceCheck d in check.Devices) vm.Plug(d, hotPlugged: false);
        }
        catch
        {
            vm.Dispose();
            throw;
        }
        return vm;
    }

    /// <summary>The guest is running: every device plugged from now on is hot-plugged.</summary>
    public void Boot() => Booted = true;

    /// <summary>
    /// What the VMM's event loop does between vCPU exits: copy host vEVENTs into the guests' event
    /// queues and read the CMDQVs' error events. Returns the records handled.
    /// </summary>
    public int ServiceEvents()
    {
        int n = 0;
        foreach (VmVsmmu v in _vsmmus)
        {
            if (v.Device is AcceleratedVSmmu a) n += a.ServiceHostEvents();
            if (v.Cmdqv is { } c) n += c.PollEvents();
        }
        return n;
    }

    /// <summary>The device named <paramref name="name"/>, or null.</summary>
    public VmDevice? Device(string name) => _devices.FirstOrDefault(d => d.Name == name);

    /// <summary>The vSMMU named <paramref name="name"/>, or null.</summary>
    public VmVsmmu? Vsmmu(string name) => _vsmmus.FirstOrDefault(v => v.Name == name);

    /// <summary>Tears the machine down in reverse order of building; kernel errors on the way are traced, not thrown.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        for (int i = _devices.Count - 1; i >= 0; i--) Release(_devices[i]);
        _devices.Clear();
        for (int i = _vsmmus.Count - 1; i >= 0; i--)
        {
            VmVsmmu v = _vsmmus[i];
            try
            {
                v.Device.Dispose(); // frees the vIOMMU; ViommuDestroying disposed the CMDQV first
                RetireCmdqv(v);
            }
            catch (IommufdException e)
            {
                Trace($"teardown: {v.Name}: {e.Message}");
            }
            Bus.Unmap(v.Tap);
        }
        _vsmmus.Clear();
        Ram?.Dispose();
    }

    // ------------------------------------------------------------------ realize

    private void BuildRam()
    {
        ulong requested = _spec.Memory?.Size ?? VirtBoardSpec.DefaultRamSize;
        ulong size = Math.Min(requested, _options.MaxGuestRam);
        if (size < requested)
            _notes.Add($"guest RAM: 0x{size:X} bytes backed of the 0x{requested:X} requested (-m), the cap for the emulated host; " +
                       "the firmware tables still describe the full size");
        Ram = new GuestRam(Iommufd, GuestRam.VirtRamBase, size, name: "guest-ram");
        // Anonymous host memory: 4 KiB backend pages bound what the CMDQV may read contiguously.
        _ramBlocks.Add(new GuestRamBlock("ram0", Ram.Base, Ram.Size, AnonymousPageSize));
        Trace($"realize: {Ram}");
    }

    /// <summary>The host page of anonymous memory (memory-backend-ram, the default): 4 KiB.</summary>
    private const ulong AnonymousPageSize = 0x1000;

    private void BuildVsmmus()
    {
        if (Check.Vsmmus.Count != Board.Smmus.Count)
            throw new InvalidOperationException($"The board placed {Board.Smmus.Count} SMMU(s) for {Check.Vsmmus.Count} checked vSMMU(s).");
        for (int i = 0; i < Check.Vsmmus.Count; i++)
        {
            VsmmuCheck c = Check.Vsmmus[i];
            PlacedSmmu placed = Board.Smmus[i];
            VSmmuProperties props = (c.Resolved?.ToVSmmuProperties((byte)placed.Identifier)
                ?? GivenProperties(c.Device!, (byte)placed.Identifier));
            if (props.Cmdqv) props = props with { CmdqsLimit = CmdqvQueueSizing.ClampCmdqs(props.ToFeatures().CmdqLog2Max, _ramBlocks) };
            if (props.Accel) HostContext ??= new VSmmuHostContext(Iommufd, Ram.Ioas);
            IVSmmu device = VSmmuFactory.Create(c.Name == PciIommuOwner.LegacyName ? placed.Id : c.Name, props, Ram, HostContext);
            var tap = new VmTrapTap(device, _options.Trace);
            var v = new VmVsmmu(c, placed, device, tap, c.Resolved);
            _vsmmus.Add(v);
            Bus.Map(placed.Base, tap, device.Name);
            if (device is AcceleratedVSmmu accel && props.Cmdqv) WireCmdqv(v, accel);
            Trace($"realize: {v} SPI {placed.Spi}..{placed.Spi + VirtBoard.SmmuIrqCount - 1}{(placed.CmdqvBase is { } cb ? $", CMDQV at 0x{cb:X} SPI {placed.CmdqvSpi}" : "")}");
        }
    }

    /// <summary>
    /// An accel vSMMU with no cold-plugged device was not resolved (validation allows that only when
    /// no property is auto): its given values, cmdqv=auto as off until a device binds it.
    /// </summary>
    private static VSmmuProperties GivenProperties(ArmSmmuV3Device d, byte identifier) => new(
        Accel: d.Accel, Stage: VSmmuStage.Stage1, Ats: d.Ats == OnOffAuto.On, Ril: d.Ril != OnOffAuto.Off,
        SsidSize: d.SsidSize.Bits ?? 0, OasBits: d.Oas.Bits ?? VSmmuProperties.QemuDefaultOasBits, Cmdqv: d.Cmdqv == OnOffAuto.On,
        Identifier: identifier);

    /// <summary>The guest CMDQV lives exactly as long as the vSMMU's TEGRA241_CMDQV vIOMMU (QEMU's tegra241_cmdqv_alloc_viommu).</summary>
    private void WireCmdqv(VmVsmmu v, AcceleratedVSmmu accel)
    {
        if (v.Placed.CmdqvBase is not { } cmdqvBase || v.Placed.CmdqvSpi is not { } spi)
            throw new InvalidOperationException($"vSMMU {v.Name} has cmdqv on but the board gave it no CMDQV region.");
        v.CmdqvIrq = new IrqLine($"{v.Name} cmdqv (SPI {spi})");
        accel.ViommuCreated += viommu =>
        {
            try
            {
                string creator = _devices.Concat(_plugging is null ? [] : [_plugging])
                    .FirstOrDefault(d => d.IommufdDevice == accel.ViommuCreator)?.Name ?? accel.ViommuCreator?.ToString() ?? "?";
                v.Cmdqv = new Tegra241VCmdqv(Iommufd, viommu, creator, _ramBlocks, Bus, cmdqvBase, v.CmdqvIrq, $"{v.Name} cmdqv");
                v.Cmdqv.MessageLogged += m => Trace($"{v.Name} cmdqv: {m}");
                Trace($"{v.Name}: vIOMMU {viommu.Id} (TEGRA241_CMDQV) created by {creator}; guest CMDQV at 0x{cmdqvBase:X}");
            }
            catch (Exception e) when (e is IommufdException or InvalidOperationException or ArgumentException)
            {
                // Thrown inside the vSMMU's attach: Plug sees it and unplugs the device, freeing the vIOMMU.
                v.CmdqvFailure = e;
            }
        };
        accel.ViommuDestroying += _ =>
        {
            Trace($"{v.Name}: vIOMMU going; guest CMDQV released");
            RetireCmdqv(v);
        };
    }

    private static void RetireCmdqv(VmVsmmu v)
    {
        if (v.Cmdqv is not { } c) return;
        v.RetiredCmdqvTraps += c.Counters.TotalTraps;
        v.RetiredCmdqvDirect += c.Counters.TotalDirect;
        v.RetiredCmdqvDoorbells += Enumerable.Range(0, GuestCmdqvLayout.NumVcmdqs).Sum(c.Counters.DirectProdWrites);
        c.Dispose();
        v.Cmdqv = null;
    }

    private void Trace(string line) => _options.Trace?.Invoke(line);
}
