using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd;

/// <summary>
/// A host-kernel call failed with a Linux errno. <see cref="Operation"/> names the call
/// (an ioctl such as <c>IOMMU_HWPT_ALLOC</c>, or <c>open /dev/iommu</c>); the message says
/// what was asked, what the errno means for that call and what to check.
/// </summary>
public class IommufdException : Exception
{
    /// <summary>Creates the exception; the message is built from the parts.</summary>
    /// <param name="errno">The Linux error number.</param>
    /// <param name="operation">The failing call, e.g. <c>IOMMU_VIOMMU_ALLOC</c>.</param>
    /// <param name="detail">The arguments and any hint, or null.</param>
    /// <param name="innerException">The cause, when the failure came from another exception.</param>
    public IommufdException(Errno errno, string operation, string? detail = null, Exception? innerException = null)
        : base(Format(errno, operation, detail), innerException)
    {
        Errno = errno;
        Operation = operation;
        Detail = detail;
    }

    /// <summary>The Linux error number.</summary>
    public Errno Errno { get; }

    /// <summary>The failing call: an ioctl's C name, or a short description (<c>open /dev/iommu</c>).</summary>
    public string Operation { get; }

    /// <summary>The arguments and hint given when the exception was made.</summary>
    public string? Detail { get; }

    /// <summary>
    /// The exception for a failed iommufd ioctl: names the ioctl, lists <paramref name="arguments"/>
    /// and appends what that errno usually means for that ioctl (drivers/iommu/iommufd/*.c).
    /// </summary>
    public static IommufdException ForIoctl(IommufdIoctl ioctl, Errno errno, string arguments)
    {
        string? hint = IommufdErrnoHints.For(ioctl, errno);
        string detail = hint is null ? arguments : $"{arguments}. {hint}";
        return new IommufdException(errno, ioctl.CName(), detail);
    }

    private static string Format(Errno errno, string operation, string? detail) =>
        detail is null
            ? $"{operation} failed: {errno.Name()} ({(int)errno}, {errno.Describe()})"
            : $"{operation} failed: {errno.Name()} ({(int)errno}, {errno.Describe()}): {detail}";
}
