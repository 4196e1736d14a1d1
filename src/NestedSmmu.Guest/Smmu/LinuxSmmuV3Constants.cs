namespace NestedSmmu.Guest.Smmu;

/// <summary>
/// Constants of Linux's arm-smmu-v3 driver that are its own choices, not architected fields
/// (those come from the Hardware model's field table: SmmuV3.CR1_*, STRTAB_BASE_CFG_*, Q_BASE_* ...).
/// </summary>
internal static class LinuxSmmuV3Constants
{
    /// <summary>Linux's STRTAB_SPLIT: 256 STEs (16 KiB) per level-2 table.</summary>
    public const int STRTAB_SPLIT = 8;

    /// <summary>Linux's CMDQ_BATCH_ENTRIES: commands gathered before a batch is published.</summary>
    public const int CMDQ_BATCH_ENTRIES = 64;
}
