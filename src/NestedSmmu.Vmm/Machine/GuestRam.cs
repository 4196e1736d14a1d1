using NestedSmmu.Hardware.Memory;
using NestedSmmu.Iommufd;

namespace NestedSmmu.Vmm.Machine;

/// <summary>
/// Guest RAM: host memory from <see cref="IIommufd.AllocateHostMemory"/>, mapped into an IOAS at
/// IOVA = guest physical address (so the IOAS is the guest's stage 2, as VFIO maps system memory
/// for a VM), and read and written by the VMM through this guest-physical view.
/// </summary>
/// <remarks>
/// The view covers the whole guest physical space as a bus master in the guest sees it, minus
/// MMIO: addresses outside RAM read as zero, ignore writes and report <see cref="IsAbort"/>, so
/// a guest that points a queue or a table outside RAM gets the spec's abort (CERROR_ABT,
/// GERROR.EVENTQ_ABT_ERR, F_STE_FETCH), never an exception.
/// </remarks>
public sealed class GuestRam : IPhysicalMemory, IDisposable
{
    /// <summary>Where QEMU's virt board puts RAM (hw/arm/virt.c, VIRT_MEM: 1 GiB).</summary>
    public const ulong VirtRamBase = 0x4000_0000;

    private readonly IIommufd _iommufd;
    private readonly bool _ownsIoas;
    private bool _disposed;

    /// <summary>
    /// Allocates <paramref name="size"/> bytes of host memory and maps them read/write into
    /// <paramref name="ioas"/> (or a new IOAS when null) at IOVA <paramref name="baseAddress"/>.
    /// </summary>
    /// <param name="iommufd">The host.</param>
    /// <param name="baseAddress">Guest physical address of the first byte (virt: <see cref="VirtRamBase"/>).</param>
    /// <param name="size">Bytes of RAM; non-zero.</param>
    /// <param name="ioas">The IOAS to map into, or null to allocate one (then freed on dispose).</param>
    /// <param name="name">A label for host diagnostics.</param>
    /// <exception cref="IommufdException">The host could not allocate or map the memory (ENOMEM, EEXIST, ...).</exception>
    public GuestRam(IIommufd iommufd, ulong baseAddress, ulong size, IoasId? ioas = null, string name = "guest-ram")
    {
        ArgumentNullException.ThrowIfNull(iommufd);
        ArgumentOutOfRangeException.ThrowIfZero(size);
        if (baseAddress + size < baseAddress)
            throw new ArgumentOutOfRangeException(nameof(size), $"Guest RAM at 0x{baseAddress:X} of 0x{size:X} bytes wraps the address space.");
        _iommufd = iommufd;
        Base = baseAddress;
        Size = size;
        Region = iommufd.AllocateHostMemory(size, name);
        try
        {
            _ownsIoas = ioas is null;
            Ioas = ioas ?? iommufd.AllocIoas();
            iommufd.MapIoas(Ioas, Region, 0, size, baseAddress);
        }
        catch
        {
            if (_ownsIoas && Ioas != default) iommufd.TryDestroy(Ioas, out _);
            Region.Dispose();
            throw;
        }
    }

    /// <summary>Guest physical address of the first byte.</summary>
    public ulong Base { get; }

    /// <summary>Bytes of RAM.</summary>
    public ulong Size { get; }

    /// <summary>One past the last guest physical address of RAM.</summary>
    public ulong End => Base + Size;

    /// <summary>The IOAS in which RAM is mapped at IOVA = guest PA (the nest parent's IOAS).</summary>
    public IoasId Ioas { get; }

    /// <summary>The backing host memory.</summary>
    public HostMemoryRegion Region { get; }

    /// <summary>True when <c>[address, address + length)</c> lies inside RAM.</summary>
    public bool Contains(ulong address, ulong length) =>
        address >= Base && address - Base <= Size && length <= Size - (address - Base);

    /// <inheritdoc/>
    public bool IsAbort(ulong address, ulong length) => !Contains(address, length);

    /// <summary>Reads guest memory; bytes outside RAM read as zero.</summary>
    public void Read(ulong address, Span<byte> destination)
    {
        if (Contains(address, (ulong)destination.Length))
        {
            Region.Read(address - Base, destination);
            return;
        }
        destination.Clear();
    }

    /// <summary>Writes guest memory; a write that leaves RAM is dropped (no device claims it).</summary>
    public void Write(ulong address, ReadOnlySpan<byte> source)
    {
        if (Contains(address, (ulong)source.Length)) Region.Write(address - Base, source);
    }

    /// <summary>Unmaps RAM from the IOAS, frees the IOAS if this object made it, and frees the memory.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _iommufd.TryUnmapIoas(Ioas, Base, Size, out _, out _);
        if (_ownsIoas) _iommufd.TryDestroy(Ioas, out _);
        Region.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"guest RAM [0x{Base:X}, 0x{End:X}) in IOAS {Ioas}";
}
