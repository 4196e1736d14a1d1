using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Hardware.Cmdqv;

/// <summary>
/// NVIDIA Tegra241 (Grace) CMDQV: command-queue virtualization beside one SMMUv3. A config page
/// (enable, PARAM, error maps, CMDQ_ALLOC, VINTF blocks with VMID and SID match/replace), the
/// global VCMDQ pages 0 and 1, and two logical pages per VINTF that alias the VCMDQs allocated to
/// it. A VCMDQ is an SMMU-format command queue in host physical memory; a PROD write makes the
/// hardware run its commands at once on the SMMU, after filtering and rewriting them for guest
/// (HYP_OWN = 0) VINTFs. Guest register accesses never throw; guest errors stop the queue with
/// CONS.ERR and GERROR and raise <see cref="ErrorRaised"/>. Not thread-safe: one model owns it, as
/// with <see cref="SmmuV3"/>.
/// Split by concern: Tegra241Cmdqv.Registers.cs (fields, register dispatch), .Vintf.cs (VINTFs,
/// command filter, substitution), .Queues.cs (VCMDQs, consumption, errors).
/// Register facts: Linux drivers/iommu/arm/arm-smmu-v3/tegra241-cmdqv.c and QEMU's tegra241-cmdqv model.
/// </summary>
public sealed partial class Tegra241Cmdqv : IMmioDevice
{
    private readonly SmmuV3 _smmu;
    private readonly IPhysicalMemory _memory;
    private readonly Vintf[] _vintfs;
    private readonly Vcmdq[] _queues;
    /// <summary>(VINTF, logical index) to global VCMDQ index, -1 when nothing is allocated there; rebuilt on CMDQ_ALLOC writes.</summary>
    private readonly int[] _logicalToGlobal;

    /// <param name="smmu">The SMMU whose command execution, TLB and ATCs the VCMDQs drive.</param>
    /// <param name="memory">Host physical memory: the VCMDQ buffers are read from it by physical address.</param>
    /// <param name="options">Synthesis parameters; <see cref="Tegra241CmdqvOptions.Default"/> when null.</param>
    public Tegra241Cmdqv(SmmuV3 smmu, IPhysicalMemory memory, Tegra241CmdqvOptions? options = null, string name = "cmdqv")
    {
        ArgumentNullException.ThrowIfNull(smmu);
        ArgumentNullException.ThrowIfNull(memory);
        options ??= Tegra241CmdqvOptions.Default;
        options.Validate();
        _smmu = smmu;
        _memory = memory;
        Options = options;
        Name = name;
        _vintfs = new Vintf[options.NumVintfs];
        for (int v = 0; v < _vintfs.Length; v++) _vintfs[v] = new Vintf(v, options.SidsPerVintf);
        _queues = new Vcmdq[options.NumVcmdqs];
        for (int q = 0; q < _queues.Length; q++) _queues[q] = new Vcmdq(q);
        _logicalToGlobal = new int[options.NumVintfs * MaxLvcmdqs];
        Size = Tegra241CmdqvLayout.FrameSize(options.NumVintfLog2);
        Reset();
    }

    public string Name { get; }
    public Tegra241CmdqvOptions Options { get; }
    public SmmuV3 Smmu => _smmu;
    public IPhysicalMemory Memory => _memory;

    /// <summary>The whole frame: config page, global VCMDQ pages 0 and 1, and every VINTF's two logical pages.</summary>
    public ulong Size { get; }

    public int NumVintfs => _vintfs.Length;
    public int NumVcmdqs => _queues.Length;
    public int LvcmdqsPerVintf => Options.LvcmdqsPerVintf;
    public int SidsPerVintf => Options.SidsPerVintf;

    /// <summary>
    /// The CMDQV interrupt: a VCMDQ stopped on an error and its VINTF's VINTF_INT_MASK bit is clear.
    /// Raised synchronously from inside the PROD (or enable) write that ran the command; a handler
    /// may read the error maps and acknowledge through GERRORN at once.
    /// </summary>
    public event Action<VcmdqError>? ErrorRaised;

    /// <summary>
    /// Every command a VINTF admitted, just before the SMMU executes it (diagnostics: what a guest
    /// VINTF let through is checked against its allowed set and SIDs from outside the model).
    /// </summary>
    public event Action<VintfCommand>? CommandAdmitted;

    /// <summary>Totals over every VCMDQ.</summary>
    public CmdqvCounters Counters { get; } = new();

    /// <summary>Counters of global VCMDQ <paramref name="queue"/>.</summary>
    public CmdqvCounters QueueCounters(int queue) => _queues[CheckQueue(queue)].Counters;

    /// <summary>Counters of VINTF <paramref name="vintf"/> (every queue it ran, whichever was allocated to it then).</summary>
    public CmdqvCounters VintfCounters(int vintf) => _vintfs[CheckVintf(vintf)].Counters;

    /// <summary>Power-on reset: registers to their reset values, no queue allocated, counters kept.</summary>
    public void Reset()
    {
        _config = CONFIG_ResetValue;
        _vintfIntMask = 0;
        foreach (var v in _vintfs) v.Reset();
        foreach (var q in _queues) q.Reset();
        RebuildLogicalMap();
    }

    /// <summary>Zeroes every counter (totals, per queue, per VINTF).</summary>
    public void ResetCounters()
    {
        Counters.Reset();
        foreach (var v in _vintfs) v.Counters.Reset();
        foreach (var q in _queues) q.Counters.Reset();
    }

    private int CheckQueue(int queue) => (uint)queue < (uint)_queues.Length ? queue
        : throw new ArgumentOutOfRangeException(nameof(queue), $"VCMDQ {queue} does not exist: this CMDQV has {_queues.Length} (0..{_queues.Length - 1}).");

    private int CheckVintf(int vintf) => (uint)vintf < (uint)_vintfs.Length ? vintf
        : throw new ArgumentOutOfRangeException(nameof(vintf), $"VINTF {vintf} does not exist: this CMDQV has {_vintfs.Length} (0..{_vintfs.Length - 1}).");
}
