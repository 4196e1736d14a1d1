namespace NestedSmmu.Hardware.Smmu;

/// <summary>
/// SMMUv3 register offsets in the SMMU's MMIO frame (Arm IHI 0070, 6.3 "Register formats").
/// Page 1 (offset 0x10000) aliases the queue pointers that software polls.
/// </summary>
public enum SmmuRegister : uint
{
    IDR0 = 0x00,
    IDR1 = 0x04,
    IDR2 = 0x08,
    IDR3 = 0x0C,
    IDR4 = 0x10,
    IDR5 = 0x14,
    IIDR = 0x18,
    AIDR = 0x1C,
    CR0 = 0x20,
    CR0ACK = 0x24,
    CR1 = 0x28,
    CR2 = 0x2C,
    STATUSR = 0x40,
    GBPA = 0x44,
    AGBPA = 0x48,
    IRQ_CTRL = 0x50,
    IRQ_CTRLACK = 0x54,
    GERROR = 0x60,
    GERRORN = 0x64,
    GERROR_IRQ_CFG0 = 0x68, // 64-bit
    GERROR_IRQ_CFG1 = 0x70,
    GERROR_IRQ_CFG2 = 0x74,
    STRTAB_BASE = 0x80, // 64-bit
    STRTAB_BASE_CFG = 0x88,
    CMDQ_BASE = 0x90, // 64-bit
    CMDQ_PROD = 0x98,
    CMDQ_CONS = 0x9C,
    EVENTQ_BASE = 0xA0, // 64-bit
    EVENTQ_PROD = 0xA8,
    EVENTQ_CONS = 0xAC,
    EVENTQ_IRQ_CFG0 = 0xB0, // 64-bit
    EVENTQ_IRQ_CFG1 = 0xB8,
    EVENTQ_IRQ_CFG2 = 0xBC,
    // The PRI queue's registers are stored and read back (a driver may program them), but no
    // page requests are modelled: the queue never receives an entry and PRIQ_PROD never moves.
    PRIQ_BASE = 0xC0, // 64-bit
    PRIQ_PROD = 0xC8,
    PRIQ_CONS = 0xCC,
    PRIQ_IRQ_CFG0 = 0xD0, // 64-bit
    PRIQ_IRQ_CFG1 = 0xD8,
    PRIQ_IRQ_CFG2 = 0xDC,

    /// <summary>Start of page 1 of the register frame.</summary>
    Page1 = 0x10000,
    EVENTQ_PROD_PAGE1 = Page1 + EVENTQ_PROD,
    EVENTQ_CONS_PAGE1 = Page1 + EVENTQ_CONS,
    PRIQ_PROD_PAGE1 = Page1 + PRIQ_PROD,
    PRIQ_CONS_PAGE1 = Page1 + PRIQ_CONS,
}

/// <summary>Register metadata shared by the MMIO model, the scenario reader and the CLI.</summary>
public static class SmmuRegisters
{
    /// <summary>Size of the SMMUv3 register frame: two 64 KiB pages.</summary>
    public const ulong FrameSize = 0x20000;

    /// <summary>Registers that are 64 bits wide (the others are 32).</summary>
    public static bool Is64Bit(SmmuRegister r) => r is SmmuRegister.GERROR_IRQ_CFG0 or SmmuRegister.STRTAB_BASE
        or SmmuRegister.CMDQ_BASE or SmmuRegister.EVENTQ_BASE or SmmuRegister.EVENTQ_IRQ_CFG0
        or SmmuRegister.PRIQ_BASE or SmmuRegister.PRIQ_IRQ_CFG0;

    /// <summary>Looks a register up by its spec name (case-insensitive; "EVTQ_" accepted for "EVENTQ_" as Linux spells it).</summary>
    public static bool TryParse(string name, out SmmuRegister register)
    {
        string n = name.Trim().ToUpperInvariant();
        if (n.StartsWith("SMMU_", StringComparison.Ordinal)) n = n[5..];
        if (n.StartsWith("EVTQ_", StringComparison.Ordinal)) n = "EVENTQ_" + n[5..];
        if (n == nameof(SmmuRegister.Page1).ToUpperInvariant()) { register = default; return false; }
        register = default;
        // Names only: Enum.TryParse would also take numbers and comma lists.
        if (n.Length == 0 || !char.IsLetter(n[0]) || n.Contains(',')) return false;
        return Enum.TryParse(n, ignoreCase: false, out register) && Enum.IsDefined(register);
    }

    /// <summary>The read-only identification registers a scenario or dump may override.</summary>
    public static bool IsIdRegister(SmmuRegister r) => r is SmmuRegister.IDR0 or SmmuRegister.IDR1 or SmmuRegister.IDR2
        or SmmuRegister.IDR3 or SmmuRegister.IDR4 or SmmuRegister.IDR5 or SmmuRegister.IIDR or SmmuRegister.AIDR;
}
