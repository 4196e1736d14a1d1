using System.Buffers.Binary;
using System.Text;

namespace NestedSmmu.Guest.Firmware;

/// <summary>The 36-byte header every ACPI system description table starts with (ACPI 6.5, 5.2.6).</summary>
public readonly record struct AcpiTableHeader(string Signature, uint Length, byte Revision, string OemId, string OemTableId)
{
    public const int Size = 36;
    // Offsets chained from the start of the header (ACPI 6.5, Table 5.4).
    private const int SignatureOffset = 0, LengthOffset = 4, RevisionOffset = 8, OemIdOffset = 10, OemIdLength = 6,
        OemTableIdOffset = 16, OemTableIdLength = 8;

    /// <summary>Reads and checks the header: the expected signature, a length inside the bytes given.</summary>
    public static AcpiTableHeader Read(ReadOnlySpan<byte> table, string expectedSignature)
    {
        if (table.Length < Size) throw new FirmwareTableException($"{expectedSignature}: {table.Length} bytes is shorter than an ACPI table header ({Size}).");
        string sig = Encoding.ASCII.GetString(table.Slice(SignatureOffset, 4));
        if (sig != expectedSignature) throw new FirmwareTableException($"expected an {expectedSignature} table, found signature '{sig}'.");
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(table[LengthOffset..]);
        if (length < Size || length > table.Length)
            throw new FirmwareTableException($"{sig}: header length {length} does not fit the {table.Length} bytes given.");
        return new AcpiTableHeader(sig, length, table[RevisionOffset],
            Encoding.ASCII.GetString(table.Slice(OemIdOffset, OemIdLength)).TrimEnd(' ', '\0'),
            Encoding.ASCII.GetString(table.Slice(OemTableIdOffset, OemTableIdLength)).TrimEnd(' ', '\0'));
    }
}
