namespace NestedSmmu.Iommufd.Linux;

/// <summary>
/// A register page mmap'ed from /dev/iommu. Accesses are single volatile loads and stores of
/// the access width, as the device requires; out-of-range or misaligned accesses read 0 and
/// are dropped rather than touching memory outside the page.
/// </summary>
internal sealed unsafe class LinuxMmioMapping(ILinuxSyscalls syscalls, nint address, ulong length, ulong offset) : IMmioMapping
{
    private nint _address = address;

    public ulong Size { get; } = length;

    public ulong Offset { get; } = offset;

    public ulong Read(ulong offset, int width)
    {
        if (!Valid(offset, width)) return 0;
        byte* p = (byte*)_address + offset;
        return width == 8 ? Volatile.Read(ref *(ulong*)p) : Volatile.Read(ref *(uint*)p);
    }

    public void Write(ulong offset, int width, ulong value)
    {
        if (!Valid(offset, width)) return;
        byte* p = (byte*)_address + offset;
        if (width == 8) Volatile.Write(ref *(ulong*)p, value);
        else Volatile.Write(ref *(uint*)p, (uint)value);
    }

    public void Dispose()
    {
        nint a = Interlocked.Exchange(ref _address, 0);
        if (a != 0) syscalls.Munmap(a, Size);
    }

    private bool Valid(ulong offset, int width) =>
        _address != 0 && width is 4 or 8 && (offset & (ulong)(width - 1)) == 0 && offset <= Size - (ulong)width;
}
