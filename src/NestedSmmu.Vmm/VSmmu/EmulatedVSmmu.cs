using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Vmm.VSmmu;

/// <summary>
/// A fully emulated vSMMU (<c>-device arm-smmuv3</c> with accel=off): the hardware layer's SMMUv3
/// model itself, with guest RAM as its memory and the ID registers of QEMU's model, translating
/// for emulated devices with its own walker, TLB and queues. The VMM only counts the traps and
/// aliases page 1 onto page 0 as QEMU's model does.
/// </summary>
public sealed class EmulatedVSmmu : IVSmmu
{
    private const ulong PageOffsetMask = MmioTrapCounters.PageSize - 1;

    /// <summary>A vSMMU whose tables and queues live in <paramref name="guestMemory"/>.</summary>
    /// <param name="name">The device id.</param>
    /// <param name="properties">Resolved properties with <see cref="VSmmuProperties.Accel"/> off.</param>
    /// <param name="guestMemory">The guest physical address space (guest RAM).</param>
    /// <exception cref="ArgumentException">The properties are those of an accelerated vSMMU.</exception>
    public EmulatedVSmmu(string name, VSmmuProperties properties, IPhysicalMemory guestMemory)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(properties);
        ArgumentNullException.ThrowIfNull(guestMemory);
        if (properties.Accel) throw new ArgumentException($"vSMMU '{name}': accel=on is an {nameof(AcceleratedVSmmu)}.", nameof(properties));
        Name = name;
        Properties = properties;
        Features = properties.ToFeatures();
        GuestMemory = guestMemory;
        Model = new Smmu(guestMemory, Features, name);
        Model.InterruptRaised += source => InterruptRaised?.Invoke(source);
    }

    /// <inheritdoc/>
    public string Name { get; }
    /// <inheritdoc/>
    public VSmmuProperties Properties { get; }
    /// <inheritdoc/>
    public SmmuFeatures Features { get; }
    /// <inheritdoc/>
    public ulong Size => SmmuRegisters.FrameSize;
    /// <inheritdoc/>
    public MmioTrapCounters Traps { get; } = new((int)(SmmuRegisters.FrameSize / MmioTrapCounters.PageSize));
    /// <summary>The SMMUv3 model doing the work (its counters, TLB and configuration cache).</summary>
    public Smmu Model { get; }
    /// <summary>The guest physical address space the model reads tables from and DMA reaches.</summary>
    public IPhysicalMemory GuestMemory { get; }

    /// <inheritdoc/>
    public event Action<SmmuInterrupt>? InterruptRaised;

    /// <summary>A guest read (a trap): page 1 reads page 0's registers.</summary>
    public ulong Read(ulong offset, int width)
    {
        if (offset >= Size) return 0;
        Traps.Record(offset, write: false);
        return Model.Read(offset & PageOffsetMask, width);
    }

    /// <summary>A guest write (a trap): page 1 writes page 0's registers.</summary>
    public void Write(ulong offset, int width, ulong value)
    {
        if (offset >= Size) return;
        Traps.Record(offset, write: true);
        Model.Write(offset & PageOffsetMask, width, value);
    }

    /// <summary>
    /// The DMA entry point for an emulated endpoint behind this vSMMU: translates (SID, SSID,
    /// IOVA) with the guest's tables; faults go to the guest's event queue as the model records them.
    /// </summary>
    public TranslationResult Translate(uint streamId, uint? substreamId, ulong iova, AccessKind access) =>
        Model.Translate(streamId, substreamId, iova, access);

    /// <summary>
    /// An emulated PCIe endpoint behind this vSMMU at <paramref name="streamId"/>: its reads and
    /// writes are translated here and reach guest RAM.
    /// </summary>
    public PciEndpoint CreateEndpoint(string name, RequesterId requesterId, uint streamId, bool atsCapable = false) =>
        new(name, requesterId, streamId, Model, GuestMemory, atsCapable && Features.Ats);

    /// <inheritdoc/>
    public void Reset() => Model.Reset();

    /// <inheritdoc/>
    public void Dispose() { }

    /// <inheritdoc/>
    public override string ToString() => $"vSMMU '{Name}' (accel=off)";
}
