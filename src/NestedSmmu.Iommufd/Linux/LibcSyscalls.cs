using System.Reflection;
using System.Runtime.InteropServices;

namespace NestedSmmu.Iommufd.Linux;

/// <summary>
/// <see cref="ILinuxSyscalls"/> over the C library, through source-generated P/Invoke with
/// errno captured at the call (<c>SetLastError</c>, read back with
/// <see cref="Marshal.GetLastPInvokeError"/>). Interrupted calls (EINTR) are restarted. On a
/// host without a Linux libc every call returns -ENOSYS instead of throwing.
/// </summary>
public sealed unsafe partial class LibcSyscalls : ILinuxSyscalls
{
    /// <summary>The shared instance.</summary>
    public static LibcSyscalls Instance { get; } = new();

    private const string Libc = "libc";
    private const int ENOSYS = (int)Errno.ENOSYS;
    private const int EINTR = (int)Errno.EINTR;

    static LibcSyscalls()
    {
        // "libc" alone resolves to libc.so, which on glibc systems is a linker script (or
        // absent without development packages); name the runtime library explicitly.
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(LibcSyscalls).Assembly, ResolveLibc);
        }
        catch (InvalidOperationException)
        {
            // A resolver was already set for this assembly; it is then responsible for "libc".
        }
    }

    private LibcSyscalls() { }

    private static nint ResolveLibc(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != Libc) return 0;
        foreach (string candidate in (ReadOnlySpan<string>)["libc.so.6", "libc.so", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"])
        {
            if (NativeLibrary.TryLoad(candidate, out nint handle)) return handle;
        }
        return 0;
    }

    private static bool Available => OperatingSystem.IsLinux();

    /// <inheritdoc/>
    public int Open(string path, int flags)
    {
        if (!Available) return -ENOSYS;
        try
        {
            int fd;
            do fd = open(path, flags, 0);
            while (fd < 0 && Marshal.GetLastPInvokeError() == EINTR);
            return fd >= 0 ? fd : -Marshal.GetLastPInvokeError();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return -ENOSYS;
        }
    }

    /// <inheritdoc/>
    public int Close(int fd)
    {
        if (!Available) return -ENOSYS;
        // close(2) must not be retried on EINTR on Linux: the fd is released either way.
        return close(fd) == 0 ? 0 : -Marshal.GetLastPInvokeError();
    }

    /// <inheritdoc/>
    public int Ioctl(int fd, uint request, Span<byte> argument)
    {
        if (!Available) return -ENOSYS;
        fixed (byte* arg = argument)
        {
            int rc;
            do rc = ioctl(fd, request, arg);
            while (rc < 0 && Marshal.GetLastPInvokeError() == EINTR);
            return rc >= 0 ? rc : -Marshal.GetLastPInvokeError();
        }
    }

    /// <inheritdoc/>
    public long Read(int fd, Span<byte> buffer)
    {
        if (!Available) return -ENOSYS;
        fixed (byte* p = buffer)
        {
            nint n;
            do n = read(fd, p, (nuint)buffer.Length);
            while (n < 0 && Marshal.GetLastPInvokeError() == EINTR);
            return n >= 0 ? n : -Marshal.GetLastPInvokeError();
        }
    }

    /// <inheritdoc/>
    public int Poll(int fd, short events, int timeoutMilliseconds)
    {
        if (!Available) return -ENOSYS;
        var pfd = new PollFd { Fd = fd, Events = events };
        int rc;
        do rc = poll(&pfd, 1, timeoutMilliseconds);
        while (rc < 0 && Marshal.GetLastPInvokeError() == EINTR);
        if (rc < 0) return -Marshal.GetLastPInvokeError();
        return rc == 0 ? 0 : (ushort)pfd.Revents;
    }

    /// <inheritdoc/>
    public int Mmap(ulong length, int protection, int flags, int fd, long offset, out nint address)
    {
        address = 0;
        if (!Available) return -ENOSYS;
        nint p = mmap(0, (nuint)length, protection, flags, fd, offset);
        if (p == -1) return -Marshal.GetLastPInvokeError();
        address = p;
        return 0;
    }

    /// <inheritdoc/>
    public int Munmap(nint address, ulong length)
    {
        if (!Available) return -ENOSYS;
        return munmap(address, (nuint)length) == 0 ? 0 : -Marshal.GetLastPInvokeError();
    }

    /// <inheritdoc/>
    public IReadOnlyList<string>? ListDirectory(string path)
    {
        try
        {
            return Directory.Exists(path)
                ? Directory.EnumerateFileSystemEntries(path).Select(System.IO.Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray()
                : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <inheritdoc/>
    public bool Exists(string path) => File.Exists(path) || Directory.Exists(path);

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    // open(2) is variadic; on the Linux ABIs .NET runs on (x86-64, arm64) a variadic int is
    // passed like a fixed one, so declaring the mode argument is safe.
    [LibraryImport(Libc, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags, int mode);

    [LibraryImport(Libc, SetLastError = true)]
    private static partial int close(int fd);

    // ioctl(2) is variadic too: request is unsigned long (glibc) and the argument a pointer.
    [LibraryImport(Libc, SetLastError = true)]
    private static partial int ioctl(int fd, nuint request, void* argument);

    [LibraryImport(Libc, SetLastError = true)]
    private static partial nint read(int fd, void* buffer, nuint count);

    [LibraryImport(Libc, SetLastError = true)]
    private static partial int poll(PollFd* fds, nuint count, int timeout);

    [LibraryImport(Libc, SetLastError = true)]
    private static partial nint mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport(Libc, SetLastError = true)]
    private static partial int munmap(nint address, nuint length);
}
