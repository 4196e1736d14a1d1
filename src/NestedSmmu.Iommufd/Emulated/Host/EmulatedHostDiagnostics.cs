using NestedSmmu.Hardware.Cmdqv;
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

/// <summary>What one Tegra241 CMDQV looks like, at the time of the snapshot.</summary>
/// <param name="Smmu">The SMMU it sits beside.</param>
/// <param name="MmioBase">Base of its register frame on the host bus.</param>
/// <param name="Enabled">STATUS.CMDQV_ENABLED.</param>
/// <param name="Vintfs">VINTFs (from PARAM).</param>
/// <param name="Vcmdqs">VCMDQs in all.</param>
/// <param name="LvcmdqsPerVintf">Logical VCMDQs per VINTF.</param>
/// <param name="SidsPerVintf">SID match/replace slots per VINTF.</param>
/// <param name="Totals">The hardware's counters over every VCMDQ (live).</param>
/// <param name="Interrupts">Error interrupts the kernel took.</param>
/// <param name="HostErrorsHandled">Errors of VINTF0's own queues the kernel skipped.</param>
/// <param name="VintfStates">Every VINTF, by index (VINTF0 is the host's).</param>
public sealed record CmdqvDiagnostics(
    string Smmu,
    ulong MmioBase,
    bool Enabled,
    int Vintfs,
    int Vcmdqs,
    int LvcmdqsPerVintf,
    int SidsPerVintf,
    CmdqvCounters Totals,
    long Interrupts,
    long HostErrorsHandled,
    IReadOnlyList<VintfDiagnostics> VintfStates);

/// <summary>One VINTF of a CMDQV: its registers, the vIOMMU that owns it, its counters.</summary>
/// <param name="Smmu">The SMMU whose CMDQV it belongs to.</param>
/// <param name="Index">The VINTF index.</param>
/// <param name="Enabled">VINTF STATUS.ENABLED.</param>
/// <param name="HypOwn">CONFIG.HYP_OWN: the host's own interface.</param>
/// <param name="Vmid">CONFIG.VMID: what the hardware puts into its guest's TLBIs.</param>
/// <param name="ViommuId">The vIOMMU (in its iommufd context) that owns it; null for VINTF0 or a free VINTF.</param>
/// <param name="MmapOffset">Where its logical page 0 is exported for mmap; null when not exported.</param>
/// <param name="SidSlots">The enabled SID_MATCH slots with their SID_REPLACE values.</param>
/// <param name="LogicalQueues">The global VCMDQ mapped (CMDQ_ALLOC.ALLOCATED) at each logical index, or null.</param>
/// <param name="Counters">The hardware's counters for this VINTF (live; they survive a change of owner).</param>
/// <param name="ErrorEventsReported">TEGRA241_CMDQV vEVENTs queued for its vIOMMU.</param>
/// <param name="ErrorEventsDropped">Error maps dropped for want of a TEGRA241_CMDQV vEVENTQ.</param>
public sealed record VintfDiagnostics(
    string Smmu,
    int Index,
    bool Enabled,
    bool HypOwn,
    ushort Vmid,
    uint? ViommuId,
    ulong? MmapOffset,
    IReadOnlyList<CmdqvSidSlot> SidSlots,
    IReadOnlyList<int?> LogicalQueues,
    CmdqvCounters Counters,
    long ErrorEventsReported,
    long ErrorEventsDropped);

/// <summary>One enabled SID_MATCH/SID_REPLACE pair of a VINTF.</summary>
/// <param name="Slot">The slot index.</param>
/// <param name="Vsid">SID_MATCH.VIRT_SID.</param>
/// <param name="Psid">SID_REPLACE.PHYS_SID.</param>
public readonly record struct CmdqvSidSlot(int Slot, uint Vsid, uint Psid);

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

    /// <summary>
    /// The host driver's CD for substream 0 of a device (what a stage-1 paging domain's STE makes
    /// the SMMU fetch), read from host memory; null while the device has no CD table.
    /// </summary>
    /// <exception cref="ArgumentException">No such device.</exception>
    public ContextDescriptor? ReadHostCd(string device)
    {
        lock (_host.KernelLock)
        {
            HostPciDevice d = DeviceOrThrow(device);
            if (d.Master.CdTable?.ExistingCdAddress(0) is not { } address) return null;
            Span<ulong> w = stackalloc ulong[ContextDescriptor.Words];
            for (int i = 0; i < w.Length; i++) w[i] = _host.Memory.ReadUInt64(address + (ulong)(i * sizeof(ulong)));
            return ContextDescriptor.FromWords(w);
        }
    }

    /// <summary>The ASIDs of the host's stage-1 paging domains, ascending (one space for every SMMU, as arm_smmu_asid_xa).</summary>
    public IReadOnlyList<ushort> AsidsInUse
    {
        get
        {
            lock (_host.KernelLock) return [.. _host.Asids.InUse];
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

    /// <summary>A snapshot of the Tegra241 CMDQV beside <paramref name="smmu"/>, or null when it has none.</summary>
    /// <exception cref="ArgumentException">No SMMU has that name.</exception>
    public CmdqvDiagnostics? Cmdqv(string smmu)
    {
        lock (_host.KernelLock) return CmdqvOf(SmmuOrThrow(smmu))?.Snapshot();
    }

    /// <summary>The VINTF a TEGRA241_CMDQV vIOMMU of <paramref name="context"/> owns, or null (another type, or no such vIOMMU).</summary>
    public VintfDiagnostics? CmdqvVintfOf(EmulatedIommufd context, ViommuId viommu)
    {
        ArgumentNullException.ThrowIfNull(context);
        lock (_host.KernelLock)
        {
            if (context.FindViommu(viommu.Value)?.Driver is not Tegra241CmdqvVintf { Index: >= 0 } vintf) return null;
            return vintf.Cmdqv.Snapshot(vintf.Index);
        }
    }

    /// <summary>The hardware counters of global VCMDQ <paramref name="queue"/> of the CMDQV beside <paramref name="smmu"/> (live).</summary>
    /// <exception cref="ArgumentException">No such SMMU, or it has no CMDQV.</exception>
    /// <exception cref="ArgumentOutOfRangeException">No such VCMDQ.</exception>
    public CmdqvCounters CmdqvQueueCounters(string smmu, int queue)
    {
        lock (_host.KernelLock) return CmdqvOrThrow(smmu).Hardware.QueueCounters(queue);
    }

    /// <summary>
    /// Reads a 32-bit register of the CMDQV beside <paramref name="smmu"/> at frame offset
    /// <paramref name="offset"/> (reads have no side effects on this hardware).
    /// </summary>
    /// <exception cref="ArgumentException">No such SMMU, or it has no CMDQV.</exception>
    public uint ReadCmdqvRegister(string smmu, ulong offset)
    {
        lock (_host.KernelLock) return CmdqvOrThrow(smmu).Read32(offset);
    }

    /// <summary>Reads a 64-bit register (a VCMDQ BASE, an LVCMDQ_ERR_MAP_64) of the CMDQV beside <paramref name="smmu"/>.</summary>
    /// <exception cref="ArgumentException">No such SMMU, or it has no CMDQV.</exception>
    public ulong ReadCmdqvRegister64(string smmu, ulong offset)
    {
        lock (_host.KernelLock) return CmdqvOrThrow(smmu).Read64(offset);
    }

    /// <summary>Every table entry the SMMU's walk cache holds now (one per cached table descriptor).</summary>
    public IReadOnlyList<WalkCacheEntry> WalkCacheEntries(string smmu)
    {
        lock (_host.KernelLock) return SmmuOrThrow(smmu).Hardware.WalkCache.Entries;
    }

    /// <summary>
    /// Calls <paramref name="observer"/> with every command a VINTF of any CMDQV admits, before the SMMU
    /// executes it (the SMMU's name first); disposing the result stops it.
    /// </summary>
    public IDisposable ObserveVintfCommands(Action<string, VintfCommand> observer)
    {
        ArgumentNullException.ThrowIfNull(observer);
        lock (_host.KernelLock)
        {
            var hooks = new List<(Tegra241Cmdqv Hardware, Action<VintfCommand> Hook)>();
            foreach (string name in SmmuNames)
            {
                if (CmdqvOf(SmmuOrThrow(name)) is not { } cmdqv) continue;
                Action<VintfCommand> hook = c => observer(name, c);
                cmdqv.Hardware.CommandAdmitted += hook;
                hooks.Add((cmdqv.Hardware, hook));
            }
            return new Unsubscriber(() =>
            {
                lock (_host.KernelLock)
                    foreach (var (hw, hook) in hooks) hw.CommandAdmitted -= hook;
            });
        }
    }

    /// <summary>
    /// Checks one iommufd context's object table: every object's user count equals the references the
    /// live objects hold to it (iommufd's refcounts), and every reference points at a live object. Null
    /// when consistent, else what is wrong.
    /// </summary>
    public string? ObjectTableProblem(EmulatedIommufd context)
    {
        ArgumentNullException.ThrowIfNull(context);
        lock (_host.KernelLock) return ObjectTableCheck.Problem(context);
    }

    private sealed class Unsubscriber(Action dispose) : IDisposable
    {
        private Action? _dispose = dispose;

        public void Dispose()
        {
            _dispose?.Invoke();
            _dispose = null;
        }
    }

    /// <summary>Translations the device's ATC holds now (0 without ATS).</summary>
    public int AtcEntries(string device)
    {
        lock (_host.KernelLock) return DeviceOrThrow(device).Endpoint.Atc.Count;
    }

    /// <summary>ATC invalidations that reached the device's ATC.</summary>
    public long AtcInvalidations(string device)
    {
        lock (_host.KernelLock) return DeviceOrThrow(device).Endpoint.Atc.Invalidations;
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

    /// <summary>
    /// Host memory held by the masters' CD tables. The driver makes a master's CD table with its
    /// first stage-1 attachment and keeps it for the device's life (Linux frees it only in
    /// arm_smmu_release_device), so it outlives contexts and is left out of leak checks.
    /// </summary>
    public ulong CdTableBytes
    {
        get
        {
            lock (_host.KernelLock) return _host.Devices.Aggregate(0UL, (sum, d) => sum + (d.Master.CdTable?.Bytes ?? 0));
        }
    }

    /// <summary>Bytes of host memory the kernel and the VMM hold.</summary>
    public ulong HostMemoryAllocated
    {
        get
        {
            lock (_host.KernelLock) return _host.Allocator.BytesAllocated;
        }
    }

    /// <summary>
    /// Host memory held on behalf of iommufd contexts and the VMM: <see cref="HostMemoryAllocated"/>
    /// without the per-device state the driver keeps for the device's life (<see cref="CdTableBytes"/>).
    /// What a leak check compares: a context or VM torn down must bring this back to where it was.
    /// </summary>
    public ulong HostMemoryHeldForContexts
    {
        get
        {
            lock (_host.KernelLock) return _host.Allocator.BytesAllocated - CdTableBytes;
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

    /// <summary>Kernel log lines ever written (the log keeps only the newest; this counts them all).</summary>
    public long KernelLogLinesWritten
    {
        get
        {
            lock (_host.KernelLock) return _host.LogLinesWritten;
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

    private static Tegra241CmdqvHostDriver? CmdqvOf(ArmSmmuDevice smmu) => smmu.Implementation as Tegra241CmdqvHostDriver;

    private Tegra241CmdqvHostDriver CmdqvOrThrow(string smmu) => CmdqvOf(SmmuOrThrow(smmu))
        ?? throw new ArgumentException($"SMMU '{smmu}' of the emulated host '{_host.Profile.Name}' has no Tegra241 CMDQV.", nameof(smmu));

    private HostPciDevice DeviceOrThrow(string device) => _host.FindDevice(device)
        ?? throw new ArgumentException($"The emulated host '{_host.Profile.Name}' has no device '{device}'.", nameof(device));
}
