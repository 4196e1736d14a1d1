namespace NestedSmmu.Iommufd.Linux;

/// <summary>
/// The system calls <see cref="LinuxIommufd"/> makes, behind an interface so the marshalling
/// can be tested: a test substitutes a layer that records each call's arguments (the exact
/// ioctl bytes) and plays the kernel's part. Results follow the kernel's raw convention: a
/// non-negative value on success, <c>-errno</c> on failure; implementations never throw for an
/// errno.
/// </summary>
public interface ILinuxSyscalls
{
    /// <summary>open(2). Returns the fd, or -errno.</summary>
    int Open(string path, int flags);

    /// <summary>close(2). Returns 0, or -errno.</summary>
    int Close(int fd);

    /// <summary>
    /// ioctl(2) with a pointer to <paramref name="argument"/>. The kernel may write the span
    /// back (out fields). User pointers inside the argument stay valid for the call: the caller
    /// pins what they point to. Returns the ioctl's result, or -errno.
    /// </summary>
    int Ioctl(int fd, uint request, Span<byte> argument);

    /// <summary>read(2) into <paramref name="buffer"/>. Returns the bytes read, or -errno.</summary>
    long Read(int fd, Span<byte> buffer);

    /// <summary>poll(2) on one fd. Returns its <c>revents</c> (0 on timeout), or -errno.</summary>
    int Poll(int fd, short events, int timeoutMilliseconds);

    /// <summary>mmap(2) with a kernel-chosen address. Returns 0 and the address, or -errno.</summary>
    int Mmap(ulong length, int protection, int flags, int fd, long offset, out nint address);

    /// <summary>munmap(2). Returns 0, or -errno.</summary>
    int Munmap(nint address, ulong length);

    /// <summary>The entry names of a directory (sysfs lookups), or null when it does not exist.</summary>
    IReadOnlyList<string>? ListDirectory(string path);

    /// <summary>True when a file or directory exists at <paramref name="path"/>.</summary>
    bool Exists(string path);
}

/// <summary>Linux ABI constants the backend uses (the same on x86-64 and arm64).</summary>
public static class LinuxAbi
{
    public const int O_RDWR = 0x2;
    public const int O_CLOEXEC = 0x80000;

    public const int PROT_READ = 0x1;
    public const int PROT_WRITE = 0x2;

    public const int MAP_SHARED = 0x01;
    public const int MAP_PRIVATE = 0x02;
    public const int MAP_ANONYMOUS = 0x20;

    public const short POLLIN = 0x1;
}
