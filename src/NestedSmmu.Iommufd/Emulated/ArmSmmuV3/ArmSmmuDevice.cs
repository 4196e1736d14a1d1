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

    /// <summary>
    /// The software MSI window every master reports as a reserved region (MSI_IOVA_BASE and
    /// MSI_IOVA_LENGTH, IOMMU_RESV_SW_MSI in arm_smmu_get_resv_regions, arm-smmu-v3.c): iommufd
    /// reserves it in the IOAS the device is attached to.
    /// </summary>
    public const ulong MsiIovaBase = 0x8000000, MsiIovaLength = 0x100000;
    /// <summary>log2 of STRTAB_MAX_L1_ENTRIES: Linux caps the level-1 table at 64K descriptors.</summary>
    public const int StrtabMaxL1Log2 = 16;
    /// <summary>STE.EATS = 0b01: full ATS (translated requests allowed).</summary>
    public const uint SteEatsTrans = 1;

    // Register fields are SmmuV3's declarations (IHI 0070 6.3), the ones the hardware decodes with.

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
        MaxAsid = Features.Asid16 ? ushort.MaxValue : byte.MaxValue;
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

    /// <summary>
    /// ARM_SMMU_FEAT_E2H (arm_smmu_device_hw_probe): IDR0.HYP and a kernel running at EL2 with
    /// VHE. Stage-1 domains then live in the EL2-E2H StreamWorld.
    /// </summary>
    public bool E2h => Features.Hyp && _host.Options.KernelAtEl2WithVhe;

    /// <summary>
    /// ARM_SMMU_FEAT_STALLS (IDR0.STALL_MODEL 0b00 or 0b10) and ARM_SMMU_FEAT_STALL_FORCE (0b10):
    /// a PCI master never asks to stall, so it stalls only when the SMMU forces it.
    /// </summary>
    public bool Stalls => Features.StallModel is StallModelStall or StallModelForce;
    public bool StallForce => Features.StallModel == StallModelForce;
    private const int StallModelStall = 0, StallModelForce = 2;

    // ------------------------------------------------------------------ MMIO through the host bus

    public uint Read32(SmmuRegister r) => (uint)_host.Bus.Read(MmioBase + (ulong)r, 4);
    public void Write32(SmmuRegister r, uint value) => _host.Bus.Write(MmioBase + (ulong)r, 4, value);
    public void Write64(SmmuRegister r, ulong value) => _host.Bus.Write(MmioBase + (ulong)r, 8, value);

    /// <summary>arm_smmu_device_reset: program tables and queues, invalidate, then enable.</summary>
    private void Reset()
    {
        // Disable everything first (a warm host may have left it on).
        Write32(SmmuRegister.CR0, 0);
        uint cr1 = (uint)(SmmuV3.CR1_QUEUE_IC.Encode(SmmuV3.CR1_CACHE_WB) | SmmuV3.CR1_QUEUE_OC.Encode(SmmuV3.CR1_CACHE_WB)
            | SmmuV3.CR1_QUEUE_SH.Encode(SmmuV3.CR1_SH_ISH) | SmmuV3.CR1_TABLE_IC.Encode(SmmuV3.CR1_CACHE_WB)
            | SmmuV3.CR1_TABLE_OC.Encode(SmmuV3.CR1_CACHE_WB) | SmmuV3.CR1_TABLE_SH.Encode(SmmuV3.CR1_SH_ISH));
        Write32(SmmuRegister.CR1, cr1);
        Write32(SmmuRegister.CR2, SmmuV3.CR2_RECINVSID | SmmuV3.CR2_PTM | (E2h ? SmmuV3.CR2_E2H : 0));

        Write64(SmmuRegister.STRTAB_BASE, StreamTableBase | SmmuV3.STRTAB_BASE_RA);
        uint cfg = (uint)(SmmuV3.STRTAB_BASE_CFG_LOG2SIZE.Encode((ulong)StreamTableLog2Size)
            | SmmuV3.STRTAB_BASE_CFG_SPLIT.Encode(TwoLevel ? (ulong)StrtabSplit : 0)
            | SmmuV3.STRTAB_BASE_CFG_FMT.Encode(TwoLevel ? SmmuV3.STRTAB_FMT_2LEVEL : SmmuV3.STRTAB_FMT_LINEAR));
        Write32(SmmuRegister.STRTAB_BASE_CFG, cfg);

        Write64(SmmuRegister.CMDQ_BASE, _cmdqBase | SmmuV3.Q_BASE_RA | SmmuV3.Q_BASE_LOG2SIZE.Encode((ulong)_cmdqLog2));
        Write32(SmmuRegister.CMDQ_PROD, 0);
        Write32(SmmuRegister.CMDQ_CONS, 0);
        _cmdqProd = 0;
        uint enables = SmmuV3.CR0_CMDQEN;
        Write32(SmmuRegister.CR0, enables);

        // Invalidate any cached configuration and TLB entries.
        Submit([Command.CfgiAll()], sync: true);
        if (Features.Hyp) Submit([Command.TlbiEl2All()], sync: true);
        Submit([Command.TlbiNsnhAll()], sync: true);

        Write64(SmmuRegister.EVENTQ_BASE, _evtqBase | SmmuV3.Q_BASE_RA | SmmuV3.Q_BASE_LOG2SIZE.Encode((ulong)_evtqLog2));
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
