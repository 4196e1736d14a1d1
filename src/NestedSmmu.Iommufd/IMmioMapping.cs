using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Iommufd;

/// <summary>
/// A register page mmap'ed from the iommufd, such as a Tegra241 VINTF page 0 (its VCMDQs'
/// CONS/PROD/CONFIG/STATUS/GERROR registers). The VMM maps it straight into the guest, so
/// accesses reach the hardware without a VM exit. As an <see cref="IMmioDevice"/> it can be
/// placed on an <see cref="MmioBus"/>; out-of-range or misaligned accesses read 0 and are
/// ignored on write (guest accesses never throw). Disposing unmaps it (munmap).
/// </summary>
public interface IMmioMapping : IMmioDevice, IDisposable
{
    /// <summary>The mmap offset on the iommufd it was mapped from.</summary>
    ulong Offset { get; }

    /// <summary>Reads a 32-bit register at <paramref name="offset"/> (4-byte aligned).</summary>
    uint Read32(ulong offset) => (uint)Read(offset, 4);

    /// <summary>Writes a 32-bit register at <paramref name="offset"/> (4-byte aligned).</summary>
    void Write32(ulong offset, uint value) => Write(offset, 4, value);

    /// <summary>Reads a 64-bit register at <paramref name="offset"/> (8-byte aligned).</summary>
    ulong Read64(ulong offset) => Read(offset, 8);

    /// <summary>Writes a 64-bit register at <paramref name="offset"/> (8-byte aligned).</summary>
    void Write64(ulong offset, ulong value) => Write(offset, 8, value);
}
