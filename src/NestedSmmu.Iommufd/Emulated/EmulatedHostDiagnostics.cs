using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>What the host driver did with one SMMU, at the time of the snapshot.</summary>
/// <param name="Name">The SMMU's profile name.</param>
/// <param name="Hardware">The hardware's own counters (commands executed, syncs, events, translations...); live.</param>
/// <param name="CommandsSubmitted">Commands the host driver wrote to the command queue.</param>
/// <param name="Batches">Times the driver published commands (CMDQ_PROD writes).</param>
/// <param name="CommandsSkipped">Commands the SMMU refused that the driver skipped.</param>
/// <param name="EventsSeen">Event records the SMMU produced.</param>
/// <param name="EventsForwarded">Events delivered to a vIOMMU's vEVENTQ.</param>
/// <param name="VmidsInUse">VMIDs allocated on this SMMU.</param>
/// <param name="TwoLevelStreamTable">The stream table format the driver chose.</param>
/// <param name="HasCmdqv">A Tegra241 CMDQV sits beside the SMMU.</param>
public sealed record SmmuDiagnostics(
    string Name,
    SmmuCounters Hardware,
    long CommandsSubmitted,
    long Batches,
    long CommandsSkipped,
    long EventsSeen,
    long EventsForwarded,
    IReadOnlyList<ushort> VmidsInUse,
    bool TwoLevelStreamTable,
    bool HasCmdqv);

/// <summary>
/// The emulated host's diagnostic interface, kept apart from <see cref="IIommufd"/>: per-SMMU
/// counters, TLB contents, stream table entries, host memory, the kernel log, and DMA issued by
/// a host device through its SMMU (to make devices DMA in tests and end-to-end runs). Everything
/// takes the kernel lock; nothing here changes what the kernel does except DMA, which is a
/// device's access like any other.
/// </summary>
public sealed class EmulatedHostDiagnostics
{
    private readonly EmulatedHost _host;

    internal EmulatedHostDiagnostics(EmulatedHost host) => _host = host;

    /// <summary>SMMU names, in profile order.</summary>
    public IReadOnlyList<string> SmmuNames => [.. _host.Profile.Smmus.Select(s => s.Name)];

    /// <summary>A snapshot of one SMMU's counters and state.</summary>
    /// <exception cref="ArgumentException">No SMMU has that name.</exception>
    public SmmuDiagnostics Smmu(string name)
    {
        lock (_host.KernelLock)
        {
            ArmSmmuDevice s = SmmuOrThrow(name);
            return new SmmuDiagnostics(s.Name, s.Hardware.Counters, s.CommandsSubmitted, s.Batches, s.CommandsSkipped,
                s.EventsSeen, s.EventsForwarded, [.. s.VmidsInUse], s.TwoLevel, s.Profile.HasCmdqv);
        }
    }

    /// <summary>The SMMU's hardware counters (live object).</summary>
    public SmmuCounters Counters(string smmu) => Smmu(smmu).Hardware;

    /// <summary>Every translation cached in the SMMU's TLB now.</summary>
    public IReadOnlyList<TlbEntry> TlbEntries(string smmu)
    {
        lock (_host.KernelLock) return [.. SmmuOrThrow(smmu).Hardware.Tlb.Entries];
    }

    /// <summary>The STE the SMMU would fetch for <paramref name="sid"/> (from the stream table in host memory), or null.</summary>
    public StreamTableEntry? ReadSte(string smmu, uint sid)
    {
        lock (_host.KernelLock) return SmmuOrThrow(smmu).ReadSte(sid);
    }

    /// <summary>The STE of a device (by name or PCI address).</summary>
    /// <exception cref="ArgumentException">No such device.</exception>
    public StreamTableEntry ReadSte(string device)
    {
        lock (_host.KernelLock)
        {
            HostPciDevice d = DeviceOrThrow(device);
            return d.Master.Smmu.ReadSte(d.Profile.StreamId)!.Value;
        }
    }

    /// <summary>The SMMU a device sits behind.</summary>
    public string SmmuOf(string device)
    {
        lock (_host.KernelLock) return DeviceOrThrow(device).Profile.Smmu;
    }

    /// <summary>Whether the device's ATS is enabled (the host driver owns PCIe ATS Control).</summary>
    public bool AtsEnabled(string device)
    {
        lock (_host.KernelLock) return DeviceOrThrow(device).Endpoint.AtsEnabled;
    }

    /// <summary>Reads host physical memory.</summary>
    public void ReadHostMemory(ulong address, Span<byte> destination)
    {
        lock (_host.KernelLock) _host.Memory.Read(address, destination);
    }

    /// <summary>Reads a little-endian 64-bit word of host physical memory.</summary>
    public ulong ReadHostMemoryUInt64(ulong address)
    {
        lock (_host.KernelLock) return _host.Memory.ReadUInt64(address);
    }

    /// <summary>Bytes of host memory the kernel and the VMM hold.</summary>
    public ulong HostMemoryAllocated
    {
        get
        {
            lock (_host.KernelLock) return _host.Allocator.BytesAllocated;
        }
    }

    /// <summary>What holds the host memory at <paramref name="address"/> (e.g. <c>smmu0 cmdq</c>, <c>ram0</c>), or null when free.</summary>
    public string? HostMemoryOwner(ulong address)
    {
        lock (_host.KernelLock) return _host.Allocator.OwnerOf(address);
    }

    /// <summary>The kernel log (dmesg), oldest first.</summary>
    public IReadOnlyList<string> KernelLog
    {
        get
        {
            lock (_host.KernelLock) return _host.LogLines;
        }
    }

    /// <summary>
    /// DMA by a host device (by name or PCI address) through its SMMU, as the device would issue
    /// it: a read fills <paramref name="data"/>, a write stores it. The access is split at 4 KiB
    /// boundaries; each piece is translated (through the ATC when ATS is on) and faults are
    /// handled by the SMMU as usual (events, forwarding to a vEVENTQ). Returns the result of the
    /// last piece, or of the first one that did not translate (later pieces are not issued).
    /// </summary>
    /// <exception cref="ArgumentException">No such device.</exception>
    public DmaResult Dma(string device, ulong iova, AccessKind access, Span<byte> data, uint? pasid = null)
    {
        lock (_host.KernelLock)
        {
            PciEndpoint endpoint = DeviceOrThrow(device).Endpoint;
            DmaResult result = default;
            int done = 0;
            do
            {
                ulong address = iova + (ulong)done;
                int chunk = (int)Math.Min((ulong)(data.Length - done), SparseMemory.PageSize - (address & SparseMemory.PageMask));
                Span<byte> piece = data.Slice(done, chunk);
                result = access == AccessKind.Read ? endpoint.Read(address, piece, pasid) : endpoint.Write(address, piece, pasid);
                if (!result.IsSuccess) return result;
                done += chunk;
            }
            while (done < data.Length);
            return result;
        }
    }

    private ArmSmmuDevice SmmuOrThrow(string name) => _host.FindSmmu(name)
        ?? throw new ArgumentException($"The emulated host '{_host.Profile.Name}' has no SMMU '{name}'; SMMUs: {string.Join(", ", SmmuNames)}.", nameof(name));

    private HostPciDevice DeviceOrThrow(string device) => _host.FindDevice(device)
        ?? throw new ArgumentException($"The emulated host '{_host.Profile.Name}' has no device '{device}'.", nameof(device));
}
