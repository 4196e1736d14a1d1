namespace NestedSmmu.Iommufd.Emulated;

/// <summary>Driver data passed by pointer (struct iommu_user_data).</summary>
internal readonly record struct UserData(uint Type, ulong Uptr, uint Length);

/// <summary>An array of driver entries passed by pointer (struct iommu_user_data_array).</summary>
internal readonly record struct UserDataArray(uint Type, ulong Uptr, uint EntryLength, uint EntryCount);

/// <summary>
/// The kernel's user-copy helpers over the emulated VMM address space, with their errno rules:
/// copy_from_user / copy_to_user (EFAULT), copy_struct_from_user (a shorter user struct is
/// zero-extended; a longer one must be zero past the kernel's struct, else E2BIG), and the
/// iommu_copy_struct_* wrappers (type and length checks first, EINVAL).
/// </summary>
internal sealed class UserCopy(UserAddressSpace user)
{
    public UserAddressSpace User { get; } = user;

    public Errno FromUser(ulong uptr, Span<byte> destination) => User.TryRead(uptr, destination) ? Errno.None : Errno.EFAULT;

    public Errno ToUser(ulong uptr, ReadOnlySpan<byte> source) => User.TryWrite(uptr, source) ? Errno.None : Errno.EFAULT;

    /// <summary>Bytes moved per step when the kernel walks a long user range (one page).</summary>
    private const int Chunk = (int)HostMemoryAllocator.PageSize;

    /// <summary>clear_user.</summary>
    public Errno ClearUser(ulong uptr, ulong length)
    {
        ReadOnlySpan<byte> zeros = stackalloc byte[Chunk];
        for (ulong done = 0; done < length;)
        {
            int n = (int)Math.Min((ulong)Chunk, length - done);
            if (uptr > ulong.MaxValue - done || !User.TryWrite(uptr + done, zeros[..n])) return Errno.EFAULT;
            done += (ulong)n;
        }
        return Errno.None;
    }

    /// <summary>check_zeroed_user: 1 when every byte is zero, 0 when not, or EFAULT.</summary>
    private Errno CheckZeroedUser(ulong uptr, ulong length, out bool zeroed)
    {
        zeroed = false;
        Span<byte> buffer = stackalloc byte[Chunk];
        for (ulong done = 0; done < length;)
        {
            int n = (int)Math.Min((ulong)Chunk, length - done);
            if (uptr > ulong.MaxValue - done || !User.TryRead(uptr + done, buffer[..n])) return Errno.EFAULT;
            if (buffer[..n].ContainsAnyExcept((byte)0)) return Errno.None;
            done += (ulong)n;
        }
        zeroed = true;
        return Errno.None;
    }

    /// <summary>copy_struct_from_user: <paramref name="destination"/> is the kernel struct.</summary>
    public Errno StructFromUser(Span<byte> destination, ulong uptr, ulong userSize)
    {
        ulong kernelSize = (ulong)destination.Length;
        if (userSize < kernelSize)
        {
            destination[(int)userSize..].Clear();
            return FromUser(uptr, destination[..(int)userSize]);
        }
        if (userSize > kernelSize)
        {
            if (uptr > ulong.MaxValue - kernelSize) return Errno.EFAULT;
            Errno e = CheckZeroedUser(uptr + kernelSize, userSize - kernelSize, out bool zeroed);
            if (e != Errno.None) return e;
            if (!zeroed) return Errno.E2BIG;
        }
        return FromUser(uptr, destination);
    }

    /// <summary>
    /// __iommu_copy_struct_from_user: EINVAL on a type mismatch or a length below
    /// <paramref name="minLength"/> or above the kernel struct; then copy_struct_from_user.
    /// </summary>
    public Errno StructFromUser(in UserData data, uint type, Span<byte> destination, int minLength)
    {
        if (data.Type != type) return Errno.EINVAL;
        if (data.Length < minLength || data.Length > destination.Length) return Errno.EINVAL;
        return StructFromUser(destination, data.Uptr, data.Length);
    }

    /// <summary>__iommu_copy_struct_to_user: the same checks, then copy_to_user of the user's length.</summary>
    public Errno StructToUser(in UserData data, uint type, ReadOnlySpan<byte> source, int minLength)
    {
        if (data.Type != type) return Errno.EINVAL;
        if (data.Length < minLength || data.Length > source.Length) return Errno.EINVAL;
        return ToUser(data.Uptr, source[..(int)data.Length]);
    }

    /// <summary>
    /// iommu_copy_struct_from_full_user_array: EINVAL on a type mismatch or no entries; then
    /// every entry through copy_struct_from_user into <paramref name="entrySize"/>-byte slots.
    /// </summary>
    public Errno FullArrayFromUser(in UserDataArray array, uint type, Span<byte> destination, int entrySize)
    {
        if (array.Type != type) return Errno.EINVAL;
        if (array.EntryCount == 0) return Errno.EINVAL;
        for (uint i = 0; i < array.EntryCount; i++)
        {
            ulong offset = (ulong)array.EntryLength * i;
            if (array.Uptr > ulong.MaxValue - offset) return Errno.EFAULT;
            Errno e = StructFromUser(destination.Slice((int)i * entrySize, entrySize), array.Uptr + offset, array.EntryLength);
            if (e != Errno.None) return e;
        }
        return Errno.None;
    }
}
