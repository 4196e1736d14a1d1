namespace NestedSmmu.Hardware.Memory;

/// <summary>
/// A physical address space as a bus master sees it: byte-addressed, little-endian.
/// Implemented by <see cref="SparseMemory"/>; views (guest RAM windows, host memory) wrap it.
/// </summary>
public interface IPhysicalMemory
{
    /// <summary>Copies <paramref name="destination"/>.Length bytes starting at <paramref name="address"/>.</summary>
    void Read(ulong address, Span<byte> destination);

    /// <summary>Writes <paramref name="source"/> starting at <paramref name="address"/>.</summary>
    void Write(ulong address, ReadOnlySpan<byte> source);

    /// <summary>
    /// True when a bus master's access to [address, address + length) would end in an external
    /// abort (no memory there). SMMU table fetches that abort become F_*_FETCH / F_WALK_EABT events.
    /// </summary>
    bool IsAbort(ulong address, ulong length) => false;

    /// <summary>
    /// False when no access can abort, so hot paths (table walks) may skip <see cref="IsAbort"/>.
    /// The default is the safe answer; <see cref="SparseMemory"/> knows whether it has abort ranges.
    /// </summary>
    bool MayAbort => true;

    /// <summary>
    /// The little-endian 64-bit word at <paramref name="address"/>: what every descriptor fetch
    /// reads. Memories with a faster path than a span copy (<see cref="SparseMemory"/>) implement it.
    /// </summary>
    ulong ReadUInt64(ulong address)
    {
        Span<byte> b = stackalloc byte[8];
        Read(address, b);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(b);
    }
}

/// <summary>Little-endian scalar accessors shared by every <see cref="IPhysicalMemory"/>.</summary>
public static class PhysicalMemoryExtensions
{
    public static byte ReadByte(this IPhysicalMemory m, ulong address)
    {
        Span<byte> b = stackalloc byte[1];
        m.Read(address, b);
        return b[0];
    }

    public static ushort ReadUInt16(this IPhysicalMemory m, ulong address)
    {
        Span<byte> b = stackalloc byte[2];
        m.Read(address, b);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(b);
    }

    public static uint ReadUInt32(this IPhysicalMemory m, ulong address)
    {
        Span<byte> b = stackalloc byte[4];
        m.Read(address, b);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    /// <summary>
    /// <see cref="IPhysicalMemory.ReadUInt64"/> for a variable of a class type that implements the
    /// interface without declaring the method (a default interface method is reachable only
    /// through the interface).
    /// </summary>
    public static ulong ReadUInt64(this IPhysicalMemory m, ulong address) => m.ReadUInt64(address);

    public static void WriteByte(this IPhysicalMemory m, ulong address, byte value)
    {
        ReadOnlySpan<byte> b = [value];
        m.Write(address, b);
    }

    public static void WriteUInt16(this IPhysicalMemory m, ulong address, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        m.Write(address, b);
    }

    public static void WriteUInt32(this IPhysicalMemory m, ulong address, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        m.Write(address, b);
    }

    public static void WriteUInt64(this IPhysicalMemory m, ulong address, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        m.Write(address, b);
    }

    /// <summary>Reads consecutive 64-bit words into <paramref name="words"/> (descriptors are arrays of them).</summary>
    public static void ReadUInt64s(this IPhysicalMemory m, ulong address, Span<ulong> words)
    {
        // Descriptors are at most 64 bytes; larger blocks go through the heap rather than the stack.
        Span<byte> b = words.Length <= 16 ? stackalloc byte[words.Length * 8] : new byte[words.Length * 8];
        m.Read(address, b);
        for (int i = 0; i < words.Length; i++)
            words[i] = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(b[(i * 8)..]);
    }

    public static void WriteUInt64s(this IPhysicalMemory m, ulong address, ReadOnlySpan<ulong> words)
    {
        Span<byte> b = words.Length <= 16 ? stackalloc byte[words.Length * 8] : new byte[words.Length * 8];
        for (int i = 0; i < words.Length; i++)
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(b[(i * 8)..], words[i]);
        m.Write(address, b);
    }
}
