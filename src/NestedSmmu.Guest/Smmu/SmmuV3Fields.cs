namespace NestedSmmu.Guest.Smmu;

/// <summary>
/// SMMUv3 register fields a driver programs that the Hardware model keeps private (IHI 0070 6.3).
/// Everything the model publishes (CR0_*, CR2_*, GBPA_*, GERROR_*, STRTAB_FMT_*) is used from there.
/// </summary>
internal static class SmmuV3Fields
{
    // CR1 (6.3.10): QUEUE_IC [1:0], QUEUE_OC [3:2], QUEUE_SH [5:4], TABLE_IC [7:6], TABLE_OC [9:8], TABLE_SH [11:10].
    public const int CR1_QUEUE_IC = 0, CR1_QUEUE_OC = 2, CR1_QUEUE_SH = 4, CR1_TABLE_IC = 6, CR1_TABLE_OC = 8, CR1_TABLE_SH = 10;
    /// <summary>Cacheability "write-back" and shareability "inner" encodings (6.3.10), as Linux's arm_smmu_device_reset uses.</summary>
    public const uint CR1_CACHE_WB = 1, CR1_SH_ISH = 3;

    // STRTAB_BASE (6.3.23): RA [62], ADDR [51:6].
    public const ulong STRTAB_BASE_RA = 1UL << 62;
    public const ulong STRTAB_BASE_ADDR_MASK = 0x000F_FFFF_FFFF_FFC0;
    // STRTAB_BASE_CFG (6.3.24): LOG2SIZE [5:0], SPLIT [10:6], FMT [17:16].
    public const int STRTAB_BASE_CFG_LOG2SIZE_LO = 0, STRTAB_BASE_CFG_SPLIT_LO = 6, STRTAB_BASE_CFG_FMT_LO = 16;
    /// <summary>Linux's STRTAB_SPLIT: 256 STEs (16 KiB) per level-2 table.</summary>
    public const int STRTAB_SPLIT = 8;

    // CMDQ_BASE / EVENTQ_BASE (6.3.25, 6.3.28): RA [62], ADDR [51:5], LOG2SIZE [4:0].
    public const ulong Q_BASE_RWA = 1UL << 62;
    public const ulong Q_BASE_ADDR_MASK = 0x000F_FFFF_FFFF_FFE0;
    public const ulong Q_BASE_LOG2SIZE_MASK = 0x1F;
    // CMDQ_CONS.ERR [30:24] (6.3.27); EVENTQ_PROD.OVFLG / EVENTQ_CONS.OVACKFLG [31] (6.3.29-30).
    public const int CMDQ_CONS_ERR_HI = 30, CMDQ_CONS_ERR_LO = 24;
    public const uint Q_OVERFLOW_FLAG = 1u << 31;
    /// <summary>Queue pointers (index and wrap) sit in [19:0] at most (LOG2SIZE up to 19).</summary>
    public const uint Q_POINTER_MASK = 0xF_FFFF;

    /// <summary>Linux's CMDQ_BATCH_ENTRIES: commands gathered before a batch is published.</summary>
    public const int CMDQ_BATCH_ENTRIES = 64;
}
