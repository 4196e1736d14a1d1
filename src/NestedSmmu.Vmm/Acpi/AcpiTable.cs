namespace NestedSmmu.Vmm.Acpi;

/// <summary>Offsets of the system description table header (ACPI 6.5, 5.2.6, Table 5.4), chained.</summary>
public static class AcpiHeader
{
    public const int Signature = 0;
    public const int Length = Signature + 4;
    public const int Revision = Length + 4;
    public const int Checksum = Revision + 1;
    public const int OemId = Checksum + 1;
    public const int OemTableId = OemId + 6;
    public const int OemRevision = OemTableId + 8;
    public const int CreatorId = OemRevision + 4;
    public const int CreatorRevision = CreatorId + 4;
    /// <summary>The header's size: a table's own fields start here.</summary>
    public const int Size = CreatorRevision + 4;
}

/// <summary>
/// The OEM and creator fields QEMU puts in every table it builds (hw/acpi/aml-build.c
/// acpi_table_begin with the virt machine's default oem-id/oem-table-id, ACPI_BUILD_APPNAME*).
/// </summary>
public sealed record AcpiOem(string OemId = "BOCHS", string OemTableId = "BXPC", uint OemRevision = 1, string CreatorId = "BXPC", uint CreatorRevision = 1)
{
    public static AcpiOem Qemu { get; } = new();
}

/// <summary>
/// One ACPI table being written: <see cref="Begin"/> writes the header with the length and checksum
/// left zero; <see cref="End"/> patches the length and then the checksum so all bytes sum to zero
/// (ACPI 6.5, 5.2.6: "the entire table, including the checksum field, must add to zero").
/// </summary>
public sealed class AcpiTable
{
    private readonly int _start;

    private AcpiTable(ByteSink sink, int start)
    {
        Sink = sink;
        _start = start;
    }

    /// <summary>Where the table's bytes go.</summary>
    public ByteSink Sink { get; }

    /// <summary>The offset of the next byte, relative to the table's first byte.</summary>
    public int Offset => Sink.Length - _start;

    /// <summary>Starts a table at the sink's end.</summary>
    public static AcpiTable Begin(ByteSink sink, string signature, byte revision, AcpiOem oem)
    {
        int start = sink.Length;
        sink.Ascii(signature, 4);
        sink.U32(0); // length, patched by End
        sink.U8(revision);
        sink.U8(0); // checksum, patched by End
        sink.Ascii(oem.OemId, 6);
        sink.Ascii(oem.OemTableId, 8);
        sink.U32(oem.OemRevision);
        sink.Ascii(oem.CreatorId, 4);
        sink.U32(oem.CreatorRevision);
        return new AcpiTable(sink, start);
    }

    /// <summary>Patches the length and checksum; returns the table's bytes.</summary>
    public byte[] End()
    {
        int length = Sink.Length - _start;
        Sink.PatchU32(_start + AcpiHeader.Length, (uint)length);
        Sink.PatchU8(_start + AcpiHeader.Checksum, Checksum(Sink.Written.Slice(_start, length)));
        return Sink.Written.Slice(_start, length).ToArray();
    }

    /// <summary>The byte that makes <paramref name="table"/> (with its checksum byte zero) sum to zero.</summary>
    public static byte Checksum(ReadOnlySpan<byte> table)
    {
        byte sum = 0;
        for (int i = 0; i < table.Length; i++)
            if (i != AcpiHeader.Checksum) sum += table[i];
        return (byte)(0 - sum);
    }

    /// <summary>True when every byte of the table sums to zero.</summary>
    public static bool ChecksumIsValid(ReadOnlySpan<byte> table)
    {
        byte sum = 0;
        foreach (byte b in table) sum += b;
        return sum == 0;
    }
}
