using System.Buffers.Binary;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd;

/// <summary>
/// One record read from a vEVENTQ: <c>struct iommufd_vevent_header</c> and the type's data.
/// A lost-events record (<see cref="LostEvents"/>) carries no data; its sequence number is the
/// one the first lost event would have had.
/// </summary>
/// <param name="Flags">Header flags.</param>
/// <param name="Sequence">Header sequence, over [0, INT_MAX], wrapping to 0.</param>
/// <param name="Data">The type's data (empty for a lost-events record).</param>
public readonly record struct Vevent(VeventFlags Flags, uint Sequence, ReadOnlyMemory<byte> Data)
{
    /// <summary>The largest sequence number before it wraps to 0 (INT_MAX).</summary>
    public const uint MaxSequence = int.MaxValue;

    /// <summary>True for the overflow marker: events were dropped before this point.</summary>
    public bool LostEvents => (Flags & VeventFlags.LostEvents) != 0;

    /// <summary>The sequence number that follows <paramref name="sequence"/>.</summary>
    public static uint NextSequence(uint sequence) => (sequence + 1) & MaxSequence;

    /// <summary>Decodes the data as an SMMUv3 event (<see cref="VeventqType.ArmSmmuV3"/>).</summary>
    public ArmSmmuV3Vevent AsArmSmmuV3() => ArmSmmuV3Vevent.Parse(RequireData(ArmSmmuV3Vevent.Size));

    /// <summary>Decodes the data as a CMDQV error map (<see cref="VeventqType.Tegra241Cmdqv"/>).</summary>
    public Tegra241CmdqvVevent AsTegra241Cmdqv() => Tegra241CmdqvVevent.Parse(RequireData(Tegra241CmdqvVevent.Size));

    private ReadOnlySpan<byte> RequireData(int size)
    {
        if (LostEvents) throw new InvalidOperationException($"vEVENT {Sequence} is a lost-events marker and carries no data.");
        if (Data.Length < size) throw new InvalidOperationException($"vEVENT {Sequence} has {Data.Length} data bytes; this type needs {size}.");
        return Data.Span;
    }
}

/// <summary>
/// <c>struct iommu_vevent_arm_smmuv3</c>: an SMMUv3 event record (IHI 0070 7.3) whose SID
/// field the kernel replaced with the vSID. Little-endian words.
/// </summary>
public readonly record struct ArmSmmuV3Vevent(ulong Evt0, ulong Evt1, ulong Evt2, ulong Evt3)
{
    /// <summary>Bytes of the uAPI struct.</summary>
    public const int Size = 32;

    /// <summary>evt0[7:0] event ID (F_TRANSLATION 0x10, C_BAD_STE 0x04, ...).</summary>
    public byte EventId => (byte)Evt0;

    /// <summary>evt0[63:32] StreamID: the vSID (the kernel replaced the physical one).</summary>
    public uint Sid => (uint)(Evt0 >> 32);

    /// <summary>Decodes the record.</summary>
    public static ArmSmmuV3Vevent Parse(ReadOnlySpan<byte> data)
    {
        if (data.Length < Size) throw new ArgumentException($"iommu_vevent_arm_smmuv3 needs {Size} bytes, got {data.Length}.", nameof(data));
        return new ArmSmmuV3Vevent(
            BinaryPrimitives.ReadUInt64LittleEndian(data),
            BinaryPrimitives.ReadUInt64LittleEndian(data[8..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[16..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[24..]));
    }

    /// <summary>Encodes the record, <see cref="Size"/> bytes.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, Evt0);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], Evt1);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[16..], Evt2);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[24..], Evt3);
    }
}

/// <summary>
/// <c>struct iommu_vevent_tegra241_cmdqv</c>: the 128-bit LVCMDQ_ERR_MAP of the VM's VINTF,
/// one bit per logical VCMDQ in error.
/// </summary>
public readonly record struct Tegra241CmdqvVevent(ulong LvcmdqErrMap0, ulong LvcmdqErrMap1)
{
    /// <summary>Bytes of the uAPI struct.</summary>
    public const int Size = 16;

    /// <summary>True when logical queue <paramref name="lvcmdq"/> (0..127) is in error.</summary>
    public bool IsInError(int lvcmdq)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(lvcmdq);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(lvcmdq, 127);
        ulong word = lvcmdq < 64 ? LvcmdqErrMap0 : LvcmdqErrMap1;
        return ((word >> (lvcmdq & 63)) & 1) != 0;
    }

    /// <summary>Decodes the record.</summary>
    public static Tegra241CmdqvVevent Parse(ReadOnlySpan<byte> data)
    {
        if (data.Length < Size) throw new ArgumentException($"iommu_vevent_tegra241_cmdqv needs {Size} bytes, got {data.Length}.", nameof(data));
        return new Tegra241CmdqvVevent(BinaryPrimitives.ReadUInt64LittleEndian(data), BinaryPrimitives.ReadUInt64LittleEndian(data[8..]));
    }

    /// <summary>Encodes the record, <see cref="Size"/> bytes.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, LvcmdqErrMap0);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], LvcmdqErrMap1);
    }
}

/// <summary>
/// The byte stream of a vEVENTQ fd: repeated <c>[header 8 bytes][data]</c>, data omitted for
/// lost-events headers. Shared by the real reader (parsing read(2) output) and the emulated
/// kernel (producing it).
/// </summary>
public static class VeventCodec
{
    /// <summary>Bytes of <c>struct iommufd_vevent_header</c>.</summary>
    public const int HeaderSize = 8;

    /// <summary>Data bytes per event of a queue type, or null for a type this model does not know.</summary>
    public static int? DataLength(VeventqType type) => type switch
    {
        VeventqType.ArmSmmuV3 => ArmSmmuV3Vevent.Size,
        VeventqType.Tegra241Cmdqv => Tegra241CmdqvVevent.Size,
        _ => null,
    };

    /// <summary>Bytes <paramref name="vevent"/> occupies in the stream.</summary>
    public static int EncodedLength(in Vevent vevent) => HeaderSize + (vevent.LostEvents ? 0 : vevent.Data.Length);

    /// <summary>Writes one record; returns the bytes written.</summary>
    /// <exception cref="ArgumentException">The destination is too short.</exception>
    public static int Write(Span<byte> destination, in Vevent vevent)
    {
        int length = EncodedLength(vevent);
        if (destination.Length < length) throw new ArgumentException($"A vEVENT needs {length} bytes.", nameof(destination));
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)vevent.Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], vevent.Sequence);
        if (!vevent.LostEvents) vevent.Data.Span.CopyTo(destination[HeaderSize..]);
        return length;
    }

    /// <summary>
    /// Parses whole records from <paramref name="stream"/> into <paramref name="events"/>;
    /// returns the bytes consumed. A trailing partial record is left unconsumed (the kernel
    /// never produces one: read(2) copies only whole events).
    /// </summary>
    /// <param name="stream">Bytes read from the fd.</param>
    /// <param name="dataLength">Data bytes of each normal event of this queue's type.</param>
    /// <param name="events">Receives the events in order.</param>
    public static int Parse(ReadOnlySpan<byte> stream, int dataLength, ICollection<Vevent> events)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(dataLength);
        int done = 0;
        while (stream.Length - done >= HeaderSize)
        {
            var flags = (VeventFlags)BinaryPrimitives.ReadUInt32LittleEndian(stream[done..]);
            uint sequence = BinaryPrimitives.ReadUInt32LittleEndian(stream[(done + 4)..]);
            if ((flags & VeventFlags.LostEvents) != 0)
            {
                events.Add(new Vevent(flags, sequence, ReadOnlyMemory<byte>.Empty));
                done += HeaderSize;
                continue;
            }
            if (stream.Length - done - HeaderSize < dataLength) break;
            byte[] data = stream.Slice(done + HeaderSize, dataLength).ToArray();
            events.Add(new Vevent(flags, sequence, data));
            done += HeaderSize + dataLength;
        }
        return done;
    }
}
