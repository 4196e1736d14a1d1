using System.Buffers.Binary;

namespace NestedSmmu.Iommufd;

/// <summary>
/// Driver data of a nested SMMUv3 HWPT (<c>struct iommu_hwpt_arm_smmuv3</c>): the guest's
/// vSTE words 0 and 1, little-endian. The kernel accepts only V, CFG (abort, bypass, S1
/// translate), S1FMT, S1CTXPTR, S1CDMAX in word 0 and S1DSS, S1CIR, S1COR, S1CSH, S1STALLD,
/// EATS in word 1; anything else gives EIO.
/// </summary>
public readonly record struct ArmSmmuV3Vste(ulong Word0, ulong Word1)
{
    /// <summary>Bytes of the uAPI struct.</summary>
    public const int Size = 16;

    /// <summary>Encodes the two words little-endian.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, Word0);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], Word1);
    }

    /// <summary>The encoded struct as a new array.</summary>
    public byte[] ToBytes()
    {
        var b = new byte[Size];
        WriteTo(b);
        return b;
    }

    /// <summary>Decodes the struct (the kernel's side).</summary>
    /// <exception cref="ArgumentException">Fewer than <see cref="Size"/> bytes.</exception>
    public static ArmSmmuV3Vste Parse(ReadOnlySpan<byte> data)
    {
        if (data.Length < Size) throw new ArgumentException($"iommu_hwpt_arm_smmuv3 needs {Size} bytes, got {data.Length}.", nameof(data));
        return new ArmSmmuV3Vste(BinaryPrimitives.ReadUInt64LittleEndian(data), BinaryPrimitives.ReadUInt64LittleEndian(data[8..]));
    }
}

/// <summary>
/// Driver data of a TEGRA241_CMDQV vIOMMU (<c>struct iommu_viommu_tegra241_cmdqv</c>): where
/// to mmap the VINTF's page 0 on the iommufd (the kernel fills both on IOMMU_VIOMMU_ALLOC).
/// </summary>
/// <param name="VintfMmapOffset">The mmap offset (a multiple of the page size, at least one page).</param>
/// <param name="VintfMmapLength">The mmap length (64 KiB).</param>
public readonly record struct Tegra241CmdqvViommuData(ulong VintfMmapOffset, ulong VintfMmapLength)
{
    /// <summary>Bytes of the uAPI struct.</summary>
    public const int Size = 16;

    /// <summary>Encodes the struct (native-endian u64, little-endian on supported hosts).</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, VintfMmapOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], VintfMmapLength);
    }

    /// <summary>The encoded struct as a new array.</summary>
    public byte[] ToBytes()
    {
        var b = new byte[Size];
        WriteTo(b);
        return b;
    }

    /// <summary>Decodes the struct; bytes beyond a short buffer read as zero.</summary>
    public static Tegra241CmdqvViommuData Parse(ReadOnlySpan<byte> data)
    {
        Span<byte> b = stackalloc byte[Size];
        b.Clear();
        data[..Math.Min(data.Length, Size)].CopyTo(b);
        return new Tegra241CmdqvViommuData(BinaryPrimitives.ReadUInt64LittleEndian(b), BinaryPrimitives.ReadUInt64LittleEndian(b[8..]));
    }
}
