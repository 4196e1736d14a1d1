namespace NestedSmmu.Vmm.VSmmu;

/// <summary>What an accelerated vSMMU did for its guest: the trapped invalidation path, in numbers.</summary>
public sealed class AcceleratedVSmmuCounters
{
    /// <summary>Commands read from the guest's command queue.</summary>
    public long CommandsConsumed { get; internal set; }
    /// <summary>Commands handed to the host through IOMMU_HWPT_INVALIDATE on the vIOMMU.</summary>
    public long CommandsForwarded { get; internal set; }
    /// <summary>IOMMU_HWPT_INVALIDATE calls (one per batch).</summary>
    public long Batches { get; internal set; }
    /// <summary>CMD_SYNCs completed (emulated).</summary>
    public long Syncs { get; internal set; }
    /// <summary>Times the command queue stopped with CMDQ_CONS.ERR set.</summary>
    public long CommandErrors { get; internal set; }
    /// <summary>STEs installed for a device (an abort, bypass or nested HWPT attached).</summary>
    public long SteInstalls { get; internal set; }
    /// <summary>IOMMU_VDEVICE_ALLOC calls.</summary>
    public long VdevicesAllocated { get; internal set; }
    /// <summary>Nested HWPTs allocated from a guest S1 STE.</summary>
    public long NestedHwptsAllocated { get; internal set; }
    /// <summary>vEVENTs written into the guest's event queue.</summary>
    public long EventsDelivered { get; internal set; }
    /// <summary>Events that could not be written (queue disabled, full or outside RAM) or that the host lost.</summary>
    public long EventsLost { get; internal set; }
    /// <summary>Times EVENTQ_PROD.OVFLG was toggled to report lost events.</summary>
    public long Overflows { get; internal set; }
    /// <summary>Interrupts signalled to the guest (wired or MSI).</summary>
    public long Interrupts { get; internal set; }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{CommandsConsumed} commands ({CommandsForwarded} forwarded in {Batches} batches, {Syncs} syncs, {CommandErrors} errors), " +
        $"{SteInstalls} STE installs ({VdevicesAllocated} vDEVICEs, {NestedHwptsAllocated} nested HWPTs), " +
        $"{EventsDelivered} events delivered, {EventsLost} lost, {Overflows} overflows, {Interrupts} interrupts";
}
