using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>Options of an <see cref="EmulatedHost"/>.</summary>
public sealed record EmulatedHostOptions
{
    /// <summary>The defaults: no selftest types, a 4096-line kernel log.</summary>
    public static EmulatedHostOptions Default { get; } = new();

    /// <summary>
    /// Accept the kernel selftest driver's types (<see cref="SelftestTypes"/>) on SMMUv3 devices,
    /// as a kernel built with CONFIG_IOMMUFD_TEST does. Off by default.
    /// </summary>
    public bool EnableSelftestTypes { get; init; }

    /// <summary>
    /// The host kernel runs at EL2 with the Virtualization Host Extensions (ARM64_HAS_VIRT_HOST_EXTN,
    /// a KVM host). With an SMMU that has IDR0.HYP the driver then sets ARM_SMMU_FEAT_E2H: CR2.E2H,
    /// stage-1 STEs in the EL2 StreamWorld and TLBI_EL2_* invalidations. Off by default (a kernel
    /// at EL1, as in the real-kernel comparison under QEMU).
    /// </summary>
    public bool KernelAtEl2WithVhe { get; init; }

    /// <summary>Lines the kernel log keeps (the oldest are dropped).</summary>
    public int KernelLogCapacity { get; init; } = 4096;
}

/// <summary>
/// An emulated Linux host with physical SMMUv3s and PCI devices behind them, built from a
/// <see cref="HostProfile"/>: the embedded default host behind <see cref="IIommufd"/>. It owns
/// host physical memory (sparse), the host MMIO bus with one <see cref="SmmuV3"/> per profile SMMU,
/// one <see cref="PciEndpoint"/> per device, and the in-process kernel that drives them: an
/// arm-smmu-v3 driver per SMMU (enabled at construction through MMIO and its command queue) and
/// the iommufd core, opened with <see cref="Open"/> (several contexts may be open).
/// <see cref="Diagnostics"/> shows what the hardware did and lets devices issue DMA.
/// </summary>
/// <remarks>Deterministic: the same calls in the same order give the same addresses, IDs and events.</remarks>
public sealed class EmulatedHost
{
    /// <summary>First fd number handed out for vEVENTQs (below it: the process's other files).</summary>
    private const int FirstFd = 100;

    private readonly List<ArmSmmuDevice> _smmus = [];
    private readonly Dictionary<string, HostPciDevice> _devices = new(StringComparer.Ordinal);
    // By BDF as well: a VMM names its vfio functions by address, once per DMA in a whole-system run.
    private readonly Dictionary<PciAddress, HostPciDevice> _devicesByAddress = new();
    // And by the address as sysfs spells it (PciAddress.ToString), which is how a VMM got it: parsing
    // the text (splits and concatenations) took 220-240 ns, about 40 % of a 4 KiB passthrough DMA.
    private readonly Dictionary<string, HostPciDevice> _devicesByAddressText = new(StringComparer.Ordinal);
    private readonly List<EmulatedIommufd> _contexts = [];
    private readonly Queue<string> _log = new();
    private int _nextContextId = 1;
    private int _nextFd = FirstFd;

    /// <summary>Builds the host and boots its kernel: every SMMU enabled, every device blocked.</summary>
    /// <exception cref="HostProfileException">The profile is inconsistent.</exception>
    public EmulatedHost(HostProfile profile, EmulatedHostOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(profile);
        profile.Validate();
        Profile = profile;
        Options = options ?? EmulatedHostOptions.Default;
        Memory = new SparseMemory();
        Allocator = new HostMemoryAllocator(Memory, profile.Memory.Base, profile.Memory.Size);
        UserMemory = new UserAddressSpace();
        Copy = new UserCopy(UserMemory);
        Bus = new MmioBus();
        Diagnostics = new EmulatedHostDiagnostics(this);

        lock (KernelLock)
        {
            Log($"emulated host '{profile.Name}': 0x{profile.Memory.Size:X} bytes of memory at 0x{profile.Memory.Base:X}, " +
                $"{profile.Smmus.Count} SMMU(s), {profile.Devices.Count} device(s)");
            foreach (SmmuProfile s in profile.Smmus)
            {
                var hardware = new SmmuV3(Memory, s.Features, s.Name);
                Bus.Map(s.MmioBase, hardware, s.Name);
                var driver = new ArmSmmuDevice(this, s, hardware);
                if (s.Cmdqv is { } cmdqv) driver.Implementation = new Tegra241CmdqvHostDriver(driver, cmdqv);
                _smmus.Add(driver);
            }
            foreach (PciDeviceProfile d in profile.Devices)
            {
                ArmSmmuDevice smmu = _smmus.First(s => s.Name == d.Smmu);
                var endpoint = new PciEndpoint(d.Name, d.Address.RequesterId, d.StreamId, smmu.Hardware, Memory, d.AtsCapable);
                var device = new HostPciDevice(d, endpoint);
                device.Master = smmu.AddMaster(device);
                _devices.Add(d.Name, device);
                _devicesByAddress.Add(d.Address, device);
                _devicesByAddressText.Add(d.Address.ToString(), device);
            }
        }
    }

    /// <summary>A host built from the default embedded profile (<see cref="HostProfile.DefaultName"/>, a Grace-class server).</summary>
    public static EmulatedHost CreateDefault(EmulatedHostOptions? options = null) =>
        new(HostProfile.LoadEmbedded(HostProfile.DefaultName), options);

    /// <summary>A host built from an embedded profile (<see cref="HostProfile.EmbeddedNames"/>).</summary>
    public static EmulatedHost FromEmbedded(string profileName, EmulatedHostOptions? options = null) =>
        new(HostProfile.LoadEmbedded(profileName), options);

    public HostProfile Profile { get; }
    public EmulatedHostOptions Options { get; }

    /// <summary>The VMM's address space as the kernel sees it: what user pointers in raw <see cref="EmulatedIommufd.Ioctl"/> arguments name.</summary>
    public UserAddressSpace UserMemory { get; }

    /// <summary>Counters, TLBs, stream tables, host memory, DMA: everything tests and end-to-end runs inspect.</summary>
    public EmulatedHostDiagnostics Diagnostics { get; }

    /// <summary>Opens /dev/iommu: a new, empty iommufd context.</summary>
    public EmulatedIommufd Open()
    {
        lock (KernelLock)
        {
            var ctx = new EmulatedIommufd(this, _nextContextId++);
            _contexts.Add(ctx);
            return ctx;
        }
    }

    /// <summary>
    /// DMA by a host device through its SMMU: see <see cref="EmulatedHostDiagnostics.Dma"/>.
    /// </summary>
    public DmaResult Dma(string device, ulong iova, AccessKind access, Span<byte> data, uint? pasid = null) =>
        Diagnostics.Dma(device, iova, access, data, pasid);

    // ------------------------------------------------------------------ kernel internals

    /// <summary>The big kernel lock: every kernel entry point (ioctl, VFIO, DMA, fd reads) takes it.</summary>
    internal Lock KernelLock { get; } = new();
    internal SparseMemory Memory { get; }
    internal HostMemoryAllocator Allocator { get; }
    internal UserCopy Copy { get; }
    internal MmioBus Bus { get; }
    internal IReadOnlyList<ArmSmmuDevice> SmmuDevices => _smmus;
    /// <summary>The ASIDs of stage-1 paging domains, shared by every SMMU (arm_smmu_asid_xa is global in arm-smmu-v3.c).</summary>
    internal TagAllocator Asids { get; } = new();
    internal IEnumerable<HostPciDevice> Devices => _devices.Values;
    internal IReadOnlyList<string> LogLines => [.. _log];

    /// <summary>The device named <paramref name="nameOrAddress"/> (profile name or PCI address), or null.</summary>
    internal HostPciDevice? FindDevice(string nameOrAddress)
    {
        if (_devices.TryGetValue(nameOrAddress, out HostPciDevice? byName)) return byName;
        if (_devicesByAddressText.TryGetValue(nameOrAddress, out HostPciDevice? byText)) return byText;
        if (!PciAddress.TryParse(nameOrAddress, out PciAddress address)) return null;
        return _devicesByAddress.GetValueOrDefault(address);
    }

    internal ArmSmmuDevice? FindSmmu(string name) => _smmus.FirstOrDefault(s => s.Name == name);

    internal int AllocFd() => _nextFd++;

    internal void ContextClosed(EmulatedIommufd context) => _contexts.Remove(context);

    /// <summary>Appends to the kernel log (dmesg).</summary>
    /// <summary>Lines ever logged (the log itself keeps only the newest).</summary>
    internal long LogLinesWritten { get; private set; }

    internal void Log(string line)
    {
        LogLinesWritten++;
        _log.Enqueue(line);
        while (_log.Count > Options.KernelLogCapacity) _log.Dequeue();
    }
}
