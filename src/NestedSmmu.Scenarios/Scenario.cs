using System.Buffers;
using System.Buffers.Binary;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

// The namespace is "Scenarios", plural: a type named like its own namespace makes `Scenario`
// ambiguous (CS0118).
namespace NestedSmmu.Scenarios;

/// <summary>
/// A translation scenario (format <c>nestedsmmu-scenario/1</c>, docs: docs/SCENARIO.md):
/// the ID registers the SMMU presents, the register writes software made, the memory holding its
/// tables, and the device accesses to translate. Equality is structural.
/// </summary>
public sealed record Scenario
{
    /// <summary>The value of the document's <c>format</c> member.</summary>
    public const string FormatName = "nestedsmmu-scenario/1";

    /// <summary>Always <see cref="FormatName"/>: the only version there is.</summary>
    public string Format => FormatName;

    /// <summary>Free text; not interpreted.</summary>
    public string? Description { get; init; }

    /// <summary>ID register overrides (IDR0..IDR5, IIDR, AIDR); registers not present keep the model's defaults.</summary>
    public IReadOnlyDictionary<SmmuRegister, uint> Idr
    {
        get;
        init
        {
            ArgumentNullException.ThrowIfNull(value);
            foreach (var register in value.Keys)
            {
                if (!ScenarioRegisters.IsIdRegister(register))
                    throw new ArgumentException($"{register} is not an ID register ({ScenarioRegisters.IdRegisterList}).", nameof(value));
            }
            field = new Dictionary<SmmuRegister, uint>(value);
        }
    } = new Dictionary<SmmuRegister, uint>();

    /// <summary>Register writes, in the order they happen (after <see cref="Memory"/> is loaded).</summary>
    public IReadOnlyList<RegisterWrite> Writes { get; init => field = CopyList(value); } = [];

    /// <summary>Memory contents, applied in order before the writes (a later block overwrites an earlier one).</summary>
    public IReadOnlyList<MemoryBlock> Memory { get; init => field = CopyList(value); } = [];

    /// <summary>Device accesses to translate, in order.</summary>
    public IReadOnlyList<Access> Accesses { get; init => field = CopyList(value); } = [];

    /// <summary>Writes every <see cref="Memory"/> block into <paramref name="memory"/>, in order.</summary>
    public void LoadMemory(IPhysicalMemory memory)
    {
        ArgumentNullException.ThrowIfNull(memory);
        foreach (var block in Memory) block.WriteTo(memory);
    }

    public bool Equals(Scenario? other) =>
        other is not null
        && Description == other.Description
        && Idr.Count == other.Idr.Count
        && Idr.All(kv => other.Idr.TryGetValue(kv.Key, out uint v) && v == kv.Value)
        && Writes.SequenceEqual(other.Writes)
        && Memory.SequenceEqual(other.Memory)
        && Accesses.SequenceEqual(other.Accesses);

    public override int GetHashCode() =>
        HashCode.Combine(Description, Idr.Count, Writes.Count, Memory.Count, Accesses.Count);

    private static T[] CopyList<T>(IReadOnlyList<T> value) where T : class
    {
        ArgumentNullException.ThrowIfNull(value);
        var copy = value.ToArray();
        if (Array.IndexOf(copy, null) is int i and >= 0)
            throw new ArgumentException($"Element {i} is null.", nameof(value));
        return copy;
    }
}

/// <summary>
/// One register write: <see cref="Width"/> bits of <see cref="Value"/> at <see cref="Offset"/> in the
/// SMMU's register frame. <see cref="Register"/> is set when the write names a register (it is then
/// the register at <see cref="Offset"/>); writes by bare offset leave it null.
/// </summary>
public sealed record RegisterWrite
{
    /// <summary>A write to a named register; <paramref name="width"/> is 32 or 64.</summary>
    public RegisterWrite(SmmuRegister register, ulong value, int width = 32)
        : this((uint)register, value, width)
    {
        if (!ScenarioRegisters.IsNamed(register))
            throw new ArgumentOutOfRangeException(nameof(register), $"0x{(uint)register:x} is not a named SMMUv3 register.");
        Register = register;
    }

    /// <summary>A write by offset into the register frame; <paramref name="width"/> is 32 or 64.</summary>
    public RegisterWrite(uint offset, ulong value, int width = 32)
    {
        if (width is not (32 or 64))
            throw new ArgumentOutOfRangeException(nameof(width), $"Width {width} is not 32 or 64.");
        if (ScenarioRegisters.CheckOffset(offset, width) is string offsetError)
            throw new ArgumentOutOfRangeException(nameof(offset), offsetError);
        if (!JsonNumber.FitsIn(value, width))
            throw new ArgumentOutOfRangeException(nameof(value), $"{JsonNumber.ToHex(value)} does not fit in {width} bits.");
        Offset = offset;
        Value = value;
        Width = width;
    }

    /// <summary>Byte offset in the register frame (4-byte aligned, 8 for a 64-bit write).</summary>
    public uint Offset { get; }

    /// <summary>The register the write named, if it named one.</summary>
    public SmmuRegister? Register { get; }

    /// <summary>The spec name of <see cref="Register"/> (<c>STRTAB_BASE</c>), or null for a write by offset.</summary>
    public string? Name => Register?.ToString();

    public ulong Value { get; }

    /// <summary>32 or 64.</summary>
    public int Width { get; }

    public override string ToString() =>
        $"{Name ?? JsonNumber.ToHex(Offset)}{(Width == 64 ? "/64" : "")} = {JsonNumber.ToHex(Value)}";
}

/// <summary>
/// Consecutive little-endian 64-bit words in physical memory starting at <see cref="Address"/>
/// (8-byte aligned; the whole block lies below 2^52).
/// </summary>
public sealed record MemoryBlock
{
    private readonly ulong[] _qwords;

    public MemoryBlock(ulong address, ReadOnlySpan<ulong> qwords)
    {
        if (ScenarioRegisters.CheckMemoryBlock(address, (ulong)qwords.Length) is string error)
            throw new ArgumentOutOfRangeException(nameof(address), error);
        Address = address;
        _qwords = qwords.ToArray();
    }

    public MemoryBlock(ulong address, IEnumerable<ulong> qwords) : this(address, qwords.ToArray().AsSpan())
    {
    }

    public ulong Address { get; }

    /// <summary>The words, lowest address first.</summary>
    public ReadOnlyMemory<ulong> Qwords => _qwords;

    /// <summary>Bytes the block covers.</summary>
    public ulong Length => (ulong)_qwords.Length * sizeof(ulong);

    /// <summary>Writes the block into <paramref name="memory"/> in bounded chunks (blocks can be large).</summary>
    public void WriteTo(IPhysicalMemory memory)
    {
        ArgumentNullException.ThrowIfNull(memory);
        const int ChunkWords = 512; // one 4 KiB page of bytes per write
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ChunkWords * sizeof(ulong));
        try
        {
            ReadOnlySpan<ulong> words = _qwords;
            ulong address = Address;
            while (!words.IsEmpty)
            {
                int n = Math.Min(words.Length, ChunkWords);
                Span<byte> bytes = buffer.AsSpan(0, n * sizeof(ulong));
                for (int i = 0; i < n; i++)
                    BinaryPrimitives.WriteUInt64LittleEndian(bytes[(i * sizeof(ulong))..], words[i]);
                memory.Write(address, bytes);
                words = words[n..];
                address += (ulong)bytes.Length;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public bool Equals(MemoryBlock? other) =>
        other is not null && Address == other.Address && _qwords.AsSpan().SequenceEqual(other._qwords);

    public override int GetHashCode() => HashCode.Combine(Address, _qwords.Length);

    public override string ToString() => $"{JsonNumber.ToHex(Address)}: {_qwords.Length} qwords";
}

/// <summary>
/// One 4-byte DMA from the device with stream ID <see cref="Sid"/> (and substream ID
/// <see cref="Ssid"/> when not null, at most 20 bits) at <see cref="Iova"/>.
/// </summary>
public sealed record Access
{
    /// <summary>Substream IDs are 20 bits (SMMU_IDR1.SSIDSIZE is at most 20).</summary>
    public const int SsidBits = 20;

    public Access(uint sid, uint? ssid, ulong iova, AccessKind kind)
    {
        if (ssid is uint s && !JsonNumber.FitsIn(s, SsidBits))
            throw new ArgumentOutOfRangeException(nameof(ssid), $"SSID {JsonNumber.ToHex(s)} does not fit in {SsidBits} bits.");
        if (!Enum.IsDefined(kind))
            throw new ArgumentOutOfRangeException(nameof(kind), $"{kind} is not read or write.");
        Sid = sid;
        Ssid = ssid;
        Iova = iova;
        Kind = kind;
    }

    public uint Sid { get; }

    public uint? Ssid { get; }

    public ulong Iova { get; }

    public AccessKind Kind { get; }
}

/// <summary>Register checks shared by the model types, the JSON reader and the dump reader.</summary>
internal static class ScenarioRegisters
{
    public const string IdRegisterList = "IDR0-IDR5, IIDR, AIDR";

    public static bool IsIdRegister(SmmuRegister r) => SmmuRegisters.IsIdRegister(r);

    /// <summary>A register <see cref="SmmuRegisters.TryParse"/> can name (Page1 is a base, not a register).</summary>
    public static bool IsNamed(SmmuRegister r) => r != SmmuRegister.Page1 && Enum.IsDefined(r);

    /// <summary>A register by spec name (offsets are parsed as numbers by the callers).</summary>
    public static bool TryParseName(ReadOnlySpan<char> name, out SmmuRegister register)
    {
        register = default;
        return !name.IsEmpty && char.IsAsciiLetter(name[0]) && !name.ContainsAnyExcept(ScenarioJson.IdentifierChars)
            && SmmuRegisters.TryParse(name.ToString(), out register) && IsNamed(register);
    }

    /// <summary>Null when <paramref name="width"/> is 32 or 64, otherwise why not.</summary>
    public static string? CheckWidth(ulong width) => width is 32 or 64 ? null : $"{width} is not 32 or 64";

    /// <summary>Null when a <paramref name="width"/>-bit access at <paramref name="offset"/> is aligned and inside the frame.</summary>
    public static string? CheckOffset(ulong offset, int width)
    {
        ulong bytes = (ulong)width / 8;
        if (offset % 4 != 0) return $"offset {JsonNumber.ToHex(offset)} is not 4-byte aligned";
        if (offset >= SmmuRegisters.FrameSize || bytes > SmmuRegisters.FrameSize - offset)
            return $"offset {JsonNumber.ToHex(offset)} is outside the {JsonNumber.ToHex(SmmuRegisters.FrameSize)}-byte register frame";
        if (width == 64 && offset % 8 != 0) return $"a 64-bit write at offset {JsonNumber.ToHex(offset)} is not 8-byte aligned";
        return null;
    }

    /// <summary>Null when <paramref name="count"/> qwords at <paramref name="address"/> are aligned and below 2^52.</summary>
    public static string? CheckMemoryBlock(ulong address, ulong count)
    {
        if (address % 8 != 0) return $"{JsonNumber.ToHex(address)} is not 8-byte aligned";
        if (address >= SparseMemory.AddressLimit)
            return $"{JsonNumber.ToHex(address)} is beyond the {SparseMemory.AddressBits}-bit physical address space";
        if (count > (SparseMemory.AddressLimit - address) / 8)
            return $"a block of {count} qwords at {JsonNumber.ToHex(address)} ends beyond the {SparseMemory.AddressBits}-bit physical address space";
        return null;
    }

    /// <summary>The width a register has when nothing says otherwise: 64 for the 64-bit registers at their exact offset.</summary>
    public static int NaturalWidth(uint offset) =>
        Enum.IsDefined((SmmuRegister)offset) && SmmuRegisters.Is64Bit((SmmuRegister)offset) ? 64 : 32;
}
