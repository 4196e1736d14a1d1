using System.Buffers.Binary;

namespace NestedSmmu.Vmm.Acpi;

/// <summary>Interrupt trigger mode (ACPI 6.5 6.4.3.6, flags bit 1).</summary>
public enum AmlTrigger { Level = 0, Edge = 1 }

/// <summary>Interrupt polarity (flags bit 2).</summary>
public enum AmlPolarity { ActiveHigh = 0, ActiveLow = 1 }

/// <summary>
/// A ResourceTemplate () being built: resource descriptors (ACPI 6.5, 6.4) ending with an End Tag,
/// wrapped in an AML Buffer by <see cref="ToAml"/>.
/// </summary>
public sealed class ResourceTemplate
{
    // 6.4.3.5.1-3: resource type byte of the address space descriptors.
    private const byte MemoryRange = 0, IoRange = 1, BusNumberRange = 2;
    // General flags (Table 6.49): bit 3 _MAF, bit 2 _MIF, bit 1 _DEC (0: positive decode), bit 0
    // (0: producer and consumer). QEMU's root-bridge and device windows are all fixed, positive, producer.
    private const byte GeneralFlagsFixed = 0b1100;
    // Memory type-specific flags (Table 6.50): bit 0 _RW, bits 2:1 _MEM (0 non-cacheable, 1 cacheable).
    private const byte MemReadWrite = 0b1, MemCacheable = 0b01 << 1;
    // I/O type-specific flags (Table 6.51): bits 1:0 _RNG = 3, the entire range.
    private const byte IoEntireRange = 0b11;
    // Extended interrupt flags (Table 6.60): bit 0 consumer, bit 1 edge, bit 2 active low, bit 3 shared.
    private const byte InterruptConsumer = 0b1;
    private const int InterruptModeShift = 1, InterruptPolarityShift = 2;

    private readonly List<byte> _bytes = [];

    /// <summary>Memory32Fixed (ReadWrite, base, length) (6.4.3.4).</summary>
    public ResourceTemplate Memory32Fixed(uint @base, uint length)
    {
        Span<byte> d = stackalloc byte[12];
        d[0] = AmlResourceTag.Memory32Fixed;
        BinaryPrimitives.WriteUInt16LittleEndian(d[1..], (ushort)(d.Length - 3));
        d[3] = MemReadWrite;
        BinaryPrimitives.WriteUInt32LittleEndian(d[4..], @base);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], length);
        _bytes.AddRange(d);
        return this;
    }

    /// <summary>WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, count) (6.4.3.5.3).</summary>
    public ResourceTemplate WordBusNumber(ushort min, ushort max) =>
        Address(AmlResourceTag.WordAddressSpace, 2, BusNumberRange, 0, min, max, 0);

    /// <summary>DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, cacheability, ReadWrite) (6.4.3.5.2).</summary>
    public ResourceTemplate DWordMemory(uint @base, uint length, bool cacheable = false) =>
        Address(AmlResourceTag.DWordAddressSpace, 4, MemoryRange, MemFlags(cacheable), @base, (ulong)@base + length - 1, 0);

    /// <summary>DWordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange) with a translation offset (6.4.3.5.2).</summary>
    public ResourceTemplate DWordIo(uint min, uint length, uint translation) =>
        Address(AmlResourceTag.DWordAddressSpace, 4, IoRange, IoEntireRange, min, (ulong)min + length - 1, translation);

    /// <summary>QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, cacheability, ReadWrite) (6.4.3.5.1).</summary>
    public ResourceTemplate QWordMemory(ulong @base, ulong length, bool cacheable = false) =>
        Address(AmlResourceTag.QWordAddressSpace, 8, MemoryRange, MemFlags(cacheable), @base, @base + length - 1, 0);

    /// <summary>Interrupt (ResourceConsumer, mode, polarity, Exclusive) { gsivs } (6.4.3.6).</summary>
    public ResourceTemplate Interrupt(AmlTrigger trigger, AmlPolarity polarity, params uint[] gsivs)
    {
        var d = new byte[5 + 4 * gsivs.Length];
        d[0] = AmlResourceTag.ExtendedInterrupt;
        BinaryPrimitives.WriteUInt16LittleEndian(d.AsSpan(1), (ushort)(d.Length - 3));
        d[3] = (byte)(InterruptConsumer | ((int)trigger << InterruptModeShift) | ((int)polarity << InterruptPolarityShift));
        d[4] = (byte)gsivs.Length;
        for (int i = 0; i < gsivs.Length; i++) BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan(5 + 4 * i), gsivs[i]);
        _bytes.AddRange(d);
        return this;
    }

    /// <summary>The template as an AML Buffer, closed with the End Tag (checksum 0: "treated as valid", 6.4.2.9).</summary>
    public byte[] ToAml() => Aml.Buffer([.. _bytes, AmlResourceTag.EndTag, 0]);

    private static byte MemFlags(bool cacheable) => (byte)(MemReadWrite | (cacheable ? MemCacheable : 0));

    // Address space descriptors share one shape: tag, length, type, general flags, type flags, then
    // granularity, min, max, translation offset and length, each fieldSize bytes.
    private ResourceTemplate Address(byte tag, int fieldSize, byte type, byte typeFlags, ulong min, ulong max, ulong translation)
    {
        var d = new byte[6 + 5 * fieldSize];
        d[0] = tag;
        BinaryPrimitives.WriteUInt16LittleEndian(d.AsSpan(1), (ushort)(d.Length - 3));
        d[3] = type;
        d[4] = GeneralFlagsFixed;
        d[5] = typeFlags;
        ulong[] fields = [0, min, max, translation, max - min + 1];
        for (int i = 0; i < fields.Length; i++)
        {
            var slot = d.AsSpan(6 + i * fieldSize, fieldSize);
            switch (fieldSize)
            {
                case 2: BinaryPrimitives.WriteUInt16LittleEndian(slot, (ushort)fields[i]); break;
                case 4: BinaryPrimitives.WriteUInt32LittleEndian(slot, (uint)fields[i]); break;
                default: BinaryPrimitives.WriteUInt64LittleEndian(slot, fields[i]); break;
            }
        }
        _bytes.AddRange(d);
        return this;
    }
}
