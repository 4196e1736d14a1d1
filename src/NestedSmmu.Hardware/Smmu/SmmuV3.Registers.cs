namespace NestedSmmu.Hardware.Smmu;

public sealed partial class SmmuV3
{
    // Register fields (IHI 0070 6.3): single bits as constants, multi-bit fields as RegisterFields,
    // public so that drivers (the emulated host's arm-smmu-v3) program with the same declarations.
    // CR0 (6.3.9)
    public const uint CR0_SMMUEN = 1u << 0, CR0_PRIQEN = 1u << 1, CR0_EVENTQEN = 1u << 2, CR0_CMDQEN = 1u << 3, CR0_ATSCHK = 1u << 4;
    public static readonly RegisterField CR0_VMW = new(8, 6);
    // CR1 (6.3.10): cacheability and shareability of queue and table accesses.
    public static readonly RegisterField CR1_QUEUE_IC = new(1, 0), CR1_QUEUE_OC = new(3, 2), CR1_QUEUE_SH = new(5, 4),
        CR1_TABLE_IC = new(7, 6), CR1_TABLE_OC = new(9, 8), CR1_TABLE_SH = new(11, 10);
    /// <summary>CR1 cacheability 0b01: write-back cacheable; shareability 0b11: inner shareable.</summary>
    public const uint CR1_CACHE_WB = 1, CR1_SH_ISH = 3;
    // CR2 (6.3.12): E2H [0], RECINVSID [1], PTM [2]
    public const uint CR2_E2H = 1u << 0, CR2_RECINVSID = 1u << 1, CR2_PTM = 1u << 2;
    public static readonly uint CR0_WritableMask = CR0_SMMUEN | CR0_PRIQEN | CR0_EVENTQEN | CR0_CMDQEN | CR0_ATSCHK | (uint)CR0_VMW.Mask;
    // GBPA (6.3.14): ABORT [20], UPDATE [31]; reset SHCFG = 0b01 (use incoming).
    public const uint GBPA_ABORT = 1u << 20, GBPA_UPDATE = 1u << 31;
    public const uint GbpaResetValue = 1u << 12;
    public const uint GBPA_WritableMask = 0x0FFF_FFFFu & ~(1u << 31) | GBPA_ABORT;
    // IRQ_CTRL (6.3.16)
    public const uint IRQ_CTRL_GERROR_IRQEN = 1u << 0, IRQ_CTRL_PRIQ_IRQEN = 1u << 1, IRQ_CTRL_EVENTQ_IRQEN = 1u << 2;
    // GERROR (6.3.18)
    public const uint GERROR_CMDQ_ERR = 1u << 0, GERROR_EVENTQ_ABT_ERR = 1u << 2, GERROR_PRIQ_ABT_ERR = 1u << 3,
        GERROR_MSI_CMDQ_ABT_ERR = 1u << 4, GERROR_MSI_EVENTQ_ABT_ERR = 1u << 5, GERROR_MSI_PRIQ_ABT_ERR = 1u << 6,
        GERROR_MSI_GERROR_ABT_ERR = 1u << 7, GERROR_SFM_ERR = 1u << 8;
    public const uint GERROR_Mask = 0x1FD;
    // *_IRQ_CFG0 (6.3.19): ADDR [51:2]
    public static readonly RegisterField IRQ_CFG0_ADDR = new(51, 2);
    // STRTAB_BASE (6.3.23): RA [62], ADDR [51:6]
    public const ulong STRTAB_BASE_RA = 1UL << 62;
    public static readonly RegisterField STRTAB_BASE_ADDR = new(51, 6);
    // STRTAB_BASE_CFG (6.3.24): LOG2SIZE [5:0], SPLIT [10:6], FMT [17:16]
    public static readonly RegisterField STRTAB_BASE_CFG_LOG2SIZE = new(5, 0), STRTAB_BASE_CFG_SPLIT = new(10, 6), STRTAB_BASE_CFG_FMT = new(17, 16);
    public const uint STRTAB_FMT_LINEAR = 0, STRTAB_FMT_2LEVEL = 1;
    // Queue BASE registers (6.3.25, 6.3.27, 6.3.29): RA [62], ADDR [51:5], LOG2SIZE [4:0]
    public const ulong Q_BASE_RA = 1UL << 62;
    public static readonly RegisterField Q_BASE_ADDR = new(51, 5), Q_BASE_LOG2SIZE = new(4, 0);
    // Queue pointers: CMDQ_CONS.ERR [30:24]; EVENTQ_PROD.OVFLG and EVENTQ_CONS.OVACKFLG [31].
    public static readonly RegisterField CMDQ_CONS_ERR = new(30, 24);
    public const uint Q_OVFLG = 1u << 31;

    // The programming interface (registers, queue pointers, GERROR, interrupts) is the shared
    // SmmuRegisterFile; this model adds what its writes do (ISmmuRegisterEffects below).
    private readonly SmmuRegisterFile _regs;

    public bool Enabled => _regs.Enabled;
    public bool CommandQueueEnabled => _regs.CommandQueueEnabled;
    public bool EventQueueEnabled => _regs.EventQueueEnabled;
    public uint GlobalErrors => _regs.GlobalErrors;
    public CommandError CommandQueueError => _regs.CommandQueueError;

    /// <summary>Reads a register. Undefined offsets read as zero; reads have no side effects.</summary>
    public ulong Read(ulong offset, int width) => _regs.Read(offset, width);

    /// <summary>Writes a register. Writes to read-only or undefined offsets are ignored; never throws.</summary>
    public void Write(ulong offset, int width, ulong value) => _regs.Write(offset, width, value);

    /// <summary>Convenience for drivers and tests: a register write by name.</summary>
    public void WriteRegister(SmmuRegister register, ulong value) =>
        Write((ulong)register, SmmuRegisters.Is64Bit(register) ? 8 : 4, value);

    public ulong ReadRegister(SmmuRegister register) =>
        Read((ulong)register, SmmuRegisters.Is64Bit(register) ? 8 : 4);

    private sealed class RegisterEffects(SmmuV3 smmu) : ISmmuRegisterEffects
    {
        public void ControlChanged(uint oldCr0, uint newCr0)
        {
            // Enabling or disabling the SMMU changes what every cached structure means.
            if (((oldCr0 ^ newCr0) & CR0_SMMUEN) != 0) smmu.InvalidateAllConfig();
        }

        public void GlobalBypassChanged() { }

        public void CommandsPending() => smmu.ConsumeCommands();

        public void Signal(SmmuInterrupt source, ulong msiAddress, uint msiData) => smmu.Raise(source, msiAddress, msiData);
    }

    private void SetGlobalError(uint bit) => _regs.SetGlobalError(bit);
}
