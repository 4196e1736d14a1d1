using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Vmm.Machine;

/// <summary>
/// What makes a passthrough (vfio) device issue DMA. A VMM cannot make real hardware do that; a
/// workload harness can, on a host that lets it: on the emulated host the device's DMA goes
/// through the emulated kernel's public diagnostics, and that implementation lives with whoever
/// owns that host (the CLI), so the VMM never names an emulated-host type.
/// </summary>
public interface IPassthroughDma
{
    /// <summary>
    /// The host function <paramref name="hostAddress"/> reads (fills <paramref name="data"/>) or
    /// writes <paramref name="data"/> at <paramref name="iova"/>, translated by its physical IOMMU.
    /// </summary>
    DmaResult Dma(string hostAddress, ulong iova, AccessKind access, Span<byte> data);
}
