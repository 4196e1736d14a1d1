using System.Buffers;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Linux;

/// <summary>A vEVENTQ read through the fd IOMMU_VEVENTQ_ALLOC returned.</summary>
internal sealed class LinuxVeventQueue(ILinuxSyscalls syscalls, int fd, VeventqId id, VeventqType type, uint depth) : IVeventQueue
{
    private int _fd = fd;

    public VeventqId Id { get; } = id;
    public VeventqType Type { get; } = type;
    public uint Depth { get; } = depth;

    public bool HasEvents => Poll(0);

    public bool WaitForEvents(TimeSpan timeout)
    {
        long ms = (long)Math.Ceiling(timeout.TotalMilliseconds);
        return Poll((int)Math.Clamp(ms, 0, int.MaxValue));
    }

    public IReadOnlyList<Vevent> Read(int maxBytes = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, VeventCodec.HeaderSize);
        int fdNow = CheckOpen();
        int dataLength = VeventCodec.DataLength(Type)
            ?? throw new InvalidOperationException($"vEVENTQ {Id} has type {Type} ({(uint)Type}), whose event size this model does not know.");
        byte[] buffer = ArrayPool<byte>.Shared.Rent(maxBytes);
        try
        {
            long n = syscalls.Read(fdNow, buffer.AsSpan(0, maxBytes));
            if (n == -(long)Errno.EAGAIN) return [];
            if (n < 0) throw new IommufdException((Errno)(-n), $"read vEVENTQ {Id}", $"fd {fdNow}, {maxBytes} bytes");
            var events = new List<Vevent>();
            VeventCodec.Parse(buffer.AsSpan(0, (int)n), dataLength, events);
            return events;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public void Dispose()
    {
        int f = Interlocked.Exchange(ref _fd, -1);
        if (f >= 0) syscalls.Close(f);
    }

    private bool Poll(int timeoutMs)
    {
        int rc = syscalls.Poll(CheckOpen(), LinuxAbi.POLLIN, timeoutMs);
        if (rc < 0) throw new IommufdException((Errno)(-rc), $"poll vEVENTQ {Id}");
        return (rc & LinuxAbi.POLLIN) != 0;
    }

    private int CheckOpen()
    {
        int f = _fd;
        ObjectDisposedException.ThrowIf(f < 0, this);
        return f;
    }
}
