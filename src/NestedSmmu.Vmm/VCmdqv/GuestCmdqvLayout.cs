using NestedSmmu.Hardware.Cmdqv;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Vmm.VCmdqv;

/// <summary>The five 64 KiB pages of the guest-visible CMDQV region, as QEMU's tegra241-cmdqv.h lays them out.</summary>
public enum CmdqvPage
{
    /// <summary>0x00000: CONFIG, PARAM, STATUS, error maps, CMDQ_ALLOC_MAP, VINTF0 block. Always trapped.</summary>
    Config,
    /// <summary>0x10000: the direct VCMDQ aperture, page 0 (CONS, PROD, CONFIG, STATUS, GERROR, GERRORN). Trapped.</summary>
    VcmdqPage0,
    /// <summary>0x20000: the direct VCMDQ aperture, page 1 (BASE, CONS_INDX_BASE_DRAM). Trapped.</summary>
    VcmdqPage1,
    /// <summary>0x30000: VINTF0 page 0, an alias of the VCMDQ page 0 registers; the host VINTF page overlays it once the VINTF is enabled.</summary>
    VintfPage0,
    /// <summary>0x40000: VINTF0 page 1, an alias of the VCMDQ page 1 registers. Trapped.</summary>
    VintfPage1,
}

/// <summary>
/// Geometry and reset values of the CMDQV QEMU shows a guest (hw/arm/tegra241-cmdqv.h): one
/// VINTF, two VCMDQs, sixteen SID slots, PARAM.VER 1. Register offsets and fields are the
/// hardware's (<see cref="Tegra241CmdqvLayout"/>, <see cref="Tegra241Cmdqv"/>); only what the
/// guest's smaller instance fixes is declared here.
/// </summary>
public static class GuestCmdqvLayout
{
    /// <summary>Every page is 64 KiB.</summary>
    public const ulong PageSize = L.PageSize;
    /// <summary>Pages in the region (<see cref="CmdqvPage"/>).</summary>
    public const int Pages = (int)CmdqvPage.VintfPage1 + 1;
    /// <summary>TEGRA241_CMDQV_IO_LEN: the region QEMU registers as MMIO region #1 of the SMMU (0x50000).</summary>
    public const ulong Size = PageSize * Pages;

    /// <summary>CMDQV_VER: the version QEMU shows and requires of the host.</summary>
    public const int Version = 1;
    /// <summary>CMDQV_NUM_CMDQ_LOG2: two VCMDQs.</summary>
    public const int NumVcmdqLog2 = 1;
    /// <summary>One VINTF (NUM_VI_LOG2 = 0).</summary>
    public const int NumVintfLog2 = 0;
    /// <summary>CMDQV_NUM_SID_PER_VI_LOG2: sixteen SID_MATCH/SID_REPLACE slots.</summary>
    public const int NumSidPerViLog2 = 4;
    public const int NumVcmdqs = 1 << NumVcmdqLog2;
    public const int NumSids = 1 << NumSidPerViLog2;
    /// <summary>The only VINTF the guest sees.</summary>
    public const int Vintf0 = 0;

    /// <summary>CONFIG after reset (QEMU's V_CONFIG_RESET): enabled, PER_CMD_OFFSET 1, MAX_CLK_BATCH 8, MAX_CMD_BATCH 32.</summary>
    public const uint ConfigReset = Tegra241Cmdqv.CONFIG_ResetValue;
    /// <summary>STATUS after reset: CMDQV_ENABLED, following CONFIG.CMDQV_EN.</summary>
    public const uint StatusReset = Tegra241Cmdqv.CMDQV_ENABLED;

    /// <summary>PARAM (read-only): VER 1, NUM_CMDQ_LOG2 1, NUM_VI_LOG2 0, NUM_SID_PER_VI_LOG2 4 = 0x4011.</summary>
    public static readonly uint Param = (uint)(Tegra241Cmdqv.CMDQV_VER.Encode(Version)
        | Tegra241Cmdqv.CMDQV_NUM_VCMDQ_LOG2.Encode(NumVcmdqLog2)
        | Tegra241Cmdqv.CMDQV_NUM_VINTF_LOG2.Encode(NumVintfLog2)
        | Tegra241Cmdqv.CMDQV_NUM_SID_PER_VM_LOG2.Encode(NumSidPerViLog2));

    /// <summary>VI_ERR_MAP_0/1 and VI_INT_MASK_0/1: 64 bits as two words.</summary>
    public const int ViMapWords = 2;
    /// <summary>CMDQ_ERR_MAP_0..3 and VINTF0 LVCMDQ_ERR_MAP_0..3: 128 bits as four words.</summary>
    public const int ErrMapWords = L.CmdqErrMapWords;
    /// <summary>The VINTF0 bit of VI_ERR_MAP_0 and VI_INT_MASK_0.</summary>
    public const uint Vintf0Bit = 1u << Vintf0;

    /// <summary>Where <paramref name="page"/> starts in the region.</summary>
    public static ulong PageBase(CmdqvPage page) => PageSize * (ulong)page;

    /// <summary>Offset of a page 0 register of VCMDQ <paramref name="queue"/> inside a page 0 (direct or VINTF).</summary>
    public static ulong Page0Offset(int queue, VcmdqPage0Register register) => L.VcmdqStride * (ulong)queue + (ulong)register;

    /// <summary>Offset of a page 1 register of VCMDQ <paramref name="queue"/> inside a page 1 (direct or VINTF).</summary>
    public static ulong Page1Offset(int queue, VcmdqPage1Register register) => L.VcmdqStride * (ulong)queue + (ulong)register;

    /// <summary>Region offset of a register in <paramref name="page"/> of VCMDQ <paramref name="queue"/>.</summary>
    public static ulong Offset(CmdqvPage page, int queue, VcmdqPage0Register register) => PageBase(page) + Page0Offset(queue, register);

    /// <summary>Region offset of a register in <paramref name="page"/> of VCMDQ <paramref name="queue"/>.</summary>
    public static ulong Offset(CmdqvPage page, int queue, VcmdqPage1Register register) => PageBase(page) + Page1Offset(queue, register);

    /// <summary>VINTF0_CONFIG (0x1000).</summary>
    public static ulong Vintf0Config => L.Vintf(Vintf0, VintfRegister.CONFIG);
    /// <summary>VINTF0_STATUS (0x1004).</summary>
    public static ulong Vintf0Status => L.Vintf(Vintf0, VintfRegister.STATUS);
    /// <summary>VINTF0_LVCMDQ_ERR_MAP_<paramref name="word"/> (0x10C0 + 4 word).</summary>
    public static ulong LvcmdqErrMap(int word) => L.Vintf(Vintf0, VintfRegister.LVCMDQ_ERR_MAP_64) + sizeof(uint) * (ulong)word;
    /// <summary>VI_ERR_MAP_<paramref name="word"/> (0x14 + 4 word).</summary>
    public static ulong ViErrMap(int word) => (ulong)CmdqvRegister.VINTF_ERR_MAP + sizeof(uint) * (ulong)word;
    /// <summary>VI_INT_MASK_<paramref name="word"/> (0x1C + 4 word).</summary>
    public static ulong ViIntMask(int word) => (ulong)CmdqvRegister.VINTF_INT_MASK + sizeof(uint) * (ulong)word;
}
