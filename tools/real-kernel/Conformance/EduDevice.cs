using System.Buffers.Binary;
using System.Runtime.InteropServices;
using NestedSmmu.Iommufd;

namespace NestedSmmu.Conformance;

/// <summary>
/// QEMU's edu device (hw/misc/edu.c) driven through its VFIO cdev: enables bus mastering in the
/// command register, then starts one DMA read of 4 bytes from an IOVA into the device's buffer.
/// The DMA runs from a QEMU timer (100 ms); the call returns once the device reports it done.
/// </summary>
internal static partial class EduDevice
{
    // VFIO_DEVICE_GET_REGION_INFO: _IO(';', VFIO_BASE + 8) (include/uapi/linux/vfio.h)
    private const uint GetRegionInfo = (';' << 8) | (100 + 8);
    private const int RegionInfoSize = 32;
    private const int RegionInfoOffsetField = 24;
    private const uint ConfigRegionIndex = 7; // VFIO_PCI_CONFIG_REGION_INDEX
    private const uint Bar0RegionIndex = 0;   // VFIO_PCI_BAR0_REGION_INDEX

    private const long PciCommand = 0x04;
    private const ushort PciCommandMemory = 1 << 1;
    private const ushort PciCommandMaster = 1 << 2;

    // edu BAR0 registers (hw/misc/edu.c): DMA source, destination, count, command; its buffer
    private const long DmaSource = 0x80, DmaDestination = 0x88, DmaCount = 0x90, DmaCommand = 0x98;
    private const ulong DmaStart = 1;        // EDU_DMA_RUN
    private const ulong DmaToBus = 2;        // EDU_DMA_DIR: 0 from the bus into the buffer, 1 from the buffer to the bus
    private const ulong EduBuffer = 0x40000; // DMA_START: the device's own 4 KiB buffer
    private const ulong Bytes = 4;

    /// <summary>A DMA read of 4 bytes at <paramref name="iova"/> into the device's buffer.</summary>
    public static void DmaRead(int deviceFd, ulong iova) => Run(deviceFd, iova, EduBuffer, Bytes, toBus: false);

    /// <summary>A DMA read of <paramref name="length"/> bytes into the device's buffer, then a DMA write of them.</summary>
    public static void Copy(int deviceFd, ulong from, ulong to, int length)
    {
        Run(deviceFd, from, EduBuffer, (ulong)length, toBus: false);
        Run(deviceFd, EduBuffer, to, (ulong)length, toBus: true);
    }

    private static void Run(int deviceFd, ulong source, ulong destination, ulong count, bool toBus)
    {
        long config = RegionOffset(deviceFd, ConfigRegionIndex);
        long bar0 = RegionOffset(deviceFd, Bar0RegionIndex);
        Span<byte> word = stackalloc byte[sizeof(ushort)];
        Check(PRead(deviceFd, word, config + PciCommand), "read PCI command");
        ushort command = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(word) | PciCommandMemory | PciCommandMaster);
        BinaryPrimitives.WriteUInt16LittleEndian(word, command);
        Check(PWrite(deviceFd, word, config + PciCommand), "write PCI command");
        Write64(deviceFd, bar0 + DmaSource, source);
        Write64(deviceFd, bar0 + DmaDestination, destination);
        Write64(deviceFd, bar0 + DmaCount, count);
        Write64(deviceFd, bar0 + DmaCommand, DmaStart | (toBus ? DmaToBus : 0));
        // edu ignores a new command while one runs; wait until its timer has done this one
        var waited = System.Diagnostics.Stopwatch.StartNew();
        Span<byte> status = stackalloc byte[sizeof(ulong)];
        do
        {
            Thread.Sleep(DmaPoll);
            Check(PRead(deviceFd, status, bar0 + DmaCommand), "read edu DMA command");
        }
        while ((BinaryPrimitives.ReadUInt64LittleEndian(status) & DmaStart) != 0 && waited.Elapsed < DmaTimeout);
    }

    private static readonly TimeSpan DmaPoll = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan DmaTimeout = TimeSpan.FromSeconds(5);

    private static long RegionOffset(int fd, uint index)
    {
        Span<byte> info = stackalloc byte[RegionInfoSize];
        info.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(info, RegionInfoSize);
        BinaryPrimitives.WriteUInt32LittleEndian(info[8..], index);
        int rc;
        unsafe
        {
            fixed (byte* p = info) rc = Ioctl(fd, GetRegionInfo, (nint)p);
        }
        if (rc < 0) throw Error("VFIO_DEVICE_GET_REGION_INFO");
        return (long)BinaryPrimitives.ReadUInt64LittleEndian(info[RegionInfoOffsetField..]);
    }

    private static void Write64(int fd, long offset, ulong value)
    {
        Span<byte> bytes = stackalloc byte[sizeof(ulong)];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        Check(PWrite(fd, bytes, offset), $"write edu register 0x{offset & 0xFF:X}");
    }

    private static void Check(nint rc, string what)
    {
        if (rc < 0) throw Error(what);
    }

    private static IommufdException Error(string what) => new((Errno)Marshal.GetLastPInvokeError(), what);

    private static unsafe nint PRead(int fd, Span<byte> buffer, long offset)
    {
        fixed (byte* p = buffer) return Pread(fd, (nint)p, (nuint)buffer.Length, offset);
    }

    private static unsafe nint PWrite(int fd, Span<byte> buffer, long offset)
    {
        fixed (byte* p = buffer) return Pwrite(fd, (nint)p, (nuint)buffer.Length, offset);
    }

    // glibc's soname: a bare "libc" would be probed as libc.so, which only a -dev package installs.
    private const string Libc = "libc.so.6";

    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    private static partial int Ioctl(int fd, nuint request, nint argument);

    [LibraryImport(Libc, EntryPoint = "pread", SetLastError = true)]
    private static partial nint Pread(int fd, nint buffer, nuint count, long offset);

    [LibraryImport(Libc, EntryPoint = "pwrite", SetLastError = true)]
    private static partial nint Pwrite(int fd, nint buffer, nuint count, long offset);
}
