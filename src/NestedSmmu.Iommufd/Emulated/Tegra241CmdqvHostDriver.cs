using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// The emulated kernel's tegra241-cmdqv driver for one CMDQV (linux.md §5), plugged into the
/// SMMU driver through <see cref="SmmuImplementation"/>. Today it answers IOMMU_GET_HW_INFO of
/// type TEGRA241_CMDQV from the synthesis parameters in the profile (the values PARAM reports).
/// </summary>
/// <remarks>
/// The VINTF/VCMDQ half waits for the hardware model (Hardware/Cmdqv, written separately). When
/// it lands, this class creates the Tegra241Cmdqv device on the host MMIO bus at
/// <see cref="CmdqvProfile.MmioBase"/>, resets it as the host driver does (VINTF0 the host's),
/// and overrides <see cref="SmmuImplementation.SupportsViommuType"/> (TEGRA241_CMDQV) and
/// <see cref="SmmuImplementation.InitViommu"/> with an <see cref="ArmVsmmu"/> subclass that
/// allocates a VINTF (ENOSPC when none is free; EINVAL without the 16-byte driver data),
/// exports its page 0 through <see cref="EmulatedIommufd.AllocMmap"/>, claims SID slots in
/// <see cref="ViommuDriver.VdeviceInit"/>, maps VCMDQs in <see cref="ViommuDriver.HwQueueInitPhys"/>
/// (type TEGRA241_CMDQV, from <see cref="ViommuDriver.GetHwQueueSize"/>) and reports
/// LVCMDQ_ERR_MAP as TEGRA241_CMDQV vEVENTs. Until then those calls give EOPNOTSUPP, as a
/// kernel without the CMDQV driver would.
/// </remarks>
internal sealed class Tegra241CmdqvHostDriver(ArmSmmuDevice smmu, CmdqvProfile profile) : SmmuImplementation(smmu)
{
    /// <summary>Config page (64 KiB) and the global VCMDQ pages 0 and 1: VINTF pages start at 192 KiB.</summary>
    private const ulong VintfPagesOffset = 0x30000;
    /// <summary>Each VINTF has two logical 64 KiB pages.</summary>
    private const ulong VintfPagesSize = 0x20000;

    public CmdqvProfile Profile { get; } = profile;

    /// <summary>Bytes of a CMDQV register frame with the profile's VINTF count.</summary>
    public static ulong FrameSize(CmdqvProfile profile) => VintfPagesOffset + (ulong)profile.Vintfs * VintfPagesSize;

    /// <summary>
    /// tegra241_cmdqv_hw_info: version = PARAM.VER, log2vcmdqs = log2 of the logical queues per
    /// VINTF, log2vsids = log2 of the SID slots per VINTF. EOPNOTSUPP for any other type.
    /// </summary>
    public override Errno GetHwInfo(HwInfoType type, out byte[] data)
    {
        data = [];
        if (type != HwInfoType.Tegra241Cmdqv) return Errno.EOPNOTSUPP;
        data = new Tegra241CmdqvHwInfo(0, (byte)Profile.Version,
            (byte)(Profile.NumVcmdqLog2 - Profile.NumVintfLog2), (byte)Profile.NumSidPerVmLog2).ToBytes();
        return Errno.None;
    }
}
