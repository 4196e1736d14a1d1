using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;

namespace NestedSmmu.Vmm.VSmmu;

/// <summary>
/// An accelerated vSMMU (<c>-device arm-smmuv3,accel=on</c>): the guest-visible SMMUv3 register
/// frame and queues, emulated in the VMM, backed by the host's SMMU through <see cref="IIommufd"/>
/// as QEMU's smmuv3-accel.c does. The guest's stream table becomes per-device HWPTs (abort,
/// bypass, or nested from the guest's S1 STE), its invalidations are forwarded in batches to the
/// vIOMMU, and the host's vEVENTQ is copied into its event queue with the vSID.
/// </summary>
/// <remarks>
/// Split by concern: this file (lifecycle, devices, host objects), .Registers.cs (the frame),
/// .Commands.cs (the command queue), .Events.cs (event queue, interrupts). Guest mistakes become
/// CMDQ_CONS.ERR and GERROR bits; only host-side failures of <see cref="AttachDevice"/> throw.
/// Not thread-safe: one vCPU thread traps into it at a time, as QEMU's BQL serialises MMIO.
/// </remarks>
public sealed partial class AcceleratedVSmmu : IVSmmu
{
    private const int MaxLogLines = 1024;

    private readonly IPhysicalMemory _memory;
    private readonly VSmmuHostContext _host;
    private readonly IViommuProvider _viommuProvider;
    private readonly Dictionary<uint, AccelDevice> _devices = new();
    private readonly List<string> _log = new();
    private ViommuAllocation? _viommu;
    private HwptId _abortHwpt, _bypassHwpt;
    private bool _disposed;

    /// <summary>One vfio device behind this vSMMU (QEMU's SMMUv3AccelDevice).</summary>
    private sealed class AccelDevice(DeviceId device, uint streamId, HwptId nestParent)
    {
        public DeviceId Device { get; } = device;
        public uint StreamId { get; } = streamId;
        public HwptId NestParent { get; } = nestParent;
        public VdeviceId? Vdevice { get; set; }
        /// <summary>The nested HWPT built from the guest's S1 STE, when that is what is attached.</summary>
        public HwptId? NestedHwpt { get; set; }
        public HwptId Attached { get; set; }
    }

    /// <summary>
    /// A vSMMU whose guest structures live in <paramref name="guestMemory"/> and whose host side is
    /// <paramref name="host"/> (shared with the VM's other accelerated vSMMUs).
    /// </summary>
    /// <param name="name">The device id, for messages and reports.</param>
    /// <param name="properties">Resolved properties; <see cref="VSmmuProperties.Accel"/> must be set and the stage 1.</param>
    /// <param name="guestMemory">The guest physical address space (guest RAM).</param>
    /// <param name="host">The host context: iommufd, IOAS, shared nest parents.</param>
    /// <param name="viommuProvider">How to allocate the vIOMMU; by default TEGRA241_CMDQV when <see cref="VSmmuProperties.Cmdqv"/>, else ARM_SMMUV3.</param>
    /// <exception cref="ArgumentException">The properties are not those of an accelerated vSMMU.</exception>
    public AcceleratedVSmmu(string name, VSmmuProperties properties, IPhysicalMemory guestMemory, VSmmuHostContext host,
        IViommuProvider? viommuProvider = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(properties);
        if (!properties.Accel) throw new ArgumentException($"vSMMU '{name}': accel=off is an {nameof(EmulatedVSmmu)}.", nameof(properties));
        if (properties.Stage != VSmmuStage.Stage1)
            throw new ArgumentException("Only stage1 is supported for SMMUv3 with accel=on", nameof(properties));
        ArgumentNullException.ThrowIfNull(guestMemory);
        ArgumentNullException.ThrowIfNull(host);
        Name = name;
        Properties = properties;
        Features = properties.ToFeatures();
        _memory = guestMemory;
        _host = host;
        _viommuProvider = viommuProvider
            ?? (properties.Cmdqv ? Tegra241CmdqvViommuProvider.Instance : ArmSmmuV3ViommuProvider.Instance);
        _regs = CreateRegisters();
    }

    /// <inheritdoc/>
    public string Name { get; }
    /// <inheritdoc/>
    public VSmmuProperties Properties { get; }
    /// <inheritdoc/>
    public SmmuFeatures Features { get; }
    /// <inheritdoc/>
    public ulong Size => SmmuRegisters.FrameSize;
    /// <inheritdoc/>
    public MmioTrapCounters Traps { get; } = new((int)(SmmuRegisters.FrameSize / MmioTrapCounters.PageSize));
    /// <summary>The accelerated path's counters.</summary>
    public AcceleratedVSmmuCounters Counters { get; } = new();
    /// <summary>The host context (shared nest parents).</summary>
    public VSmmuHostContext Host => _host;
    /// <summary>The vIOMMU, while at least one device is attached.</summary>
    public ViommuAllocation? Viommu => _viommu;
    /// <summary>The device whose attach allocated the vIOMMU (a CMDQV refuses to lose it), while the vIOMMU exists.</summary>
    public DeviceId? ViommuCreator { get; private set; }
    /// <summary>The pre-allocated abort HWPT (STE0 = V), while the vIOMMU exists.</summary>
    public HwptId? AbortHwpt => _viommu is null ? null : _abortHwpt;
    /// <summary>The pre-allocated bypass HWPT (STE0 = V | CFG bypass), while the vIOMMU exists.</summary>
    public HwptId? BypassHwpt => _viommu is null ? null : _bypassHwpt;
    /// <summary>Guest StreamIDs of the attached devices.</summary>
    public IReadOnlyCollection<uint> StreamIds => _devices.Keys;
    /// <summary>What the vSMMU reported about guest mistakes and host refusals (QEMU's error_report lines), oldest first.</summary>
    public IReadOnlyList<string> Log => _log;

    /// <inheritdoc/>
    public event Action<SmmuInterrupt>? InterruptRaised;

    /// <summary>
    /// An MSI the guest configured (IRQ_CFG0/CMD_SYNC MSIAddress outside RAM, e.g. the ITS doorbell):
    /// the VM routes it. Only with IDR0.MSI, which QEMU's model does not advertise.
    /// </summary>
    public event Action<ulong, uint>? MsiRaised;

    /// <summary>
    /// The vIOMMU was allocated (first device attached): a CMDQV vSMMU builds its guest-visible
    /// CMDQV from it (QEMU's tegra241_cmdqv_alloc_viommu / init_vcmdqv).
    /// </summary>
    public event Action<ViommuAllocation>? ViommuCreated;

    /// <summary>
    /// The vIOMMU is about to be destroyed (last device detached, or disposal): drop what keeps it
    /// busy (VINTF page mmaps, HW queues) now, or the DESTROY fails with EBUSY.
    /// </summary>
    public event Action<ViommuAllocation>? ViommuDestroying;

    /// <summary>The device attached for <paramref name="streamId"/>, or null.</summary>
    public DeviceId? DeviceOf(uint streamId) => _devices.TryGetValue(streamId, out AccelDevice? d) ? d.Device : null;

    /// <summary>The vDEVICE of <paramref name="streamId"/> (allocated on the guest's first CFGI_STE for it), or null.</summary>
    public VdeviceId? VdeviceOf(uint streamId) => _devices.TryGetValue(streamId, out AccelDevice? d) ? d.Vdevice : null;

    /// <summary>The HWPT the device of <paramref name="streamId"/> is attached to now, or null.</summary>
    public HwptId? AttachedHwptOf(uint streamId) => _devices.TryGetValue(streamId, out AccelDevice? d) ? d.Attached : null;

    /// <summary>The nested HWPT made from the guest's S1 STE of <paramref name="streamId"/>, or null.</summary>
    public HwptId? NestedHwptOf(uint streamId) => _devices.TryGetValue(streamId, out AccelDevice? d) ? d.NestedHwpt : null;

    /// <summary>
    /// Plugs a bound vfio device in at guest StreamID <paramref name="streamId"/> (its requester
    /// ID on the vSMMU's bus): attaches it to the shared nest-parent stage 2, and on the first
    /// device allocates the vIOMMU, the abort and bypass HWPTs and, if the guest's event queue is
    /// on, the vEVENTQ (smmuv3_accel_set_iommu_device). Later devices, cold- or hot-plugged,
    /// reuse the vIOMMU. The device then gets the GBPA HWPT (SMMU disabled) or the abort HWPT
    /// until the guest's CFGI_STE for it (SMMU enabled).
    /// </summary>
    /// <exception cref="InvalidOperationException">The StreamID is taken.</exception>
    /// <exception cref="IommufdException">The host refused (another physical SMMU's vIOMMU: EINVAL, ...); nothing is left behind.</exception>
    public void AttachDevice(DeviceId device, uint streamId)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_devices.ContainsKey(streamId))
            throw new InvalidOperationException($"vSMMU '{Name}' already has a device at StreamID 0x{streamId:X}.");
        HwptId parent = _host.AttachToNestParent(device);
        var dev = new AccelDevice(device, streamId, parent) { Attached = parent };
        bool created = false;
        try
        {
            if (_viommu is null)
            {
                CreateViommu(device, parent);
                created = true;
            }
            // The first device gets the GBPA HWPT in smmuv3_accel_alloc_viommu; a device plugged into an
            // enabled vSMMU aborts until the guest issues CFGI_STE for it (its vDEVICE comes then).
            HwptId initial = !Enabled && !GbpaAbort ? _bypassHwpt : _abortHwpt;
            Fd.AttachDevice(device, initial);
            dev.Attached = initial;
            _devices.Add(streamId, dev);
        }
        catch
        {
            _devices.Remove(streamId);
            ReleaseDevice(dev);
            if (created) FreeViommu();
            _host.DetachFromNestParent(device);
            throw;
        }
    }

    /// <summary>
    /// Unplugs a device (smmuv3_accel_unset_iommu_device): back to the nest parent, its nested
    /// HWPT and vDEVICE freed; the last device also frees the vEVENTQ, the bypass and abort HWPTs
    /// and the vIOMMU, in that order; finally the device leaves the nest parent.
    /// </summary>
    /// <returns>False when no device is attached at <paramref name="streamId"/>.</returns>
    public bool DetachDevice(uint streamId)
    {
        if (!_devices.Remove(streamId, out AccelDevice? dev)) return false;
        ReleaseDevice(dev);
        if (_devices.Count == 0) FreeViommu();
        _host.DetachFromNestParent(dev.Device);
        return true;
    }

    /// <summary>System reset: registers to reset values, then every device onto the GBPA HWPT (smmuv3_accel_reset).</summary>
    public void Reset()
    {
        FreeVeventq();
        _regs.Reset();
        InstallAll();
    }

    /// <summary>Unplugs every device and frees every host object this vSMMU made.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        foreach (uint sid in _devices.Keys.ToList()) DetachDevice(sid);
        _disposed = true;
    }

    /// <inheritdoc/>
    public override string ToString() => $"vSMMU '{Name}' (accel=on, {_devices.Count} devices{(_viommu is null ? "" : $", vIOMMU {_viommu.Id}")})";

    // ------------------------------------------------------------------ host objects

    private IIommufd Fd => _host.Iommufd;

    /// <summary>smmuv3_accel_alloc_viommu: vIOMMU, abort HWPT, bypass HWPT, vEVENTQ if the guest's queue is on.</summary>
    private void CreateViommu(DeviceId device, HwptId parent)
    {
        ViommuAllocation viommu = _viommuProvider.Allocate(Fd, device, parent);
        try
        {
            _abortHwpt = Fd.AllocNestedHwpt(device, viommu.Id, new ArmSmmuV3Vste(StreamTableEntry.Create(SteConfig.Abort, shcfg: 0).W0, 0));
            try
            {
                _bypassHwpt = Fd.AllocNestedHwpt(device, viommu.Id, new ArmSmmuV3Vste(StreamTableEntry.Create(SteConfig.Bypass, shcfg: 0).W0, 0));
            }
            catch
            {
                Fd.TryDestroy(_abortHwpt, out _);
                throw;
            }
        }
        catch
        {
            _viommuProvider.Releasing(Fd, viommu);
            Fd.TryDestroy(viommu.Id, out _);
            throw;
        }
        _viommu = viommu;
        ViommuCreator = device;
        if (EventQueueEnabled) EnsureVeventq();
        ViommuCreated?.Invoke(viommu);
    }

    /// <summary>smmuv3_accel_free_viommu: vEVENTQ, bypass HWPT, abort HWPT, then the vIOMMU.</summary>
    private void FreeViommu()
    {
        if (_viommu is null) return;
        FreeVeventq();
        Destroy(_bypassHwpt, "bypass HWPT");
        Destroy(_abortHwpt, "abort HWPT");
        ViommuDestroying?.Invoke(_viommu);
        _viommuProvider.Releasing(Fd, _viommu);
        Destroy(_viommu.Id, "vIOMMU");
        _viommu = null;
        ViommuCreator = null;
        _abortHwpt = _bypassHwpt = default;
    }

    /// <summary>A device leaves: back on its nest parent, then its nested HWPT and vDEVICE are freed.</summary>
    private void ReleaseDevice(AccelDevice dev)
    {
        if (dev.Attached != dev.NestParent)
        {
            if (!Fd.TryAttachDevice(dev.Device, dev.NestParent, out _, out Errno e))
                Report($"Unable to attach the default HW pagetable: device {dev.Device} ({e})");
            dev.Attached = dev.NestParent;
        }
        if (dev.NestedHwpt is { } nested) Destroy(nested, "nested HWPT");
        dev.NestedHwpt = null;
        if (dev.Vdevice is { } vdevice) Destroy(vdevice, "vDEVICE");
        dev.Vdevice = null;
    }

    private void Destroy(ObjectId id, string what)
    {
        if (!Fd.TryDestroy(id, out Errno e)) Report($"failed to free {what} {id}: {e}");
    }

    private void InstallAll()
    {
        foreach (AccelDevice dev in _devices.Values) Install(dev);
    }

    private bool InstallRange(uint first, uint last)
    {
        bool ok = true;
        foreach (AccelDevice dev in _devices.Values)
        {
            if (dev.StreamId >= first && dev.StreamId <= last) ok &= Install(dev);
        }
        return ok;
    }

    /// <summary>
    /// smmuv3_accel_install_ste: a vDEVICE on first use, then the HWPT the guest's configuration
    /// asks for, attached; the previous nested HWPT is freed once the new one is in place. False
    /// (and a <see cref="Log"/> line) for a configuration the host cannot take: CERROR_ILL.
    /// </summary>
    private bool Install(AccelDevice dev)
    {
        if (_viommu is null) return true;
        if (dev.Vdevice is null)
        {
            try
            {
                dev.Vdevice = Fd.AllocVdevice(_viommu.Id, dev.Device, dev.StreamId);
                Counters.VdevicesAllocated++;
            }
            catch (IommufdException e)
            {
                Report($"IOMMU_VDEVICE_ALLOC failed for sid 0x{dev.StreamId:X}: {e.Errno}");
                return false;
            }
        }
        HwptId target;
        HwptId? nested = null;
        if (!Enabled)
        {
            target = GbpaAbort ? _abortHwpt : _bypassHwpt;
        }
        else if (!TryReadGuestSte(dev.StreamId, out StreamTableEntry ste))
        {
            // No STE: the SMMU would abort this stream (C_BAD_STREAMID or F_STE_FETCH), so does its HWPT.
            target = _abortHwpt;
        }
        else if (!ste.V || ste.ConfigRaw == (uint)SteConfig.Abort)
        {
            target = _abortHwpt;
        }
        else if (ste.Config == SteConfig.Bypass)
        {
            target = _bypassHwpt;
        }
        else if (ste.Config == SteConfig.Stage1)
        {
            var vste = new ArmSmmuV3Vste(ste.W0 & Ste0Mask, ste.W1 & Ste1Mask);
            try
            {
                nested = Fd.AllocNestedHwpt(dev.Device, _viommu.Id, vste);
                Counters.NestedHwptsAllocated++;
            }
            catch (IommufdException e)
            {
                Report($"Invalid STE config for sid 0x{dev.StreamId:X}: IOMMU_HWPT_ALLOC failed ({e.Errno})");
                return false;
            }
            target = nested.Value;
        }
        else
        {
            Report($"Invalid STE config for sid 0x{dev.StreamId:X}");
            return false;
        }
        if (!Fd.TryAttachDevice(dev.Device, target, out _, out Errno error))
        {
            if (nested is { } failed) Fd.TryDestroy(failed, out _);
            Report($"Failed to attach HWPT {target} for sid 0x{dev.StreamId:X} ({error})");
            return false;
        }
        dev.Attached = target;
        if (dev.NestedHwpt is { } previous) Destroy(previous, "nested HWPT");
        dev.NestedHwpt = nested;
        Counters.SteInstalls++;
        return true;
    }

    // The STE fields the kernel lets a guest set (arm-smmu-v3-iommufd.c, arm_smmu_validate_vste;
    // IHI 0070 5.2): word 0 V [0], Config [3:1], S1Fmt [5:4], S1ContextPtr [51:6], S1CDMax [63:59];
    // word 1 S1DSS [65:64], S1CIR [67:66], S1COR [69:68], S1CSH [71:70], S1STALLD [91], EATS [93:92].
    private static readonly ulong Ste0Mask = Bits.Mask(0, 0) | Bits.Mask(3, 1) | Bits.Mask(5, 4)
        | Bits.Mask(51, 6) | Bits.Mask(63, 59);
    private static readonly ulong Ste1Mask = Bits.Mask(1, 0) | Bits.Mask(3, 2) | Bits.Mask(5, 4)
        | Bits.Mask(7, 6) | Bits.Mask(27, 27) | Bits.Mask(29, 28);

    private void Report(string message)
    {
        if (_log.Count == MaxLogLines) _log.RemoveAt(0);
        _log.Add(message);
    }

    /// <summary>The guest's STE for <paramref name="sid"/> from its stream table in guest RAM (IHI 0070 3.3), as the SMMU would find it.</summary>
    private bool TryReadGuestSte(uint sid, out StreamTableEntry ste)
    {
        var lookup = StreamTableLocator.Locate(_memory, _regs.StrtabBase, _regs.StrtabBaseCfg, Features, sid);
        ste = lookup.Found ? StreamTableLocator.ReadSte(_memory, lookup.SteAddress) : default;
        return lookup.Found;
    }
}
