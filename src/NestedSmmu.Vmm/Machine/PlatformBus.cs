namespace NestedSmmu.Vmm.Machine;

/// <summary>
/// The virt board's platform bus (QEMU hw/core/platform-bus.c): dynamic sysbus devices such as
/// -device arm-smmuv3 get their IRQ lines and MMIO regions here, in creation order. A device's
/// IRQs are taken first, each the lowest free line (platform_bus_map_irq); then each MMIO region,
/// in region order, at the lowest offset aligned to the region's size rounded up to a power of two
/// where it overlaps nothing already mapped (platform_bus_map_mmio).
/// </summary>
public sealed class PlatformBus
{
    private readonly ulong _windowSize;
    private readonly bool[] _usedIrqs;
    private readonly List<(ulong Offset, ulong Size)> _mapped = [];

    /// <summary>A platform bus with a window of <paramref name="windowSize"/> bytes and <paramref name="irqCount"/> lines.</summary>
    public PlatformBus(ulong windowSize, int irqCount)
    {
        _windowSize = windowSize;
        _usedIrqs = new bool[irqCount];
    }

    /// <summary>The virt board's bus: 0x0c000000, 32 MiB, 64 lines from SPI 112.</summary>
    public static PlatformBus ForVirt(VirtMemoryMap map) => new(map[VirtRegion.PlatformBus].Size, VirtIrqMap.PlatformBusIrqs);

    /// <summary>Links one device: its IRQ lines, then its MMIO regions. Offsets are relative to the window.</summary>
    public PlatformBusDevice Link(int irqCount, IReadOnlyList<ulong> regionSizes)
    {
        var irqs = new int[irqCount];
        for (int i = 0; i < irqCount; i++) irqs[i] = TakeIrq();
        var offsets = new ulong[regionSizes.Count];
        for (int i = 0; i < regionSizes.Count; i++) offsets[i] = MapRegion(regionSizes[i]);
        return new PlatformBusDevice(irqs, offsets);
    }

    private int TakeIrq()
    {
        int irq = Array.IndexOf(_usedIrqs, false);
        // QEMU's message (platform_bus_map_irq).
        if (irq < 0) throw new InvalidOperationException("Platform Bus: Can not fit IRQ line");
        _usedIrqs[irq] = true;
        return irq;
    }

    private ulong MapRegion(ulong size)
    {
        ulong alignment = System.Numerics.BitOperations.RoundUpToPowerOf2(size);
        for (ulong offset = 0; offset < _windowSize; offset += alignment)
        {
            if (_mapped.Any(m => offset < m.Offset + m.Size && m.Offset < offset + size)) continue;
            _mapped.Add((offset, size));
            return offset;
        }
        throw new InvalidOperationException($"Platform Bus: Can not fit MMIO region of size {size:x}");
    }
}

/// <summary>Where the platform bus put one device: platform-bus IRQ numbers and MMIO offsets, in the device's order.</summary>
public sealed record PlatformBusDevice(IReadOnlyList<int> Irqs, IReadOnlyList<ulong> RegionOffsets);
