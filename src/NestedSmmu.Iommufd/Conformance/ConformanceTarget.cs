using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;

namespace NestedSmmu.Iommufd.Conformance;

/// <summary>
/// What the conformance sequence needs from a backend besides <see cref="IIommufd"/>: a way to
/// open fresh contexts, the device to bind, the raw ioctl entry (for the selftests' size rules,
/// which the typed API never gets wrong) and a way to make the device issue one DMA read.
/// </summary>
/// <param name="Name">For the output header (<c>emulated host 'qemu-virt-smmuv3'</c>, <c>linux 7.2.6</c>).</param>
/// <param name="Open">Opens a new iommufd context (one open of /dev/iommu).</param>
/// <param name="Device">The device as <see cref="IIommufd.BindDevice"/> takes it.</param>
/// <param name="RawIoctl">ioctl(2) on the context: request and argument bytes; 0 or -errno.</param>
/// <param name="DmaRead">
/// Makes the bound device read 4 bytes at an IOVA through its IOMMU (context, device, IOVA).
/// Faults are not reported here: they reach the IOMMU's event queue and, for a nested
/// attachment, the vEVENTQ.
/// </param>
/// <param name="DmaCopy">
/// Makes the bound device copy bytes through its IOMMU as QEMU's edu device does (context,
/// device, source IOVA, destination IOVA, length): a DMA read into the device's own buffer,
/// then a DMA write of that buffer. A read that faults leaves the buffer as it was; a write
/// that faults stores nothing.
/// </param>
public sealed record ConformanceTarget(
    string Name,
    Func<IIommufd> Open,
    string Device,
    Func<IIommufd, uint, Span<byte>, int> RawIoctl,
    Action<IIommufd, DeviceId, ulong> DmaRead,
    Action<IIommufd, DeviceId, ulong, ulong, int> DmaCopy)
{
    /// <summary>The size of the device's own DMA buffer (edu: 4 KiB); copies stay within it.</summary>
    public const int DeviceBufferSize = 4096;

    /// <summary>
    /// How long the IOMMU driver may take to forward the faults of DMAs that have completed
    /// (the real kernel handles the event queue in an interrupt thread); zero for the emulated
    /// host, which forwards within the DMA.
    /// </summary>
    public TimeSpan EventSettle { get; init; } = TimeSpan.Zero;

    /// <summary>
    /// Makes stage-1 tables in guest RAM: (the RAM as the device sees it, its IPA, the IPA where
    /// the tables may start). Null: the stage-1 steps answer <c>n/a</c>.
    /// </summary>
    public Func<IPhysicalMemory, ulong, ulong, IStage1Tables>? Stage1 { get; init; }

    /// <summary>The target for an emulated host and one of its devices (by profile name or PCI address).</summary>
    public static ConformanceTarget ForEmulatedHost(EmulatedHost host, string device)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentException.ThrowIfNullOrEmpty(device);
        return new ConformanceTarget(
            $"emulated host '{host.Profile.Name}'",
            host.Open,
            device,
            (context, request, argument) => ((EmulatedIommufd)context).Ioctl(request, argument),
            (_, _, iova) =>
            {
                Span<byte> data = stackalloc byte[sizeof(uint)];
                host.Dma(device, iova, AccessKind.Read, data);
            },
            new EmulatedCopyEngine(host, device).Copy);
    }

    /// <summary>The edu device's copy on the emulated host: a buffer that keeps its bytes when a read faults.</summary>
    private sealed class EmulatedCopyEngine(EmulatedHost host, string device)
    {
        private readonly byte[] _buffer = new byte[DeviceBufferSize];

        public void Copy(IIommufd context, DeviceId bound, ulong from, ulong to, int length)
        {
            Span<byte> data = _buffer.AsSpan(0, length);
            Span<byte> read = stackalloc byte[length];
            if (host.Dma(device, from, AccessKind.Read, read).IsSuccess) read.CopyTo(data);
            host.Dma(device, to, AccessKind.Write, data);
        }
    }
}
