using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Vmm.VSmmu;

/// <summary>The <c>stage</c> property of <c>-device arm-smmuv3</c> (hw/arm/smmuv3.c: "1", "2", "nested").</summary>
public enum VSmmuStage
{
    /// <summary>"1" (the default): stage 1 only.</summary>
    Stage1,
    /// <summary>"2": stage 2 only.</summary>
    Stage2,
    /// <summary>"nested": stage 1 and stage 2.</summary>
    Nested,
}

/// <summary>
/// The resolved properties of one <c>-device arm-smmuv3</c>: what the guest-visible SMMU
/// advertises. Every <c>auto</c> is already resolved (the configuration layer owns the rules
/// that resolve them from the host and check host compatibility); this record only carries
/// the outcome into the vSMMU.
/// </summary>
/// <param name="Accel">accel=on: the vSMMU is backed by the host's SMMU through iommufd.</param>
/// <param name="Stage">The stage property.</param>
/// <param name="Ats">IDR0.ATS advertised (ats).</param>
/// <param name="Ril">IDR3.RIL advertised (ril).</param>
/// <param name="SsidSize">IDR1.SSIDSIZE, 0..20 (ssidsize).</param>
/// <param name="OasBits">IDR5.OAS in bits, 44 or 48 (oas).</param>
/// <param name="Cmdqv">A Tegra241 CMDQV sits beside this vSMMU (cmdqv): its vIOMMU is TEGRA241_CMDQV.</param>
/// <param name="Identifier">The IORT node identifier (identifier).</param>
public sealed record VSmmuProperties(
    bool Accel = false,
    VSmmuStage Stage = VSmmuStage.Stage1,
    bool Ats = false,
    bool Ril = true,
    int SsidSize = 0,
    int OasBits = 44,
    bool Cmdqv = false,
    byte Identifier = 0)
{
    /// <summary>QEMU's arm-smmuv3 with accel=off and every default (ril=on, ats=off, oas=44, ssidsize=0).</summary>
    public static VSmmuProperties EmulatedDefault { get; } = new();

    /// <summary>
    /// The ID registers the guest reads: QEMU's SMMUv3 reset values for the stage
    /// (hw/arm/smmuv3.c smmuv3_init_id_regs) with the resolved properties applied
    /// (smmuv3_accel_idr_override and the auto finalisation: RIL, ATS, SSIDSIZE, OAS).
    /// </summary>
    /// <exception cref="ArgumentException">A property outside what the arm-smmuv3 device accepts.</exception>
    public SmmuFeatures ToFeatures()
    {
        if (SsidSize is < 0 or > MaxSsidSize)
            throw new ArgumentException($"ssidsize {SsidSize} is outside 0..{MaxSsidSize}.", nameof(SsidSize));
        if (OasBits is not (QemuDefaultOasBits or 48))
            throw new ArgumentException("QEMU SMMUv3 model only implements auto, 44 bit, or 48 bit OAS. Other OasMode values are not supported.", nameof(OasBits));
        SmmuFeatures qemu = SmmuFeatures.FromIdrs(
            Stage switch { VSmmuStage.Stage2 => QemuIdr0Stage2, VSmmuStage.Nested => QemuIdr0Nested, _ => QemuIdr0Stage1 },
            QemuIdr1, Stage == VSmmuStage.Stage1 ? QemuIdr3 : QemuIdr3WithStage2, QemuIdr5, QemuIidr, QemuAidr);
        return qemu with
        {
            Ats = Ats, Ril = Ril, SsidBits = SsidSize, OasBits = OasBits,
            CmdqLog2Max = CmdqsLimit is int limit ? Math.Min(qemu.CmdqLog2Max, limit) : qemu.CmdqLog2Max,
        };
    }

    /// <summary>
    /// An upper bound on IDR1.CMDQS (log2 of command-queue entries), or null for QEMU's 19. A vSMMU
    /// with a Tegra241 CMDQV gets the bound from its smallest RAM backend page
    /// (VCmdqv/CmdqvQueueSizing.ClampCmdqs, as QEMU's tegra241_cmdqv_init_regs clamps it).
    /// </summary>
    public int? CmdqsLimit { get; init; }

    /// <summary>IDR1.SSIDSIZE is five bits; the arm-smmuv3 property takes 0..20 (IHI 0070 6.3.2).</summary>
    public const int MaxSsidSize = 20;

    /// <summary>QEMU's default OAS (SMMU_IDR5_OAS = 44 bits).</summary>
    public const int QemuDefaultOasBits = 44;

    // QEMU 11.1's reset ID registers (hw/arm/smmuv3.c smmuv3_init_id_regs), as a guest reads them;
    // tests/vectors/vsmmu holds the values read back from QEMU 11.1.3.
    // IDR0: S1P, TTF AArch64, COHACC, ASID16, VMID16, TTENDIAN LE, STALL_MODEL 1, TERM_MODEL, ST_LEVEL 2-level;
    // S2P added for stage 2 (and nested).
    private const uint QemuIdr0Stage1 = 0x0D44101A, QemuIdr0Nested = 0x0D44101B, QemuIdr0Stage2 = 0x0D441019;
    // IDR1: SIDSIZE 16, EVENTQS 19, CMDQS 19.
    private const uint QemuIdr1 = 0x02730010;
    // IDR3: HAD, BBML 2 (+ XNX with stage 2) ... and RIL.
    private const uint QemuIdr3 = 0x1404, QemuIdr3WithStage2 = 0x1414;
    // IDR5: OAS 44 bits, GRAN4K, GRAN16K, GRAN64K.
    private const uint QemuIdr5 = 0x74;
    // IIDR 0; AIDR 1: SMMUv3.1.
    private const uint QemuIidr = 0, QemuAidr = 1;
}
