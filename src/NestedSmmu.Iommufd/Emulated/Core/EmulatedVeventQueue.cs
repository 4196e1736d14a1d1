using System.Buffers;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// The reader side of an emulated vEVENTQ: the fd IOMMU_VEVENTQ_ALLOC returned. Reads go through
/// the same byte stream a real fd yields (<see cref="VeventCodec"/>). Deterministic: events
/// arrive synchronously with the DMA that caused them, so <see cref="WaitForEvents"/> never waits.
/// Safe to use from a reader thread beside the VMM thread (calls take the host's kernel lock).
/// </summary>
public sealed class EmulatedVeventQueue : IVeventQueue
{
    /// <summary>Data bytes of a selftest vEVENT (<c>struct iommu_viommu_event_selftest { __u32 virt_id; }</c>).</summary>
    private const int SelftestEventSize = sizeof(uint);

    private readonly EmulatedHost _host;
    private VeventqObject? _queue;
    private bool _disposed;

    internal EmulatedVeventQueue(EmulatedHost host, VeventqObject queue)
    {
        _host = host;
        _queue = queue;
        Id = new VeventqId(queue.Id);
        Type = (VeventqType)queue.QueueType;
        Depth = queue.Depth;
        FileDescriptor = queue.Fd;
    }

    /// <inheritdoc/>
    public VeventqId Id { get; }

    /// <inheritdoc/>
    public VeventqType Type { get; }

    /// <inheritdoc/>
    public uint Depth { get; }

    /// <summary>The (emulated) fd number IOMMU_VEVENTQ_ALLOC returned.</summary>
    public int FileDescriptor { get; }

    /// <inheritdoc/>
    public bool HasEvents
    {
        get
        {
            lock (_host.KernelLock) return !Queue().IsEmpty;
        }
    }

    /// <inheritdoc/>
    public IReadOnlyList<Vevent> Read(int maxBytes = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, VeventCodec.HeaderSize);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(maxBytes);
        try
        {
            int n;
            lock (_host.KernelLock) n = Queue().Read(buffer.AsSpan(0, maxBytes));
            var events = new List<Vevent>();
            VeventCodec.Parse(buffer.AsSpan(0, n), DataLength(Type), events);
            return events;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <inheritdoc/>
    public bool WaitForEvents(TimeSpan timeout) => HasEvents;

    /// <summary>Closes the fd: the queue object may then be destroyed.</summary>
    public void Dispose()
    {
        lock (_host.KernelLock)
        {
            if (_disposed) return;
            _disposed = true;
            if (_queue is { } q)
            {
                q.Reader = null;
                q.Users--;
            }
            _queue = null;
        }
    }

    /// <summary>The queue object was destroyed under the open fd (its context closed).</summary>
    internal void Orphan() => _queue = null;

    private VeventqObject Queue()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _queue ?? throw new ObjectDisposedException(nameof(EmulatedVeventQueue),
            $"vEVENTQ {Id}'s iommufd context was closed: its queue is gone.");
    }

    private static int DataLength(VeventqType type) => VeventCodec.DataLength(type) ?? (type == (VeventqType)SelftestTypes.VeventqTypeSelftest ? SelftestEventSize : 0);
}
