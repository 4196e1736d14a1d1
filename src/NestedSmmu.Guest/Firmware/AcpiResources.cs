using System.Buffers.Binary;

namespace NestedSmmu.Guest.Firmware;

/// <summary>A resource from a _CRS buffer (ACPI 6.5, 6.4 "Resource Data Types").</summary>
public abstract record AcpiResource;

/// <summary>A memory range: from an address-space descriptor (Word/DWord/QWord) or a Memory32 one.</summary>
/// <param name="FromAddressSpace">True for Word/DWord/QWord address-space descriptors (what Linux's acpi_dev_resource_address_space accepts).</param>
public sealed record AcpiMemoryResource(ulong Base, ulong Length, bool FromAddressSpace) : AcpiResource;

/// <summary>Interrupts of an Extended Interrupt (or legacy IRQ) descriptor.</summary>
public sealed record AcpiInterruptResource(IReadOnlyList<uint> Interrupts, bool EdgeTriggered, bool ActiveLow) : AcpiResource;

/// <summary>Decodes the descriptors of a resource template (ACPI 6.5, 6.4.2 small and 6.4.3 large items).</summary>
public static class AcpiResourceDecoder
{
    // Large item names (6.4.3): the tag byte is 0x80 | name.
    private const byte LargeItem = 0x80;
    private const byte Memory32 = 0x85, Memory32Fixed = 0x86, DWordAddress = 0x87, WordAddress = 0x88, ExtendedInterrupt = 0x89, QWordAddress = 0x8A;
    // Small items (6.4.2): tag byte = name << 3 | length.
    private const int SmallNameShift = 3;
    private const byte SmallLengthMask = 0x07;
    private const byte IrqName = 0x04, EndTagName = 0x0F;
    // Address space descriptors (6.4.3.5.1-3): tag, length (2), resource type, general flags, type flags,
    // then granularity, minimum, maximum, translation offset and length, each 8 (QWord), 4 (DWord) or 2 (Word) bytes.
    private const int AddressResourceType = 3, AddressFields = 6;
    private const int QWord = 8, DWord = 4, Word = 2;
    private static int AddressMin(int width) => AddressFields + width;
    private static int AddressLength(int width) => AddressFields + 4 * width;
    private static int AddressDescriptorSize(int width) => AddressFields + 5 * width;
    // Memory32Fixed (6.4.3.4): info, base (4), length (4). Memory32 (6.4.3.3): info, min, max, alignment, length (4 each).
    private const int Fixed32Base = 4, Fixed32Length = 8, Fixed32Size = 12, Mem32Min = 4, Mem32Length = 16, Mem32Size = 20;
    // Extended interrupt (6.4.3.6): flags, count, then 32-bit interrupt numbers.
    private const int ExtIrqFlags = 3, ExtIrqCount = 4, ExtIrqList = 5;
    private const byte MemoryRange = 0;
    // Extended interrupt vector flags (6.4.3.6): bit 1 edge, bit 2 active low.
    private const byte InterruptEdge = 1 << 1, InterruptActiveLow = 1 << 2;

    /// <summary>Every descriptor up to the end tag; unknown ones are skipped by their length.</summary>
    public static List<AcpiResource> Decode(ReadOnlySpan<byte> b, string where)
    {
        var list = new List<AcpiResource>();
        int i = 0;
        while (i < b.Length)
        {
            byte tag = b[i];
            if ((tag & LargeItem) != 0)
            {
                if (i + 3 > b.Length) throw new FirmwareTableException($"{where}: large resource descriptor at +{i} is cut short.");
                int len = BinaryPrimitives.ReadUInt16LittleEndian(b[(i + 1)..]);
                if (i + 3 + len > b.Length) throw new FirmwareTableException($"{where}: resource descriptor 0x{tag:X2} at +{i} claims {len} bytes, past the buffer.");
                var d = b.Slice(i, 3 + len);
                switch (tag)
                {
                    case QWordAddress when d[AddressResourceType] == MemoryRange && d.Length >= AddressDescriptorSize(QWord):
                        list.Add(new AcpiMemoryResource(U64(d, AddressMin(QWord)), U64(d, AddressLength(QWord)), true));
                        break;
                    case DWordAddress when d[AddressResourceType] == MemoryRange && d.Length >= AddressDescriptorSize(DWord):
                        list.Add(new AcpiMemoryResource(U32(d, AddressMin(DWord)), U32(d, AddressLength(DWord)), true));
                        break;
                    case WordAddress when d[AddressResourceType] == MemoryRange && d.Length >= AddressDescriptorSize(Word):
                        list.Add(new AcpiMemoryResource(BinaryPrimitives.ReadUInt16LittleEndian(d[AddressMin(Word)..]),
                            BinaryPrimitives.ReadUInt16LittleEndian(d[AddressLength(Word)..]), true));
                        break;
                    case Memory32Fixed when d.Length >= Fixed32Size:
                        list.Add(new AcpiMemoryResource(U32(d, Fixed32Base), U32(d, Fixed32Length), false));
                        break;
                    case Memory32 when d.Length >= Mem32Size:
                        list.Add(new AcpiMemoryResource(U32(d, Mem32Min), U32(d, Mem32Length), false));
                        break;
                    case ExtendedInterrupt when d.Length > ExtIrqList:
                    {
                        int n = d[ExtIrqCount];
                        if (ExtIrqList + sizeof(uint) * n > d.Length) throw new FirmwareTableException($"{where}: interrupt descriptor lists {n} interrupts in {d.Length} bytes.");
                        var ints = new uint[n];
                        for (int k = 0; k < n; k++) ints[k] = U32(d, ExtIrqList + sizeof(uint) * k);
                        list.Add(new AcpiInterruptResource(ints, (d[ExtIrqFlags] & InterruptEdge) != 0, (d[ExtIrqFlags] & InterruptActiveLow) != 0));
                        break;
                    }
                }
                i += 3 + len;
            }
            else
            {
                int name = tag >> SmallNameShift, len = tag & SmallLengthMask;
                if (name == EndTagName) break;
                if (name == IrqName && len >= 2 && i + 3 <= b.Length)
                {
                    ushort mask = BinaryPrimitives.ReadUInt16LittleEndian(b[(i + 1)..]);
                    var ints = Enumerable.Range(0, 16).Where(k => (mask & (1 << k)) != 0).Select(k => (uint)k).ToArray();
                    list.Add(new AcpiInterruptResource(ints, EdgeTriggered: true, ActiveLow: false));
                }
                i += 1 + len;
            }
        }
        return list;
    }

    private static uint U32(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt32LittleEndian(b[at..]);
    private static ulong U64(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt64LittleEndian(b[at..]);
}
