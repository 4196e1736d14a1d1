namespace NestedSmmu.Iommufd;

/// <summary>
/// Linux error numbers (asm-generic/errno-base.h and errno.h; the same on x86-64 and arm64)
/// that iommufd and VFIO return. Values are the real ones so a real errno maps 1:1.
/// </summary>
public enum Errno
{
    /// <summary>No error.</summary>
    None = 0,
    EPERM = 1,
    ENOENT = 2,
    EINTR = 4,
    EIO = 5,
    ENXIO = 6,
    E2BIG = 7,
    EBADF = 9,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    ENODEV = 19,
    EINVAL = 22,
    ENOTTY = 25,
    ENOSPC = 28,
    ESPIPE = 29,
    ERANGE = 34,
    ENOSYS = 38,
    EOVERFLOW = 75,
    EMSGSIZE = 90,
    EOPNOTSUPP = 95,
    EADDRINUSE = 98,
    ETIMEDOUT = 110,
}

/// <summary>Text for <see cref="Errno"/> values, as strerror(3) words them.</summary>
public static class ErrnoExtensions
{
    /// <summary>The strerror(3) text, or "errno N" for a value this enum does not name.</summary>
    public static string Describe(this Errno errno) => errno switch
    {
        Errno.None => "Success",
        Errno.EPERM => "Operation not permitted",
        Errno.ENOENT => "No such file or directory",
        Errno.EINTR => "Interrupted system call",
        Errno.EIO => "Input/output error",
        Errno.ENXIO => "No such device or address",
        Errno.E2BIG => "Argument list too long",
        Errno.EBADF => "Bad file descriptor",
        Errno.EAGAIN => "Resource temporarily unavailable",
        Errno.ENOMEM => "Cannot allocate memory",
        Errno.EACCES => "Permission denied",
        Errno.EFAULT => "Bad address",
        Errno.EBUSY => "Device or resource busy",
        Errno.EEXIST => "File exists",
        Errno.ENODEV => "No such device",
        Errno.EINVAL => "Invalid argument",
        Errno.ENOTTY => "Inappropriate ioctl for device",
        Errno.ENOSPC => "No space left on device",
        Errno.ESPIPE => "Illegal seek",
        Errno.ERANGE => "Numerical result out of range",
        Errno.ENOSYS => "Function not implemented",
        Errno.EOVERFLOW => "Value too large for defined data type",
        Errno.EMSGSIZE => "Message too long",
        Errno.EOPNOTSUPP => "Operation not supported",
        Errno.EADDRINUSE => "Address already in use",
        Errno.ETIMEDOUT => "Connection timed out",
        _ => $"errno {(int)errno}",
    };

    /// <summary>The symbolic name (EINVAL), or the number for a value this enum does not name.</summary>
    public static string Name(this Errno errno) =>
        Enum.IsDefined(errno) ? errno.ToString() : ((int)errno).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
