using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// A window of host physical MMIO space exported through mmap of the iommufd (a Tegra241 VINTF
/// page 0, which Linux exports with iommufd_viommu_alloc_mmap of its physical address): every
/// access goes to whatever device decodes that address on the host bus, as a shared mapping of
/// device registers does. Accesses outside the window, or not 4/8-byte aligned, read 0 and are
/// ignored.
/// </summary>
internal sealed class HostMmioWindow(EmulatedHost host, ulong physicalAddress, ulong size) : IMmioDevice
{
    /// <summary>Host physical address of the window's first byte.</summary>
    public ulong PhysicalAddress { get; } = physicalAddress;

    public ulong Size { get; } = size;

    public ulong Read(ulong offset, int width) => Valid(offset, width) ? host.Bus.Read(PhysicalAddress + offset, width) : 0;

    public void Write(ulong offset, int width, ulong value)
    {
        if (Valid(offset, width)) host.Bus.Write(PhysicalAddress + offset, width, value);
    }

    private bool Valid(ulong offset, int width) =>
        width is sizeof(uint) or sizeof(ulong) && (offset & (ulong)(width - 1)) == 0 && Size >= (ulong)width && offset <= Size - (ulong)width;
}
