using System.Runtime.InteropServices;
using NestedSmmu.Iommufd.Linux;

namespace NestedSmmu.Iommufd.Tests.Linux;

/// <summary>
/// A system-call layer for marshalling tests: records every call with the exact argument
/// bytes and lets a test play the kernel (write outputs, return -errno). It does not model
/// iommufd; it only shows what LinuxIommufd would hand the real kernel.
/// </summary>
internal sealed unsafe class RecordingSyscalls : ILinuxSyscalls, IDisposable
{
    public const int IommuFd = 3;

    /// <summary>Plays the kernel's side of one ioctl: may write the argument, returns the result or -errno.</summary>
    public delegate int IoctlHandler(IoctlCall call, Span<byte> argument);

    public sealed record IoctlCall(int Fd, uint Request, byte[] Argument)
    {
        /// <summary>Bytes a user pointer in the argument pointed at during the call, keyed by the pointer's offset.</summary>
        public Dictionary<int, byte[]> Pointed { get; } = [];
    }

    public sealed record MmapCall(ulong Length, int Protection, int Flags, int Fd, long Offset, nint Address);

    public List<(string Path, int Flags)> Opens { get; } = [];
    public List<int> Closed { get; } = [];
    public List<IoctlCall> Ioctls { get; } = [];
    public List<MmapCall> Mmaps { get; } = [];
    public List<(nint Address, ulong Length)> Munmaps { get; } = [];

    /// <summary>open(2) results by path; a path not listed gets the next fd from 10.</summary>
    public Dictionary<string, int> OpenResults { get; } = new() { [LinuxIommufd.DefaultPath] = IommuFd };
    public HashSet<string> ExistingPaths { get; } = [];
    public Dictionary<string, string[]> Directories { get; } = [];
    public Queue<byte[]> Reads { get; } = new();
    public int PollResult { get; set; }
    public int MmapError { get; set; }

    public IoctlHandler? OnIoctl { get; set; }

    private int _nextFd = 10;
    private readonly List<nint> _allocations = [];

    public int Open(string path, int flags)
    {
        Opens.Add((path, flags));
        return OpenResults.TryGetValue(path, out int r) ? r : _nextFd++;
    }

    public int Close(int fd)
    {
        Closed.Add(fd);
        return 0;
    }

    public int Ioctl(int fd, uint request, Span<byte> argument)
    {
        var call = new IoctlCall(fd, request, argument.ToArray());
        Ioctls.Add(call);
        return OnIoctl?.Invoke(call, argument) ?? 0;
    }

    public long Read(int fd, Span<byte> buffer)
    {
        if (Reads.Count == 0) return 0;
        byte[] next = Reads.Dequeue();
        next.CopyTo(buffer);
        return next.Length;
    }

    public int Poll(int fd, short events, int timeoutMilliseconds) => PollResult;

    public int Mmap(ulong length, int protection, int flags, int fd, long offset, out nint address)
    {
        address = 0;
        if (MmapError != 0) return -MmapError;
        address = (nint)NativeMemory.AlignedAlloc((nuint)length, 4096);
        NativeMemory.Clear((void*)address, (nuint)length);
        _allocations.Add(address);
        Mmaps.Add(new MmapCall(length, protection, flags, fd, offset, address));
        return 0;
    }

    public int Munmap(nint address, ulong length)
    {
        Munmaps.Add((address, length));
        return 0;
    }

    public IReadOnlyList<string>? ListDirectory(string path) => Directories.TryGetValue(path, out string[]? e) ? e : null;

    public bool Exists(string path) => ExistingPaths.Contains(path) || Directories.ContainsKey(path);

    /// <summary>Reads what a user pointer points at (valid only inside the ioctl call).</summary>
    public static byte[] ReadUser(ulong pointer, int length) =>
        pointer == 0 ? [] : new ReadOnlySpan<byte>((void*)pointer, length).ToArray();

    /// <summary>Writes through a user pointer (valid only inside the ioctl call).</summary>
    public static void WriteUser(ulong pointer, ReadOnlySpan<byte> bytes) =>
        bytes.CopyTo(new Span<byte>((void*)pointer, bytes.Length));

    public void Dispose()
    {
        foreach (nint a in _allocations) NativeMemory.AlignedFree((void*)a);
        _allocations.Clear();
    }
}
