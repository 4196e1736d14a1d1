using NestedSmmu.Guest.Smmu;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Guest.Dma;

/// <summary>
/// The device side of a workload: whatever makes the PCI function issue DMA (the VMM's vfio device
/// on the emulated host, or a Hardware PCI endpoint in a test). Each call is one transfer within a
/// 4 KiB page; false when the IOMMU refused it.
/// </summary>
public interface IDmaEngine
{
    bool Write(ulong iova, ReadOnlySpan<byte> data);
    bool Read(ulong iova, Span<byte> data);
}

/// <summary>One check of a workload and whether it held.</summary>
public readonly record struct WorkloadCheck(string Name, bool Passed, string Detail);

/// <summary>What one device's workload did and saw.</summary>
public sealed class DmaWorkloadResult
{
    public required string Device { get; init; }
    public required uint StreamId { get; init; }
    public List<WorkloadCheck> Checks { get; } = new();
    public long Dmas { get; internal set; }
    public long Bytes { get; internal set; }
    public int FaultsExpected { get; internal set; }
    public int FaultsSeen { get; internal set; }
    public bool Passed => Checks.All(c => c.Passed);
    public IEnumerable<WorkloadCheck> Failed => Checks.Where(c => !c.Passed);
}

/// <summary>
/// The standard guest workload for one device: map buffers (4 KiB, 64 KiB and a 2 MiB-aligned 2 MiB
/// one), let the device write a pattern into each and check it in guest RAM, write a pattern from
/// the guest and check what the device reads, unmap with invalidation, then DMA to an unmapped IOVA
/// and check that it faults and that the SMMU's event queue reports it with the device's StreamID.
/// </summary>
public static class DmaWorkload
{
    private const int Chunk = 256;
    private const ulong Page = 0x1000;

    /// <param name="buffers">Guest RAM the buffers come from.</param>
    /// <param name="seed">Varies the data patterns.</param>
    public static DmaWorkloadResult Run(DmaDevice device, IDmaEngine engine, GuestPageAllocator buffers, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(buffers);
        var result = new DmaWorkloadResult { Device = device.Name, StreamId = device.StreamId };
        var ram = device.Smmu.Ram;
        ulong[] sizes = [Page, 16 * Page, 2UL << 20];
        var maps = new List<(DmaMapping Map, ulong Pa)>();
        foreach (ulong size in sizes)
        {
            ulong pa = buffers.Allocate(size);
            var m = device.Map(pa, size);
            result.Checks.Add(new WorkloadCheck($"map 0x{size:X}", m is not null, m is null ? "IOVA space exhausted" : $"iova 0x{m.Iova:X} -> 0x{pa:X}, {m.Leaves.Count} leaves"));
            if (m is not null) maps.Add((m, pa));
        }
        int n = 0;
        foreach (var (m, pa) in maps)
        {
            // Device to memory: first and last chunk of every page.
            bool ok = true;
            for (ulong off = 0; off < m.Size; off += Page)
            {
                foreach (ulong at in new[] { off, off + Page - Chunk })
                {
                    var data = Pattern(Chunk, seed + n++);
                    bool w = engine.Write(m.Iova + at, data);
                    result.Dmas++;
                    result.Bytes += Chunk;
                    var back = new byte[Chunk];
                    ram.Read(pa + at, back);
                    if (!w || !back.AsSpan().SequenceEqual(data)) ok = false;
                }
            }
            result.Checks.Add(new WorkloadCheck($"device writes land in guest RAM (0x{m.Size:X})", ok, $"iova 0x{m.Iova:X}"));
            // Memory to device.
            var guest = Pattern(Chunk, seed + 1000 + n++);
            ram.Write(pa + m.Size - Chunk, guest);
            var read = new byte[Chunk];
            bool r = engine.Read(m.Iova + m.Size - Chunk, read);
            result.Dmas++;
            result.Bytes += Chunk;
            result.Checks.Add(new WorkloadCheck($"device reads what the guest wrote (0x{m.Size:X})", r && read.AsSpan().SequenceEqual(guest), ""));
        }
        // Unmap with invalidation, then the same IOVA must fault and be reported with the StreamID.
        device.Smmu.ProcessEvents();
        foreach (var (m, _) in maps)
        {
            bool inv = device.Unmap(m);
            result.Checks.Add(new WorkloadCheck($"unmap and invalidate 0x{m.Iova:X}", inv, ""));
        }
        foreach (var (m, _) in maps)
        {
            bool w = engine.Write(m.Iova, Pattern(8, seed));
            result.Dmas++;
            result.FaultsExpected++;
            result.Checks.Add(new WorkloadCheck($"DMA to unmapped 0x{m.Iova:X} faults", !w, w ? "the write went through: stale translation" : ""));
        }
        var faults = device.Smmu.ProcessEvents();
        var mine = faults.Where(f => f.StreamId == device.StreamId && f.Type is EventType.F_TRANSLATION).ToList();
        result.FaultsSeen = mine.Count;
        bool allSeen = maps.All(mm => mine.Any(f => f.Address == mm.Map.Iova));
        result.Checks.Add(new WorkloadCheck("guest sees each fault with the device's StreamID", allSeen && mine.Count == result.FaultsExpected,
            $"{mine.Count} of {result.FaultsExpected} (sid 0x{device.StreamId:X})"));
        foreach (var (m, pa) in maps) buffers.Free(pa, m.Size);
        return result;
    }

    private static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        uint x = (uint)seed * 2654435761u + 1;
        for (int i = 0; i < length; i++) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; b[i] = (byte)x; }
        return b;
    }
}
