using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// The emulated kernel's arm-smmu-v3 driver instance for one physical SMMU (Linux's struct
/// arm_smmu_device). It programs the hardware the way arm-smmu-v3.c does: through the register
/// frame on the host MMIO bus and through the command queue in host memory. At probe it reads
/// the ID registers, builds the stream table (linear, or two-level with 8-bit split), the
/// command and event queues, invalidates everything and enables the SMMU with every known
/// stream aborting. Split by concern: ArmSmmuDevice.Queues.cs (command submission, errors,
/// events), ArmSmmuDevice.StreamTable.cs (STEs, masters, VMIDs, invalidation).
/// </summary>
internal sealed partial class ArmSmmuDevice
{
    /// <summary>STRTAB_SPLIT: StreamID bits resolved by a level-2 stream table (256 STEs, 16 KiB).</summary>
    public const int StrtabSplit = 8;
    /// <summary>log2 of STRTAB_MAX_L1_ENTRIES: Linux caps the level-1 table at 64K descriptors.</summary>
    public const int StrtabMaxL1Log2 = 16;
    /// <summary>STE.EATS = 0b01: full ATS (translated requests allowed).</summary>
    public const uint SteEatsTrans = 1;

    // CR1 (IHI 0070 6.3.10): cacheability and shareability of table and queue accesses.
    private const int CR1_QUEUE_IC = 0, CR1_QUEUE_OC = 2, CR1_QUEUE_SH = 4, CR1_TABLE_IC = 6, CR1_TABLE_OC = 8, CR1_TABLE_SH = 10;
    private const uint CR1_CACHE_WB = 1, CR1_SH_ISH = 3;
    // CR2 (6.3.11): RECINVSID [1] records C_BAD_STREAMID events, PTM [2] private TLB maintenance.
    private const uint CR2_RECINVSID = 1u << 1, CR2_PTM = 1u << 2;
    // STRTAB_BASE (6.3.23) RA [62]; STRTAB_BASE_CFG (6.3.24) LOG2SIZE [5:0], SPLIT [10:6], FMT [17:16].
    private const ulong STRTAB_BASE_RA = 1UL << 62;
    private const int STRTAB_BASE_CFG_SPLIT_LO = 6, STRTAB_BASE_CFG_FMT_LO = 16;
    // Queue BASE registers (6.3.25/27): RA [62], ADDR [51:5], LOG2SIZE [4:0].
    private const ulong Q_BASE_RA = 1UL << 62;

    private readonly EmulatedHost _host;

    public ArmSmmuDevice(EmulatedHost host, SmmuProfile profile, SmmuV3 hardware)
    {
        _host = host;
        Profile = profile;
        Hardware = hardware;
        MmioBase = profile.MmioBase;
        // Probe: the driver learns the SMMU from its ID registers, through the one IDR codec.
        Features = SmmuFeatures.FromIdrs(Read32(SmmuRegister.IDR0), Read32(SmmuRegister.IDR1), Read32(SmmuRegister.IDR3),
            Read32(SmmuRegister.IDR5), Read32(SmmuRegister.IIDR), Read32(SmmuRegister.AIDR));
        MaxVmid = Features.Vmid16 ? ushort.MaxValue : byte.MaxValue;
        Hardware.EventRecorded += OnEventRecorded;
        Hardware.InterruptRaised += OnInterrupt;
        InitStreamTable();
        InitQueues();
        Reset();
    }

    public string Name => Profile.Name;
    public SmmuProfile Profile { get; }
    public SmmuV3 Hardware { get; }
    public ulong MmioBase { get; }

    /// <summary>What the probe read from the ID registers.</summary>
    public SmmuFeatures Features { get; }

    /// <summary>The implementation-specific extension beside this SMMU (Tegra241 CMDQV), or null.</summary>
    public SmmuImplementation? Implementation { get; set; }

    /// <summary>
    /// ARM_SMMU_FEAT_NESTING plus the coherency a vIOMMU needs (arm_vsmmu_init, arm-smmu-v3-iommufd.c): stage 1 and 2, and
    /// coherent table walks (the devices are DMA coherent, so canwbs holds).
    /// </summary>
    public bool SupportsNesting => Features.Nesting && Features.CoherentWalk;

    public EmulatedHost Host => _host;

    // ------------------------------------------------------------------ MMIO through the host bus

    public uint Read32(SmmuRegister r) => (uint)_host.Bus.Read(MmioBase + (ulong)r, 4);
    public void Write32(SmmuRegister r, uint value) => _host.Bus.Write(MmioBase + (ulong)r, 4, value);
    public void Write64(SmmuRegister r, ulong value) => _host.Bus.Write(MmioBase + (ulong)r, 8, value);

    /// <summary>arm_smmu_device_reset: program tables and queues, invalidate, then enable.</summary>
    private void Reset()
    {
        // Disable everything first (a warm host may have left it on).
        Write32(SmmuRegister.CR0, 0);
        uint cr1 = (CR1_CACHE_WB << CR1_QUEUE_IC) | (CR1_CACHE_WB << CR1_QUEUE_OC) | (CR1_SH_ISH << CR1_QUEUE_SH)
            | (CR1_CACHE_WB << CR1_TABLE_IC) | (CR1_CACHE_WB << CR1_TABLE_OC) | (CR1_SH_ISH << CR1_TABLE_SH);
        Write32(SmmuRegister.CR1, cr1);
        Write32(SmmuRegister.CR2, CR2_RECINVSID | CR2_PTM);

        Write64(SmmuRegister.STRTAB_BASE, StreamTableBase | STRTAB_BASE_RA);
        uint cfg = (uint)StreamTableLog2Size
            | ((uint)(TwoLevel ? StrtabSplit : 0) << STRTAB_BASE_CFG_SPLIT_LO)
            | ((TwoLevel ? SmmuV3.STRTAB_FMT_2LEVEL : SmmuV3.STRTAB_FMT_LINEAR) << STRTAB_BASE_CFG_FMT_LO);
        Write32(SmmuRegister.STRTAB_BASE_CFG, cfg);

        Write64(SmmuRegister.CMDQ_BASE, _cmdqBase | Q_BASE_RA | (uint)_cmdqLog2);
        Write32(SmmuRegister.CMDQ_PROD, 0);
        Write32(SmmuRegister.CMDQ_CONS, 0);
        _cmdqProd = 0;
        uint enables = SmmuV3.CR0_CMDQEN;
        Write32(SmmuRegister.CR0, enables);

        // Invalidate any cached configuration and TLB entries.
        Submit([Command.CfgiAll()], sync: true);
        if (Features.Hyp) Submit([Command.TlbiEl2All()], sync: true);
        Submit([Command.TlbiNsnhAll()], sync: true);

        Write64(SmmuRegister.EVENTQ_BASE, _evtqBase | Q_BASE_RA | (uint)_evtqLog2);
        Write32(SmmuRegister.EVENTQ_PROD_PAGE1, 0);
        Write32(SmmuRegister.EVENTQ_CONS_PAGE1, 0);
        enables |= SmmuV3.CR0_EVENTQEN;
        Write32(SmmuRegister.CR0, enables);

        // Wired interrupts (no MSI doorbell is programmed): event queue and global errors.
        Write32(SmmuRegister.IRQ_CTRL, SmmuV3.IRQ_CTRL_EVENTQ_IRQEN | SmmuV3.IRQ_CTRL_GERROR_IRQEN);

        if (Features.Ats) enables |= SmmuV3.CR0_ATSCHK;
        enables |= SmmuV3.CR0_SMMUEN;
        Write32(SmmuRegister.CR0, enables);
        Log($"enabled: {(TwoLevel ? "2-level" : "linear")} stream table at 0x{StreamTableBase:X} (2^{StreamTableLog2Size} StreamIDs), " +
            $"cmdq 2^{_cmdqLog2} at 0x{_cmdqBase:X}, evtq 2^{_evtqLog2} at 0x{_evtqBase:X}, {(Features.Vmid16 ? 16 : 8)}-bit VMIDs" +
            (Profile.HasCmdqv ? ", Tegra241 CMDQV beside it" : ""));
    }

    internal void Log(string message) => _host.Log($"arm-smmu-v3 {Name}: {message}");

    /// <summary>The stream table geometry the driver picks for a feature set (used by profile validation too).</summary>
    public static (bool TwoLevel, int Log2Size) StreamTableGeometry(SmmuFeatures f)
    {
        // Linux drops to a linear table when the StreamIDs fit one level-2 table anyway.
        bool twoLevel = f.TwoLevelStreamTable && f.SidBits > StrtabSplit;
        int log2 = twoLevel ? Math.Min(f.SidBits - StrtabSplit, StrtabMaxL1Log2) + StrtabSplit : f.SidBits;
        return (twoLevel, log2);
    }
}
