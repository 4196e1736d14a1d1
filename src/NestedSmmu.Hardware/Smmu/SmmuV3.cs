using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Hardware.Smmu;

/// <summary>SMMU interrupt sources, in the order of QEMU's and the IORT node's wiring.</summary>
public enum SmmuInterrupt { EventQueue, PriQueue, CmdSync, GlobalError }

/// <summary>Receives translated-address invalidations (ATC_INV) for one StreamID: an endpoint's ATC.</summary>
public interface IAtcInvalidationTarget
{
    /// <summary>
    /// Invalidate cached translations overlapping [address, address + length) for <paramref name="ssid"/>;
    /// null (no PASID prefix) or <paramref name="global"/> means every PASID, untagged entries included.
    /// </summary>
    void InvalidateAtc(uint? ssid, bool global, ulong address, ulong length);
}

/// <summary>
/// An Arm SMMUv3 (IHI 0070): the register frame, the command and event queues, the stream and
/// context-descriptor tables, a two-stage VMSAv8-64 walker, the IOTLB and configuration cache.
/// Guest register accesses never throw; guest-caused faults become event records.
/// Split by concern: SmmuV3.Registers.cs, SmmuV3.Queues.cs, SmmuV3.Translation.cs, SmmuV3.Trace.cs.
/// </summary>
public sealed partial class SmmuV3 : IMmioDevice
{
    private readonly IPhysicalMemory _memory;
    private readonly PageTableWalker _walker;
    private readonly Dictionary<uint, List<IAtcInvalidationTarget>> _atcTargets = new();

    public SmmuV3(IPhysicalMemory memory, SmmuFeatures features, string name = "smmu")
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(features);
        if (!features.Stage1 && !features.Stage2)
            throw new ArgumentException("An SMMU must implement stage 1, stage 2 or both.", nameof(features));
        if (!AddressSize.TryEncode(features.OasBits, out _))
            throw new ArgumentException($"OAS of {features.OasBits} bits is not architected.", nameof(features));
        if (features.SidBits is < 0 or > 32 || features.SsidBits is < 0 or > 20)
            throw new ArgumentException($"SIDSIZE {features.SidBits} / SSIDSIZE {features.SsidBits} out of range (0..32 / 0..20).", nameof(features));
        _memory = memory;
        Features = features;
        Name = name;
        WalkCache = new WalkCache();
        _walker = new PageTableWalker(memory, WalkCache);
        Tlb = new Iotlb();
        _regs = new SmmuRegisterFile(features, new RegisterEffects(this));
        Reset();
    }

    public string Name { get; }
    public SmmuFeatures Features { get; }
    public IPhysicalMemory Memory => _memory;
    public Iotlb Tlb { get; }
    /// <summary>Cached table entries of earlier walks (intermediate levels; nested stage-1 tables with their PAs).</summary>
    public WalkCache WalkCache { get; }
    /// <summary>The table walker (tests compare its fast nested loop with the full walk).</summary>
    internal PageTableWalker Walker => _walker;
    public ulong Size => SmmuRegisters.FrameSize;

    /// <summary>Raised for a wired interrupt (the source is enabled in IRQ_CTRL and no MSI address is set).</summary>
    public event Action<SmmuInterrupt>? InterruptRaised;

    /// <summary>Counters for diagnostics and the benchmark/CLI reports.</summary>
    public SmmuCounters Counters { get; } = new();

    /// <summary>Routes ATC_INV for <paramref name="sid"/> to an endpoint's ATC.</summary>
    public void RegisterAtc(uint sid, IAtcInvalidationTarget target)
    {
        if (!_atcTargets.TryGetValue(sid, out var list)) _atcTargets[sid] = list = new();
        list.Add(target);
    }

    public void UnregisterAtc(uint sid, IAtcInvalidationTarget target)
    {
        if (_atcTargets.TryGetValue(sid, out var list)) list.Remove(target);
    }

    /// <summary>Power-on reset: registers to their reset values, queues disabled, caches empty.</summary>
    public void Reset()
    {
        _regs.Reset();
        InvalidateAllConfig();
        Tlb.Clear();
        WalkCache.Clear();
    }

    private bool IsAbort(ulong address, ulong length) => _memory.IsAbort(address, length);

    private void Raise(SmmuInterrupt source, ulong msiAddress, uint msiData)
    {
        Counters.Interrupts++;
        if (Features.Msi && msiAddress != 0)
        {
            if (_memory.IsAbort(msiAddress, 4))
            {
                SetGlobalError(source switch
                {
                    SmmuInterrupt.EventQueue => GERROR_MSI_EVENTQ_ABT_ERR,
                    SmmuInterrupt.CmdSync => GERROR_MSI_CMDQ_ABT_ERR,
                    SmmuInterrupt.PriQueue => GERROR_MSI_PRIQ_ABT_ERR,
                    _ => GERROR_MSI_GERROR_ABT_ERR,
                });
                return;
            }
            _memory.WriteUInt32(msiAddress, msiData);
            Counters.MsiWrites++;
            return;
        }
        InterruptRaised?.Invoke(source);
    }
}

/// <summary>What the SMMU has done, for diagnostics.</summary>
public sealed class SmmuCounters
{
    public long CommandsExecuted { get; internal set; }
    public long CommandErrors { get; internal set; }
    public long Syncs { get; internal set; }
    public long EventsWritten { get; internal set; }
    public long EventsLost { get; internal set; }
    public long Translations { get; internal set; }
    public long Interrupts { get; internal set; }
    public long MsiWrites { get; internal set; }
    public long AtcInvalidations { get; internal set; }
    public long ConfigFetches { get; internal set; }
}
