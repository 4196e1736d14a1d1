using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Emulated;

// The iommufd core of one open context: the object table (an xarray: IDs from 1, lowest free
// first, tombstones for force-destroyed vDEVICEs) and the ioctl dispatcher of main.c with its
// size rules. Handlers live in the other EmulatedIommufd.*.cs files.
public sealed partial class EmulatedIommufd
{
    /// <summary>xa_limit_31b: object IDs are below 2^31.</summary>
    private const uint MaxObjectId = int.MaxValue;

    // null value: a tombstone (the ID stays taken, DESTROY says ENOENT).
    private readonly SortedDictionary<uint, IommufdObject?> _objects = new();

    private delegate int Handler(EmulatedIommufd ctx, Span<byte> cmd, ref bool respond);

    /// <summary>One row of the ioctl table: the kernel's struct size, its min_size and the handler.</summary>
    private sealed record IoctlOp(IommufdIoctl Request, int Size, int MinSize, Handler Execute);

    private static readonly Dictionary<byte, IoctlOp> Ops = BuildOps();

    private static Dictionary<byte, IoctlOp> BuildOps()
    {
        var ops = new Dictionary<byte, IoctlOp>();
        void Add<T>(IommufdIoctl request, int minSize, Handler handler) where T : unmanaged =>
            ops.Add(request.CommandNumber(), new IoctlOp(request, Unsafe.SizeOf<T>(), minSize, handler));
        // min_size is offsetofend of the last field each command had when it was introduced (drivers/iommu/iommufd/main.c, iommufd_ioctl_ops).
        Add<IommuDestroy>(IommufdIoctl.Destroy, 8, static (c, b, ref r) => c.DestroyIoctl(ref As<IommuDestroy>(b), ref r));
        Add<IommuIoasAlloc>(IommufdIoctl.IoasAlloc, 12, static (c, b, ref r) => c.IoasAllocIoctl(ref As<IommuIoasAlloc>(b), ref r));
        Add<IommuIoasIovaRanges>(IommufdIoctl.IoasIovaRanges, 32, static (c, b, ref r) => c.IoasIovaRangesIoctl(ref As<IommuIoasIovaRanges>(b), ref r));
        Add<IommuIoasMap>(IommufdIoctl.IoasMap, 40, static (c, b, ref r) => c.IoasMapIoctl(ref As<IommuIoasMap>(b), ref r));
        Add<IommuIoasUnmap>(IommufdIoctl.IoasUnmap, 24, static (c, b, ref r) => c.IoasUnmapIoctl(ref As<IommuIoasUnmap>(b), ref r));
        Add<IommuHwptAlloc>(IommufdIoctl.HwptAlloc, 24, static (c, b, ref r) => c.HwptAllocIoctl(ref As<IommuHwptAlloc>(b), ref r));
        Add<IommuHwInfo>(IommufdIoctl.GetHwInfo, 32, static (c, b, ref r) => c.GetHwInfoIoctl(ref As<IommuHwInfo>(b), ref r));
        Add<IommuHwptInvalidate>(IommufdIoctl.HwptInvalidate, 32, static (c, b, ref r) => c.HwptInvalidateIoctl(ref As<IommuHwptInvalidate>(b), ref r));
        Add<IommuViommuAlloc>(IommufdIoctl.ViommuAlloc, 24, static (c, b, ref r) => c.ViommuAllocIoctl(ref As<IommuViommuAlloc>(b), ref r));
        Add<IommuVdeviceAlloc>(IommufdIoctl.VdeviceAlloc, 24, static (c, b, ref r) => c.VdeviceAllocIoctl(ref As<IommuVdeviceAlloc>(b), ref r));
        Add<IommuVeventqAlloc>(IommufdIoctl.VeventqAlloc, 28, static (c, b, ref r) => c.VeventqAllocIoctl(ref As<IommuVeventqAlloc>(b), ref r));
        Add<IommuHwQueueAlloc>(IommufdIoctl.HwQueueAlloc, 40, static (c, b, ref r) => c.HwQueueAllocIoctl(ref As<IommuHwQueueAlloc>(b), ref r));
        return ops;
    }

    private static ref T As<T>(Span<byte> b) where T : unmanaged => ref MemoryMarshal.AsRef<T>(b);

    /// <summary>
    /// ioctl(2) on the iommufd: <paramref name="request"/> is <c>0x3B00 | nr</c>, and
    /// <paramref name="argument"/> is the user's struct (its first four bytes are <c>size</c>).
    /// Returns 0 or <c>-errno</c>, never throws for a caller's mistake. The dispatcher applies
    /// main.c's rules: an unknown number is ENOTTY; a <c>size</c> below the command's min_size is
    /// EINVAL; non-zero bytes past the kernel's struct are E2BIG; a <c>size</c> past the end of
    /// <paramref name="argument"/> is EFAULT; on return min(size, kernel size) bytes are copied
    /// back. User pointers inside the struct name memory in <see cref="EmulatedHost.UserMemory"/>.
    /// Commands this model does not implement (IOAS_ALLOW_IOVAS, IOAS_COPY, OPTION, VFIO_IOAS,
    /// dirty tracking, FAULT_QUEUE_ALLOC, IOAS_MAP_FILE, IOAS_CHANGE_PROCESS) give EOPNOTSUPP.
    /// </summary>
    public int Ioctl(uint request, Span<byte> argument)
    {
        lock (_host.KernelLock)
        {
            if (_closed) return -(int)Errno.EBADF;
            if ((request & ~(uint)byte.MaxValue) != IommufdIoctls.Base) return -(int)Errno.ENOTTY;
            byte nr = (byte)request;
            if (!Ops.TryGetValue(nr, out IoctlOp? op))
                return Enum.IsDefined((IommufdIoctl)request) ? -(int)Errno.EOPNOTSUPP : -(int)Errno.ENOTTY;
            if (argument.Length < sizeof(uint)) return -(int)Errno.EFAULT;
            uint userSize = BinaryPrimitives.ReadUInt32LittleEndian(argument);
            if (userSize < op.MinSize) return -(int)Errno.EINVAL;
            if (userSize > (uint)argument.Length) return -(int)Errno.EFAULT;
            Span<byte> cmd = stackalloc byte[op.Size];
            cmd.Clear();
            int copy = (int)Math.Min(userSize, (uint)op.Size);
            argument[..copy].CopyTo(cmd);
            if (userSize > op.Size && argument[op.Size..(int)userSize].ContainsAnyExcept((byte)0)) return -(int)Errno.E2BIG;
            bool respond = false;
            int rc = op.Execute(this, cmd, ref respond);
            if (respond) cmd[..copy].CopyTo(argument);
            return rc;
        }
    }

    // ------------------------------------------------------------------ object table

    /// <summary>xa_alloc: the lowest free ID from 1.</summary>
    private uint AllocId(IommufdObject obj)
    {
        uint id = 1;
        foreach (uint used in _objects.Keys)
        {
            if (used != id) break;
            id++;
        }
        if (id > MaxObjectId) throw new IommufdException(Errno.ENOSPC, "iommufd object", "object IDs exhausted");
        _objects.Add(id, obj);
        obj.Id = id;
        return id;
    }

    /// <summary>Undoes <see cref="AllocId"/> for an object whose creation failed (iommufd_object_abort).</summary>
    private void AbortObject(IommufdObject obj) => _objects.Remove(obj.Id);

    /// <summary>iommufd_get_object with a type: ENOENT when missing, a tombstone or of another type.</summary>
    private T? Get<T>(uint id, ObjectType type, out Errno error) where T : IommufdObject
    {
        if (_objects.TryGetValue(id, out IommufdObject? obj) && obj is not null && obj.Type == type)
        {
            error = Errno.None;
            return (T)obj;
        }
        error = Errno.ENOENT;
        return null;
    }

    /// <summary>iommufd_get_object(IOMMUFD_OBJ_ANY).</summary>
    private IommufdObject? GetAny(uint id) => _objects.TryGetValue(id, out IommufdObject? obj) ? obj : null;

    /// <summary>Removes and destroys an object nothing uses.</summary>
    private void RemoveAndDestroy(IommufdObject obj)
    {
        _objects.Remove(obj.Id);
        obj.Destroy();
    }

    /// <summary>Replaces an object by a tombstone: its ID stays taken until the context closes.</summary>
    private void Tombstone(IommufdObject obj)
    {
        _objects[obj.Id] = null;
        obj.Destroy();
    }

    // ------------------------------------------------------------------ IOMMU_DESTROY

    private int DestroyIoctl(ref IommuDestroy cmd, ref bool respond)
    {
        IommufdObject? obj = GetAny(cmd.Id);
        if (obj is null) return -(int)Errno.ENOENT;
        if (obj.Users > 0) return -(int)Errno.EBUSY;
        RemoveAndDestroy(obj);
        return 0;
    }

    /// <summary>
    /// iommufd_fops_release: every remaining object is destroyed leaves first (repeatedly, in ID
    /// order, whatever has no users), then tombstones go.
    /// </summary>
    private void DestroyAll()
    {
        while (true)
        {
            int destroyed = 0;
            bool any = false;
            foreach (var (id, obj) in _objects.ToList())
            {
                if (obj is null) continue;
                any = true;
                if (obj.Users > 0) continue;
                RemoveAndDestroy(obj);
                destroyed++;
            }
            if (!any) break;
            if (destroyed == 0)
            {
                _host.Log($"iommufd context {_contextId}: objects still in use at close: {string.Join(", ", _objects.Values.Where(o => o is not null))}");
                break;
            }
        }
        _objects.Clear();
    }

    /// <summary>Objects in the table (tombstones excluded), for diagnostics.</summary>
    internal IEnumerable<IommufdObject> LiveObjects => _objects.Values.Where(o => o is not null)!;

    internal static int Fail(Errno e) => -(int)e;
}
