using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Uapi;
using G = NestedSmmu.Vmm.VCmdqv.GuestCmdqvLayout;

namespace NestedSmmu.Vmm.VCmdqv;

/// <summary>
/// The guest-visible NVIDIA Tegra241 CMDQV of an accelerated vSMMU (the <c>cmdqv</c> property of
/// arm-smmuv3; QEMU's hw/arm/tegra241-cmdqv.c). It shows the guest one VINTF with two VCMDQs and
/// backs them with the host VINTF that the vSMMU's TEGRA241_CMDQV vIOMMU owns:
/// <list type="bullet">
/// <item>The 0x50000 region sits on the guest's <see cref="MmioBus"/> as five 64 KiB pages. The
/// config page and both page 1 apertures are always trapped; the direct page 0 aperture is
/// trapped and served from the host page (allocated queues) or a register cache (the others).</item>
/// <item>When the guest enables VINTF0, the host VINTF page 0 (mmap of the iommufd) replaces the
/// trapped VINTF page 0 on the bus, so PROD writes and CONS polls reach the hardware with no VMM
/// code in between; disabling the VINTF or a reset puts the trapped page back.</item>
/// <item>A VCMDQ gets a host HW queue (IOMMU_HW_QUEUE_ALLOC on guest RAM) once BASE, ALLOC, CMDQV
/// enable and VINTF enable are all set; queues are freed in descending order.</item>
/// <item>Queue errors arrive as TEGRA241_CMDQV vEVENTs (<see cref="PollEvents"/>) and become the
/// guest's error maps and an edge on <see cref="Irq"/>.</item>
/// </list>
/// Built by the vSMMU, which allocates the vIOMMU and hands it over; this class allocates the
/// vEVENTQ and the mmap, and gives them back on <see cref="Dispose"/> (the vIOMMU stays with the
/// vSMMU). Guest accesses never throw: kernel refusals become CMDQ_INIT_ERR and a message.
/// Split by concern: this file (wiring, lifecycle, counters), .Registers.cs (the trapped register
/// file), .Queues.cs (HW queue setup and the register cache), .Errors.cs (vEVENTs, error maps).
/// Not thread-safe: the VM's one thread drives it.
/// </summary>
public sealed partial class Tegra241VCmdqv : IDisposable
{
    /// <summary>log2 of the TEGRA241_CMDQV vEVENTQ depth: QEMU uses 1 &lt;&lt; SMMU_EVENTQS (19).</summary>
    public const int VeventqDepthLog2 = 19;
    /// <summary>Depth of the TEGRA241_CMDQV vEVENTQ.</summary>
    public const uint VeventqDepth = 1u << VeventqDepthLog2;

    private readonly IIommufd _iommufd;
    private readonly IReadOnlyList<GuestRamBlock> _guestRam;
    private readonly MmioBus _bus;
    private readonly TrappedPage[] _trapped;
    private readonly IMmioMapping _hostPage;
    private readonly DirectVintfPage _direct;
    private readonly IVeventQueue _events;
    private readonly List<string> _messages = [];
    private bool _disposed;

    /// <summary>
    /// Sets the CMDQV up for a vSMMU whose first device allocated <paramref name="viommu"/>: maps
    /// the host VINTF page (not yet into the guest), allocates the TEGRA241_CMDQV vEVENTQ, places
    /// the trapped region on <paramref name="bus"/> at <paramref name="mmioBase"/> and resets the
    /// registers.
    /// </summary>
    /// <param name="iommufd">The VM's iommufd.</param>
    /// <param name="viommu">A vIOMMU of type TEGRA241_CMDQV (its driver data names the VINTF page).</param>
    /// <param name="creatorDevice">The device whose attach allocated the vIOMMU (for the unplug policy).</param>
    /// <param name="guestRam">Guest RAM blocks, for the backing checks of VCMDQ buffers.</param>
    /// <param name="bus">The guest's MMIO bus.</param>
    /// <param name="mmioBase">Guest physical base of the region (the SMMU's MMIO region #1); 64 KiB aligned.</param>
    /// <param name="irq">The CMDQV interrupt line.</param>
    /// <param name="name">A label for bus regions and messages.</param>
    /// <exception cref="ArgumentException">The vIOMMU is not TEGRA241_CMDQV, or the base is not page aligned.</exception>
    /// <exception cref="IommufdException">The kernel refused the mmap or the vEVENTQ (the message says which).</exception>
    /// <exception cref="InvalidOperationException">The region overlaps another on the bus.</exception>
    public Tegra241VCmdqv(IIommufd iommufd, ViommuAllocation viommu, string creatorDevice, IReadOnlyList<GuestRamBlock> guestRam,
        MmioBus bus, ulong mmioBase, IrqLine irq, string name = "tegra241-cmdqv")
    {
        ArgumentNullException.ThrowIfNull(iommufd);
        ArgumentNullException.ThrowIfNull(viommu);
        ArgumentException.ThrowIfNullOrEmpty(creatorDevice);
        ArgumentNullException.ThrowIfNull(guestRam);
        ArgumentNullException.ThrowIfNull(bus);
        ArgumentNullException.ThrowIfNull(irq);
        if (viommu.Type != ViommuType.Tegra241Cmdqv)
            throw new ArgumentException($"vIOMMU {viommu.Id} is of type {viommu.Type}; a guest CMDQV needs one of type {ViommuType.Tegra241Cmdqv}.", nameof(viommu));
        if (mmioBase % G.PageSize != 0)
            throw new ArgumentException($"The CMDQV region base 0x{mmioBase:X} is not aligned to its 64 KiB pages.", nameof(mmioBase));

        _iommufd = iommufd;
        Viommu = viommu.Id;
        CreatorDevice = creatorDevice;
        _guestRam = guestRam;
        _bus = bus;
        MmioBase = mmioBase;
        Irq = irq;
        Name = name;

        Tegra241CmdqvViommuData data = viommu.AsTegra241Cmdqv();
        _hostPage = WithHint(() => iommufd.Mmap(data.VintfMmapOffset, G.PageSize), "Tegra241 CMDQV: failed to mmap VINTF page0");
        try
        {
            _events = WithHint(() => iommufd.AllocVeventq(viommu.Id, VeventqType.Tegra241Cmdqv, VeventqDepth),
                "Tegra241 CMDQV: failed to alloc veventq");
        }
        catch
        {
            _hostPage.Dispose();
            throw;
        }
        _direct = new DirectVintfPage(_hostPage, Counters);
        _trapped = [.. Enum.GetValues<CmdqvPage>().Select(p => new TrappedPage(this, p))];
        try
        {
            foreach (TrappedPage page in _trapped) bus.Map(mmioBase + G.PageBase(page.Page), page, $"{name} {page.Page}");
        }
        catch
        {
            foreach (TrappedPage page in _trapped) bus.Unmap(page);
            DisposeEvents();
            _hostPage.Dispose();
            throw;
        }
        for (int q = 0; q < _queues.Length; q++) _queues[q] = new VcmdqState();
        InitRegisters();
    }

    /// <summary>A label for bus regions and messages.</summary>
    public string Name { get; }

    /// <summary>Guest physical base of the region.</summary>
    public ulong MmioBase { get; }

    /// <summary>Bytes of the region (0x50000).</summary>
    public static ulong Size => G.Size;

    /// <summary>The TEGRA241_CMDQV vIOMMU whose VINTF backs the guest's.</summary>
    public ViommuId Viommu { get; }

    /// <summary>The device whose attach allocated the vIOMMU.</summary>
    public string CreatorDevice { get; }

    /// <summary>The CMDQV interrupt line.</summary>
    public IrqLine Irq { get; }

    /// <summary>Trapped accesses by page and direct accesses by VCMDQ; part of the VM's report.</summary>
    public CmdqvAccessCounters Counters { get; } = new();

    /// <summary>What QEMU would print with error_report/warn_report (HW queue failures, lost events), oldest first.</summary>
    public IReadOnlyList<string> Messages => _messages;

    /// <summary>Raised with each new entry of <see cref="Messages"/>.</summary>
    public event Action<string>? MessageLogged;

    /// <summary>The host VINTF page 0 is mapped over the guest's VINTF page 0 (the VINTF is enabled).</summary>
    public bool VintfPageMapped { get; private set; }

    /// <summary>
    /// The guest VCMDQs that are running on the host: a HW queue is allocated and the hardware
    /// reports STATUS.CMDQ_EN_OK (the guest set CONFIG.CMDQ_EN).
    /// </summary>
    public IReadOnlyList<int> EnabledQueues =>
        [.. Enumerable.Range(0, G.NumVcmdqs).Where(q => _queues[q].HwQueue is not null
            && (_hostPage.Read32(G.Page0Offset(q, VcmdqPage0Register.STATUS)) & Tegra241Cmdqv.VCMDQ_ENABLED) != 0)];

    /// <summary>The host HW queue behind guest VCMDQ <paramref name="queue"/>, or null when it has none.</summary>
    public HwQueueId? HwQueueOf(int queue) => _queues[CheckQueue(queue)].HwQueue;

    /// <summary>
    /// The unplug policy for a device of this vSMMU (<see cref="CmdqvUnplugPolicy"/>): null when
    /// <paramref name="device"/> may go, else the message to refuse with.
    /// </summary>
    /// <param name="device">The device to unplug.</param>
    /// <param name="devicesOnViommu">Devices attached to the vIOMMU now, this one included.</param>
    public string? CheckUnplug(string device, int devicesOnViommu) => CmdqvUnplugPolicy.Check(new CmdqvUnplugRequest(
        device, Name, CreatedViommu: device == CreatorDevice, CmdqvActive: !_disposed, devicesOnViommu, EnabledQueues));

    /// <summary>
    /// QEMU's tegra241_cmdqv_reset (system reset): the host page leaves the guest's bus, every HW
    /// queue is freed (descending) and every register returns to its reset value. Counters stay.
    /// </summary>
    public void Reset()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        UnmapVintfPage0();
        FreeAllQueues();
        InitRegisters();
    }

    /// <summary>
    /// Frees the HW queues (descending), takes the region off the bus, closes and destroys the
    /// vEVENTQ and unmaps the host page, in that order, so the vSMMU can then destroy the vIOMMU.
    /// Kernel errors on the way become <see cref="Messages"/>.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        UnmapVintfPage0();
        FreeAllQueues();
        foreach (TrappedPage page in _trapped) _bus.Unmap(page);
        DisposeEvents();
        _hostPage.Dispose();
        _disposed = true;
    }

    private void DisposeEvents()
    {
        VeventqId id = _events.Id;
        _events.Dispose();
        try
        {
            _iommufd.Destroy(id);
        }
        catch (IommufdException e)
        {
            Report(e.Message);
        }
    }

    /// <summary>Maps the host page over the guest's VINTF page 0 (tegra241_cmdqv_guest_map_vintf_page0).</summary>
    private void MapVintfPage0()
    {
        if (VintfPageMapped) return;
        TrappedPage trapped = _trapped[(int)CmdqvPage.VintfPage0];
        _bus.Unmap(trapped);
        _bus.Map(MmioBase + G.PageBase(CmdqvPage.VintfPage0), _direct, $"{Name} vintf-page0");
        VintfPageMapped = true;
    }

    private void UnmapVintfPage0()
    {
        if (!VintfPageMapped) return;
        _bus.Unmap(_direct);
        TrappedPage trapped = _trapped[(int)CmdqvPage.VintfPage0];
        _bus.Map(MmioBase + G.PageBase(CmdqvPage.VintfPage0), trapped, $"{Name} {trapped.Page}");
        VintfPageMapped = false;
    }

    private void Report(string message)
    {
        _messages.Add(message);
        MessageLogged?.Invoke(message);
    }

    private static T WithHint<T>(Func<T> call, string hint)
    {
        try
        {
            return call();
        }
        catch (IommufdException e)
        {
            throw new IommufdException(e.Errno, e.Operation, e.Detail is null ? hint : $"{e.Detail}. {hint}", e);
        }
    }

    private static int CheckQueue(int queue) => (uint)queue < G.NumVcmdqs ? queue
        : throw new ArgumentOutOfRangeException(nameof(queue), queue, $"The guest CMDQV has VCMDQs 0..{G.NumVcmdqs - 1}.");

    /// <summary>One trapped page of the region: every access is a VM exit into the register file, counted by page.</summary>
    private sealed class TrappedPage(Tegra241VCmdqv owner, CmdqvPage page) : IMmioDevice
    {
        public CmdqvPage Page { get; } = page;
        public ulong Size => G.PageSize;

        public ulong Read(ulong offset, int width)
        {
            owner.Counters.Trap(Page);
            return owner.TrapRead(Page, offset, width);
        }

        public void Write(ulong offset, int width, ulong value)
        {
            owner.Counters.Trap(Page);
            owner.TrapWrite(Page, offset, width, value);
        }
    }

    /// <summary>
    /// The host VINTF page as installed in the guest's address space (QEMU's ram-device subregion
    /// over VINTF page 0): accesses go to the mapping, so to the hardware, and are counted per
    /// logical queue on the way, as the stage-2 mapping would see them.
    /// </summary>
    private sealed class DirectVintfPage(IMmioMapping mapping, CmdqvAccessCounters counters) : IMmioDevice
    {
        public ulong Size => G.PageSize;

        public ulong Read(ulong offset, int width)
        {
            counters.DirectAccess(QueueOf(offset), prodWrite: false);
            return mapping.Read(offset, width);
        }

        public void Write(ulong offset, int width, ulong value)
        {
            counters.DirectAccess(QueueOf(offset), prodWrite: offset % Tegra241CmdqvLayout.VcmdqStride == (ulong)VcmdqPage0Register.PROD);
            mapping.Write(offset, width, value);
        }

        private static int QueueOf(ulong offset) => (int)Math.Min(offset / Tegra241CmdqvLayout.VcmdqStride, int.MaxValue);
    }
}
