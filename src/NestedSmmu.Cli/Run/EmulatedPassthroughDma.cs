using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Cli.Run;

/// <summary>
/// Passthrough DMA on the emulated host: the host function issues the access itself, through its
/// physical SMMU, by the emulated kernel's public diagnostics (the only place a test harness can
/// make a device move data). The VMM sees only <see cref="IPassthroughDma"/>.
/// </summary>
internal sealed class EmulatedPassthroughDma(EmulatedHostDiagnostics diagnostics) : IPassthroughDma
{
    public DmaResult Dma(string hostAddress, ulong iova, AccessKind access, Span<byte> data) =>
        diagnostics.Dma(hostAddress, iova, access, data);
}
