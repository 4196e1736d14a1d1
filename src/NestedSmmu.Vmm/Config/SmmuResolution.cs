using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Uapi;
using NestedSmmu.Vmm.VCmdqv;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Vmm.Config;

/// <summary>Where a resolved vSMMU property came from.</summary>
public enum PropertySource
{
    /// <summary>Given on the command line (on/off or a number).</summary>
    Given,
    /// <summary><c>auto</c> with accel=off: QEMU's model default.</summary>
    ModelDefault,
    /// <summary><c>auto</c> with accel=on: copied from the host SMMU's GET_HW_INFO.</summary>
    Host,
}

/// <summary>
/// The properties one vSMMU ends up with: <c>auto</c> resolved (from the host for accel=on, to
/// the model's defaults for accel=off, qemu.md §2 "IDRs"), and the physical SMMU it is bound to.
/// </summary>
/// <param name="Accel">accel=on.</param>
/// <param name="Stage">The translation stage(s) the vSMMU offers.</param>
/// <param name="Ats">IDR0.ATS.</param>
/// <param name="Ril">IDR3.RIL.</param>
/// <param name="SsidSize">IDR1.SSIDSIZE.</param>
/// <param name="OasBits">IDR5.OAS as bits.</param>
/// <param name="Cmdqv">A Tegra241 CMDQV is shown beside it.</param>
/// <param name="PhysicalSmmu">The host SMMU it is bound to (accel=on), or null.</param>
/// <param name="Sources">Where ats, ril, ssidsize, oas and cmdqv came from (keys are the property names).</param>
public sealed record ResolvedSmmuProperties(
    bool Accel, SmmuStage Stage, bool Ats, bool Ril, int SsidSize, int OasBits, bool Cmdqv, string? PhysicalSmmu,
    IReadOnlyDictionary<string, PropertySource> Sources)
{
    /// <summary>What the guest-visible vSMMU is built from (VSmmu/VSmmuProperties), with the device's IORT identifier.</summary>
    public VSmmuProperties ToVSmmuProperties(byte identifier) => new(
        Accel,
        Stage switch { SmmuStage.Stage2 => VSmmuStage.Stage2, SmmuStage.Nested => VSmmuStage.Nested, _ => VSmmuStage.Stage1 },
        Ats, Ril, SsidSize, OasBits, Cmdqv, identifier);
}

/// <summary>
/// <c>auto</c> resolution and the host-compatibility checks of QEMU's accelerated SMMUv3
/// (hw/arm/smmuv3-accel.c: smmuv3_accel_check_hw_compatible and the auto helpers), as pure
/// functions of the device's properties and the host's GET_HW_INFO data, with QEMU's messages.
/// Validation calls them before anything is built; the vSMMU calls them again at runtime.
/// </summary>
public static class SmmuResolution
{
    /// <summary>QEMU's SMMU_IDR0 for a stage-1 vSMMU (qemu.md §3): ST_LEVEL 1, TTENDIAN 2, TTF 2, ...</summary>
    public const uint QemuIdr0 = 0x0D44101A;
    /// <summary>QEMU's SMMU_IDR1 (SIDSIZE 16).</summary>
    public const uint QemuIdr1 = 0x02730010;
    /// <summary>QEMU's SMMU_IDR3 (RIL).</summary>
    public const uint QemuIdr3 = 0x1404;
    /// <summary>QEMU's SMMU_IDR5 (OAS 44 bits, GRAN4K, GRAN16K, GRAN64K).</summary>
    public const uint QemuIdr5 = 0x74;

    /// <summary>The OAS values QEMU's model implements besides auto (smmuv3_realize); the OasMode enum has more words.</summary>
    public static readonly IReadOnlySet<int> ImplementedOasBits = new HashSet<int> { 44, 48 };

    /// <summary>What <c>auto</c> means with accel=off (qemu.md §2): ril on, ats off, oas 44, ssidsize 0.</summary>
    public const int AccelOffOasBits = 44;

    private static readonly SmmuFeatures QemuFeatures = SmmuFeatures.FromIdrs(QemuIdr0, QemuIdr1, QemuIdr3, QemuIdr5);

    /// <summary>The vSMMU's ST_LEVEL, TTENDIAN, TTF (IDR0 fields) QEMU compares with the host's.</summary>
    private static ArmSmmuV3HwInfo QemuIdrs => new(0, QemuIdr0, QemuIdr1, 0, QemuIdr3, 0, QemuIdr5, 0, 0);

    /// <summary>An accel=off vSMMU's properties: given values, auto as QEMU's model defaults.</summary>
    public static ResolvedSmmuProperties ResolveEmulated(ArmSmmuV3Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        var sources = new Dictionary<string, PropertySource>(StringComparer.Ordinal);
        bool ril = Pick(device.Ril, "ril", true, PropertySource.ModelDefault, sources);
        bool ats = Pick(device.Ats, "ats", false, PropertySource.ModelDefault, sources);
        int oas = PickBits(device.Oas, "oas", AccelOffOasBits, PropertySource.ModelDefault, sources);
        int ssid = PickBits(device.SsidSize, "ssidsize", 0, PropertySource.ModelDefault, sources);
        bool cmdqv = Pick(device.Cmdqv, "cmdqv", false, PropertySource.ModelDefault, sources);
        return new ResolvedSmmuProperties(false, device.StageKind ?? SmmuStage.Stage1, ats, ril, ssid, oas, cmdqv, null, sources);
    }

    /// <summary>
    /// An accel=on vSMMU's properties once its first device is attached: each <c>auto</c> copies
    /// the host SMMU's field (ats IDR0.ATS, ril IDR3.RIL, ssidsize IDR1.SSIDSIZE, oas IDR5.OAS),
    /// and cmdqv=auto means "when the host SMMU has a usable CMDQV".
    /// </summary>
    public static ResolvedSmmuProperties ResolveAccelerated(ArmSmmuV3Device device, HostSmmuInfo host)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(host);
        ArmSmmuV3HwInfo h = host.HwInfo;
        var sources = new Dictionary<string, PropertySource>(StringComparer.Ordinal);
        bool ats = Pick(device.Ats, "ats", h.Features.Ats, PropertySource.Host, sources);
        bool ril = Pick(device.Ril, "ril", h.Ril, PropertySource.Host, sources);
        int ssid = PickBits(device.SsidSize, "ssidsize", (int)h.SsidSize, PropertySource.Host, sources);
        int oas = PickBits(device.Oas, "oas", h.OasBits, PropertySource.Host, sources);
        bool cmdqv = Pick(device.Cmdqv, "cmdqv", host.Cmdqv is { } c && CmdqvProblem(c) is null, PropertySource.Host, sources);
        return new ResolvedSmmuProperties(true, SmmuStage.Stage1, ats, ril, ssid, oas, cmdqv, host.Name, sources);
    }

    /// <summary>
    /// QEMU's host-compatibility checks for a device attached to an accel vSMMU, in QEMU's order
    /// (smmuv3_accel_hw_compatible): the first failure's message verbatim, or null when compatible.
    /// </summary>
    public static string? CheckHostCompatibility(ResolvedSmmuProperties vsmmu, HostSmmuInfo host)
    {
        ArgumentNullException.ThrowIfNull(vsmmu);
        ArgumentNullException.ThrowIfNull(host);
        if (host.HwInfoType != HwInfoType.ArmSmmuV3)
            return $"Wrong data type ({(uint)host.HwInfoType}) for Host SMMUv3 device info";
        ArmSmmuV3HwInfo h = host.HwInfo, q = QemuIdrs;
        if (h.StLevel != q.StLevel)
            return $"Host SMMUv3 Stream Table format mismatch (host STLEVEL={h.StLevel}, QEMU STLEVEL={q.StLevel})";
        if (h.TtEndian > q.TtEndian)
            return "Host SMMUv3 doesn't support Little-endian translation table";
        if (h.Ttf < q.Ttf)
            return "Host SMMUv3 doesn't support AArch64 translation table format";
        if (h.SidSize < q.SidSize)
            return $"Host SMMUv3 SIDSIZE not compatible (host={h.SidSize}, QEMU={q.SidSize})";
        if (h.SsidSize < vsmmu.SsidSize)
            return $"Host SMMUv3 SSIDSIZE not compatible (host={h.SsidSize}, QEMU={vsmmu.SsidSize})";
        if (!h.Ril && vsmmu.Ril)
            return "Host SMMUv3 doesn't support Range Invalidation";
        if (h.OasBits < vsmmu.OasBits)
            return $"Host SMMUv3 supports only {h.OasBits}-bit IPA, but the vSMMU OAS implies {vsmmu.OasBits}-bit IPA";
        if (!h.Features.Ats && vsmmu.Ats)
            return "Host SMMUv3 doesn't support Address Translation Services";
        if (h.Gran4K != QemuFeatures.Gran4K) return "Host SMMUv3 doesn't support 4K translation granule";
        if (h.Gran16K != QemuFeatures.Gran16K) return "Host SMMUv3 doesn't support 16K translation granule";
        if (h.Gran64K != QemuFeatures.Gran64K) return "Host SMMUv3 doesn't support 64K translation granule";
        return null;
    }

    /// <summary>QEMU's Tegra241 CMDQV probe checks (hw/arm/tegra241-cmdqv.c, the vCMDQV's one copy): the first failure's message, or null.</summary>
    public static string? CmdqvProblem(Tegra241CmdqvHwInfo cmdqv) => Tegra241CmdqvProbe.Validate(HwInfoType.Tegra241Cmdqv, cmdqv);

    /// <summary>
    /// Whether a vfio-pci device shows its ATS capability to the guest (its own <c>ats</c>
    /// property; auto: unless the host reports IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED for it).
    /// </summary>
    public static bool DeviceAtsExposed(VfioPciDevice device, HostDeviceInfo host)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(host);
        return device.Ats switch { OnOffAuto.On => true, OnOffAuto.Off => false, _ => !host.AtsNotSupported };
    }

    private static bool Pick(OnOffAuto value, string name, bool auto, PropertySource autoSource, Dictionary<string, PropertySource> sources)
    {
        sources[name] = value == OnOffAuto.Auto ? autoSource : PropertySource.Given;
        return value switch { OnOffAuto.On => true, OnOffAuto.Off => false, _ => auto };
    }

    private static int PickBits(AutoBits value, string name, int auto, PropertySource autoSource, Dictionary<string, PropertySource> sources)
    {
        sources[name] = value.IsAuto ? autoSource : PropertySource.Given;
        return value.Bits ?? auto;
    }
}
