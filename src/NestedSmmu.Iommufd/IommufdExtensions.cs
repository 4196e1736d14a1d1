using System.Buffers;
using System.Buffers.Binary;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd;

/// <summary>
/// Typed conveniences over <see cref="IIommufd"/> for the SMMUv3/CMDQV flows, and non-throwing
/// Try forms for calls whose failure is routine (teardown, probing). Built only on the
/// interface, so every backend gets them.
/// </summary>
public static class IommufdExtensions
{
    /// <summary>Bytes per SMMUv3 command entry (<c>struct iommu_viommu_arm_smmuv3_invalidate</c>).</summary>
    public const int ArmSmmuV3CommandSize = 16;

    /// <summary>IOMMU_HWPT_ALLOC of a paging HWPT on an IOAS (add <see cref="HwptAllocFlags.NestParent"/> for a stage-2 parent).</summary>
    public static HwptId AllocPagingHwpt(this IIommufd iommufd, DeviceId device, IoasId ioas, HwptAllocFlags flags = HwptAllocFlags.None) =>
        iommufd.AllocHwpt(device, ioas, flags, HwptDataType.None, ReadOnlySpan<byte>.Empty);

    /// <summary>IOMMU_HWPT_ALLOC of a nested SMMUv3 HWPT from a guest vSTE, on a nest-parent HWPT or a vIOMMU.</summary>
    public static HwptId AllocNestedHwpt(this IIommufd iommufd, DeviceId device, ObjectId parent, ArmSmmuV3Vste vste,
        HwptAllocFlags flags = HwptAllocFlags.None)
    {
        Span<byte> data = stackalloc byte[ArmSmmuV3Vste.Size];
        vste.WriteTo(data);
        return iommufd.AllocHwpt(device, parent, flags, HwptDataType.ArmSmmuV3, data);
    }

    /// <summary>
    /// IOMMU_HWPT_INVALIDATE with SMMUv3 commands given as 64-bit words, two per command
    /// (cmd[0], cmd[1]), encoded little-endian.
    /// </summary>
    /// <exception cref="ArgumentException">An odd number of words.</exception>
    public static InvalidateResult InvalidateArmSmmuV3(this IIommufd iommufd, ObjectId target, ReadOnlySpan<ulong> commandWords)
    {
        if ((commandWords.Length & 1) != 0)
            throw new ArgumentException($"SMMUv3 commands are two words each; got {commandWords.Length} words.", nameof(commandWords));
        int bytes = commandWords.Length * 8;
        byte[]? rented = null;
        Span<byte> buffer = bytes <= 1024 ? stackalloc byte[bytes] : (rented = ArrayPool<byte>.Shared.Rent(bytes));
        try
        {
            for (int i = 0; i < commandWords.Length; i++)
                BinaryPrimitives.WriteUInt64LittleEndian(buffer[(i * 8)..], commandWords[i]);
            return iommufd.Invalidate(target, HwptInvalidateDataType.ArmSmmuV3, ArmSmmuV3CommandSize,
                (uint)(commandWords.Length / 2), buffer[..bytes]);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// IOMMU_HWPT_INVALIDATE with SMMUv3 <see cref="Command"/>s, as a guest's vSMMU forwards
    /// them: each is encoded with Hardware's codec (cmd[0], cmd[1]), so callers build no words.
    /// </summary>
    public static InvalidateResult InvalidateArmSmmuV3(this IIommufd iommufd, ObjectId target, params ReadOnlySpan<Command> commands)
    {
        ulong[]? rented = null;
        int words = commands.Length * 2;
        Span<ulong> buffer = words <= 128 ? stackalloc ulong[words] : (rented = ArrayPool<ulong>.Shared.Rent(words));
        try
        {
            for (int i = 0; i < commands.Length; i++)
            {
                buffer[2 * i] = commands[i].W0;
                buffer[2 * i + 1] = commands[i].W1;
            }
            return iommufd.InvalidateArmSmmuV3(target, buffer[..words]);
        }
        finally
        {
            if (rented is not null) ArrayPool<ulong>.Shared.Return(rented);
        }
    }

    /// <summary>IOMMU_GET_HW_INFO requesting ARM_SMMUV3, decoded.</summary>
    public static ArmSmmuV3HwInfo GetArmSmmuV3HwInfo(this IIommufd iommufd, DeviceId device) =>
        iommufd.GetHwInfo(device, HwInfoType.ArmSmmuV3).AsArmSmmuV3();

    /// <summary>IOMMU_GET_HW_INFO requesting TEGRA241_CMDQV, decoded (EOPNOTSUPP when the SMMU has no CMDQV).</summary>
    public static Tegra241CmdqvHwInfo GetTegra241CmdqvHwInfo(this IIommufd iommufd, DeviceId device) =>
        iommufd.GetHwInfo(device, HwInfoType.Tegra241Cmdqv).AsTegra241Cmdqv();

    /// <summary>IOMMU_VIOMMU_ALLOC of type TEGRA241_CMDQV with its (zeroed) driver data; the result says where the VINTF page is.</summary>
    public static (ViommuAllocation Viommu, Tegra241CmdqvViommuData Vintf) AllocTegra241CmdqvViommu(
        this IIommufd iommufd, DeviceId device, HwptId nestParent)
    {
        Span<byte> data = stackalloc byte[Tegra241CmdqvViommuData.Size];
        data.Clear();
        ViommuAllocation viommu = iommufd.AllocViommu(device, nestParent, ViommuType.Tegra241Cmdqv, data);
        return (viommu, viommu.AsTegra241Cmdqv());
    }

    /// <summary>mmap of a Tegra241 VINTF page 0 as returned by the vIOMMU.</summary>
    public static IMmioMapping MapVintfPage(this IIommufd iommufd, Tegra241CmdqvViommuData vintf) =>
        iommufd.Mmap(vintf.VintfMmapOffset, vintf.VintfMmapLength);

    /// <summary>Reads until the queue is empty; returns every record in order.</summary>
    public static IReadOnlyList<Vevent> ReadAll(this IVeventQueue queue, int maxBytesPerRead = 4096)
    {
        var all = new List<Vevent>();
        while (true)
        {
            IReadOnlyList<Vevent> batch = queue.Read(maxBytesPerRead);
            if (batch.Count == 0) return all;
            all.AddRange(batch);
        }
    }

    /// <summary>IOMMU_DESTROY that returns the errno instead of throwing (EBUSY and ENOENT are routine in teardown).</summary>
    public static bool TryDestroy(this IIommufd iommufd, ObjectId id, out Errno error) =>
        Try(() => iommufd.Destroy(id), out error);

    /// <summary>IOMMU_IOAS_UNMAP that returns the errno instead of throwing.</summary>
    public static bool TryUnmapIoas(this IIommufd iommufd, IoasId ioas, ulong iova, ulong length, out ulong unmapped, out Errno error)
    {
        ulong result = 0;
        bool ok = Try(() => result = iommufd.UnmapIoas(ioas, iova, length), out error);
        unmapped = result;
        return ok;
    }

    /// <summary>Attach that returns the errno instead of throwing (probing whether a nested HWPT is acceptable).</summary>
    public static bool TryAttachDevice(this IIommufd iommufd, DeviceId device, ObjectId pt, out ObjectId attached, out Errno error)
    {
        ObjectId result = ObjectId.Invalid;
        bool ok = Try(() => result = iommufd.AttachDevice(device, pt), out error);
        attached = result;
        return ok;
    }

    /// <summary>GET_HW_INFO that returns null instead of throwing (probing for an optional type such as TEGRA241_CMDQV).</summary>
    public static HwInfo? TryGetHwInfo(this IIommufd iommufd, DeviceId device, HwInfoType type, out Errno error)
    {
        HwInfo? result = null;
        Try(() => result = iommufd.GetHwInfo(device, type), out error);
        return result;
    }

    private static bool Try(Action call, out Errno error)
    {
        try
        {
            call();
            error = Errno.None;
            return true;
        }
        catch (IommufdException e)
        {
            error = e.Errno;
            return false;
        }
    }
}
