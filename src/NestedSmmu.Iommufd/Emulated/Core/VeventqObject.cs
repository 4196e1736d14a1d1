using System.Buffers.Binary;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// A vEVENTQ (iommufd_veventq, eventq.c): a bounded list of events of one type for one vIOMMU,
/// read through its fd. Lost-events semantics as drivers/iommu/iommufd/eventq.c (iommufd_viommu_report_event): when <see cref="Depth"/> events are
/// queued, one preallocated lost-events header moves to the tail with the next sequence number;
/// a normal event arriving while that header is last removes it, so the loss then shows only as
/// a sequence gap. Sequence numbers run over [0, INT_MAX] and wrap.
/// </summary>
internal sealed class VeventqObject : IommufdObject
{
    private sealed class Pending(VeventFlags flags, byte[] data)
    {
        public VeventFlags Flags { get; } = flags;
        public byte[] Data { get; } = data;
        public uint Sequence { get; set; }
    }

    private readonly LinkedList<Pending> _deliver = new();
    private readonly Pending _lostEventsHeader = new(VeventFlags.LostEvents, []);
    private int _numEvents;
    private uint _sequence;

    public VeventqObject(EmulatedIommufd context, ViommuObject viommu, uint type, uint depth, int fd) : base(context)
    {
        Viommu = viommu;
        QueueType = type;
        Depth = depth;
        Fd = fd;
    }

    public override ObjectType Type => ObjectType.Veventq;
    public ViommuObject Viommu { get; }
    public uint QueueType { get; }
    public uint Depth { get; }
    /// <summary>The fd number IOMMU_VEVENTQ_ALLOC returned.</summary>
    public int Fd { get; }
    /// <summary>The reader while the fd is open (it holds a user).</summary>
    public EmulatedVeventQueue? Reader { get; set; }

    /// <summary>Events lost to overflow since the queue was made (diagnostics).</summary>
    public long LostEvents { get; private set; }

    public bool IsEmpty => _deliver.Count == 0;

    /// <summary>iommufd_viommu_report_event's queueing: the event, or the lost-events header when full.</summary>
    public Errno Report(ReadOnlySpan<byte> data)
    {
        if (_numEvents >= Depth)
        {
            LostEvents++;
            Deliver(_lostEventsHeader);
            return Errno.None;
        }
        _numEvents++;
        Deliver(new Pending(VeventFlags.None, data.ToArray()));
        return Errno.None;
    }

    private void Deliver(Pending vevent)
    {
        // The lost-events header leaves the list when anything (itself included, for a new
        // sequence number) is queued behind it.
        if (_deliver.Last?.Value == _lostEventsHeader) _deliver.RemoveLast();
        vevent.Sequence = _sequence;
        _sequence = Vevent.NextSequence(_sequence);
        _deliver.AddLast(vevent);
    }

    /// <summary>
    /// read(2) on the fd: copies whole records (header, then data for normal events) while they
    /// fit and removes them; returns the bytes written (0 when the first record does not fit).
    /// </summary>
    public int Read(Span<byte> buffer)
    {
        int done = 0;
        while (_deliver.First is { } node)
        {
            Pending p = node.Value;
            bool lost = p == _lostEventsHeader;
            int length = VeventCodec.HeaderSize + (lost ? 0 : p.Data.Length);
            if (length > buffer.Length - done) break;
            BinaryPrimitives.WriteUInt32LittleEndian(buffer[done..], (uint)p.Flags);
            BinaryPrimitives.WriteUInt32LittleEndian(buffer[(done + sizeof(uint))..], p.Sequence);
            if (!lost)
            {
                p.Data.CopyTo(buffer[(done + VeventCodec.HeaderSize)..]);
                _numEvents--;
            }
            _deliver.RemoveFirst();
            done += length;
        }
        return done;
    }

    public override void Destroy()
    {
        Viommu.Veventqs.Remove(this);
        Viommu.Users--;
        _deliver.Clear();
        Reader?.Orphan();
    }
}
