using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd;

/// <summary>
/// A vEVENTQ as its reader sees it: the fd IOMMU_VEVENTQ_ALLOC returned. Reading removes
/// events. Disposing closes the reader; the queue object itself lives until
/// <see cref="IIommufd.Destroy"/> (which fails with EBUSY while the reader is open) or until
/// the iommufd closes.
/// </summary>
public interface IVeventQueue : IDisposable
{
    /// <summary><c>out_veventq_id</c>.</summary>
    VeventqId Id { get; }

    /// <summary>The queue's type, which fixes the data format of its events.</summary>
    VeventqType Type { get; }

    /// <summary>The depth it was allocated with: more pending events than this collapse into a lost-events record.</summary>
    uint Depth { get; }

    /// <summary>True when a read would return at least one record (poll(2) POLLIN). Never blocks.</summary>
    bool HasEvents { get; }

    /// <summary>
    /// One read(2) of up to <paramref name="maxBytes"/>: the whole records that fit, oldest
    /// first; empty when the queue is empty or the first record does not fit. Never blocks.
    /// </summary>
    /// <exception cref="IommufdException">The read failed (EFAULT, EINVAL for a tiny buffer on newer kernels).</exception>
    IReadOnlyList<Vevent> Read(int maxBytes = 4096);

    /// <summary>
    /// Waits until <see cref="HasEvents"/> or the timeout passes; returns <see cref="HasEvents"/>.
    /// The emulated host is deterministic and returns at once.
    /// </summary>
    bool WaitForEvents(TimeSpan timeout);
}
