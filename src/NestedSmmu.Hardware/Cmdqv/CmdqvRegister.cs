namespace NestedSmmu.Hardware.Cmdqv;

/// <summary>
/// Registers of the Tegra241 CMDQV config page (frame offset 0, 64 KiB), named as Linux's
/// tegra241-cmdqv.c names them. Indexed registers are the base of an array: CMDQ_ERR_MAP(m) is
/// <see cref="CMDQ_ERR_MAP"/> + 4m, CMDQ_ALLOC(q) is <see cref="CMDQ_ALLOC"/> + 4q, VINTF(v) is
/// <see cref="VINTF"/> + 0x100 v; <see cref="Tegra241CmdqvLayout"/> computes them.
/// </summary>
public enum CmdqvRegister : uint
{
    CONFIG = 0x000,
    /// <summary>Read-only: VER, NUM_VCMDQ_LOG2, NUM_VINTF_LOG2, NUM_SID_PER_VM_LOG2.</summary>
    PARAM = 0x004,
    STATUS = 0x008,
    /// <summary>64 bits as two 32-bit words (not 8-byte aligned): bit v = VINTF v has a queue in error. Read-only.</summary>
    VINTF_ERR_MAP = 0x014,
    VINTF_ERR_MAP_H = VINTF_ERR_MAP + 4,
    /// <summary>64 bits as two 32-bit words: bit v set = errors of VINTF v raise no interrupt.</summary>
    VINTF_INT_MASK = 0x01C,
    VINTF_INT_MASK_H = VINTF_INT_MASK + 4,
    /// <summary>CMDQ_ERR_MAP(m), m = 0..3: bit q % 32 of word q / 32 = global VCMDQ q is in error. Read-only.</summary>
    CMDQ_ERR_MAP = 0x024,
    /// <summary>CMDQ_ALLOC(q): which VINTF and logical index global VCMDQ q serves.</summary>
    CMDQ_ALLOC = 0x200,
    /// <summary>VINTF(v): the register block of VINTF v (<see cref="VintfRegister"/>).</summary>
    VINTF = 0x1000,
}

/// <summary>Registers inside one VINTF(v) block of the config page.</summary>
public enum VintfRegister : uint
{
    /// <summary>EN [0], VMID [16:1], HYP_OWN [17].</summary>
    CONFIG = 0x00,
    /// <summary>ENABLED [0], STATUS [3:1], NUM_LVCMDQ [23:16]. Read-only.</summary>
    STATUS = 0x04,
    /// <summary>SID_MATCH(s) = 0x40 + 4s: ENABLE [0], VIRT_SID [20:1].</summary>
    SID_MATCH = 0x40,
    /// <summary>SID_REPLACE(s) = 0x80 + 4s: PHYS_SID [19:0].</summary>
    SID_REPLACE = 0x80,
    /// <summary>LVCMDQ_ERR_MAP_64(m) = 0xC0 + 8m, m = 0..1: bit l = logical VCMDQ l of this VINTF is in error. Read-only.</summary>
    LVCMDQ_ERR_MAP_64 = 0xC0,
}

/// <summary>Registers of one VCMDQ in a page 0 (global at 64K + 0x80 q, or a VINTF's logical page 0).</summary>
public enum VcmdqPage0Register : uint
{
    /// <summary>RD [19:0] (index and wrap), ERR [30:24].</summary>
    CONS = 0x00,
    /// <summary>WR [19:0] (index and wrap). Writing it makes the hardware consume commands.</summary>
    PROD = 0x04,
    /// <summary>EN [0].</summary>
    CONFIG = 0x08,
    /// <summary>ENABLED [0]. Read-only.</summary>
    STATUS = 0x0C,
    /// <summary>CMDQ_ERR [0], CONS_DRAM_WR_ABT_ERR [1], CMDQ_INIT_ERR [2]: active while they differ from GERRORN. Read-only.</summary>
    GERROR = 0x10,
    /// <summary>Software acknowledges an error by writing GERROR's value here.</summary>
    GERRORN = 0x14,
}

/// <summary>Registers of one VCMDQ in a page 1 (global at 128K + 0x80 q, or a VINTF's logical page 1).</summary>
public enum VcmdqPage1Register : uint
{
    /// <summary>64 bits: ADDR [47:5], LOG2SIZE [4:0] (QEMU calls the halves BASE_L and BASE_H).</summary>
    BASE = 0x00,
    BASE_H = BASE + 4,
    /// <summary>64 bits: where the hardware may mirror CONS in DRAM (QEMU: CONS_INDX_BASE_DRAM_L/H).</summary>
    CONS_INDX_BASE = 0x08,
    CONS_INDX_BASE_H = CONS_INDX_BASE + 4,
}

/// <summary>
/// Where everything sits in the CMDQV MMIO frame. Offsets chain from each other so the layout
/// cannot drift: config page, global VCMDQ page 0, global VCMDQ page 1, then two 64 KiB pages
/// (logical page 0 and 1) per VINTF.
/// </summary>
public static class Tegra241CmdqvLayout
{
    public const ulong PageSize = 0x10000;
    public const ulong ConfigPageBase = 0;
    public const ulong VcmdqPage0Base = ConfigPageBase + PageSize;
    public const ulong VcmdqPage1Base = VcmdqPage0Base + PageSize;
    /// <summary>First VINTF logical page (0x30000).</summary>
    public const ulong VintfPageBase = VcmdqPage1Base + PageSize;
    /// <summary>Each VINTF has a logical page 0 and, 64 KiB above it, a logical page 1.</summary>
    public const ulong VintfPagesStride = 2 * PageSize;

    /// <summary>Bytes per VCMDQ in a page 0 or page 1.</summary>
    public const ulong VcmdqStride = 0x80;
    /// <summary>Bytes per VINTF(v) block in the config page.</summary>
    public const ulong VintfStride = 0x100;
    public const ulong CmdqAllocStride = 4;
    public const ulong CmdqErrMapStride = 4;
    public const ulong SidSlotStride = 4;
    public const ulong LvcmdqErrMapStride = 8;

    /// <summary>CMDQ_ERR_MAP(0..3): 128 bits, so at most 2^7 VCMDQs.</summary>
    public const int CmdqErrMapWords = 4;
    /// <summary>LVCMDQ_ERR_MAP_64(0..1): 128 logical queues per VINTF at most.</summary>
    public const int LvcmdqErrMapWords = 2;
    /// <summary>VINTF_ERR_MAP is 64 bits and CMDQ_ALLOC.VINTF 6 bits: at most 2^6 VINTFs.</summary>
    public const int MaxVintfLog2 = 6;
    public const int MaxVcmdqLog2 = 7;
    /// <summary>SID_MATCH(s) occupies 0x40..0x7C below SID_REPLACE at 0x80: at most 2^4 slots.</summary>
    public const int MaxSidPerVmLog2 = 4;

    /// <summary>Frame size for 2^<paramref name="numVintfLog2"/> VINTFs: every VINTF's two logical pages included.</summary>
    public static ulong FrameSize(int numVintfLog2) => VintfPageBase + (VintfPagesStride << numVintfLog2);

    public static ulong CmdqErrMap(int m) => (ulong)CmdqvRegister.CMDQ_ERR_MAP + CmdqErrMapStride * (ulong)m;
    public static ulong CmdqAlloc(int q) => (ulong)CmdqvRegister.CMDQ_ALLOC + CmdqAllocStride * (ulong)q;
    public static ulong Vintf(int v) => (ulong)CmdqvRegister.VINTF + VintfStride * (ulong)v;
    public static ulong Vintf(int v, VintfRegister register) => Vintf(v) + (ulong)register;
    public static ulong SidMatch(int v, int s) => Vintf(v, VintfRegister.SID_MATCH) + SidSlotStride * (ulong)s;
    public static ulong SidReplace(int v, int s) => Vintf(v, VintfRegister.SID_REPLACE) + SidSlotStride * (ulong)s;
    public static ulong LvcmdqErrMap64(int v, int m) => Vintf(v, VintfRegister.LVCMDQ_ERR_MAP_64) + LvcmdqErrMapStride * (ulong)m;

    /// <summary>A register of global VCMDQ <paramref name="q"/> in the global page 0.</summary>
    public static ulong Vcmdq(int q, VcmdqPage0Register register) => VcmdqPage0Base + VcmdqStride * (ulong)q + (ulong)register;
    /// <summary>A register of global VCMDQ <paramref name="q"/> in the global page 1.</summary>
    public static ulong Vcmdq(int q, VcmdqPage1Register register) => VcmdqPage1Base + VcmdqStride * (ulong)q + (ulong)register;

    public static ulong VintfPage0(int v) => VintfPageBase + VintfPagesStride * (ulong)v;
    public static ulong VintfPage1(int v) => VintfPage0(v) + PageSize;
    /// <summary>A register of logical VCMDQ <paramref name="l"/> of VINTF <paramref name="v"/> in its logical page 0 (the page a guest gets mapped).</summary>
    public static ulong Lvcmdq(int v, int l, VcmdqPage0Register register) => VintfPage0(v) + VcmdqStride * (ulong)l + (ulong)register;
    /// <summary>A register of logical VCMDQ <paramref name="l"/> of VINTF <paramref name="v"/> in its logical page 1.</summary>
    public static ulong Lvcmdq(int v, int l, VcmdqPage1Register register) => VintfPage1(v) + VcmdqStride * (ulong)l + (ulong)register;
}
