using System.Buffers.Binary;

namespace NestedSmmu.Vmm.Acpi;

/// <summary>
/// A growable little-endian byte buffer: append with BinaryPrimitives, reserve a field and patch it
/// once its value is known (lengths, offsets, checksums).
/// </summary>
public sealed class ByteSink
{
    private byte[] _buffer = new byte[256];

    /// <summary>Bytes written so far.</summary>
    public int Length { get; private set; }

    /// <summary>The written bytes (a view; valid until the next append).</summary>
    public Span<byte> Written => _buffer.AsSpan(0, Length);

    /// <summary>Appends <paramref name="count"/> zero bytes and returns where they start.</summary>
    public int Reserve(int count)
    {
        int at = Length;
        Ensure(count);
        _buffer.AsSpan(at, count).Clear();
        Length += count;
        return at;
    }

    // Each writer reserves first: Reserve may replace the buffer, so it is read only afterwards.
    public void U8(byte value) => Slot(1)[0] = value;
    public void U16(ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(Slot(2), value);
    public void U32(uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Slot(4), value);
    public void U64(ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Slot(8), value);

    public void Bytes(ReadOnlySpan<byte> bytes) => bytes.CopyTo(Slot(bytes.Length));

    /// <summary>ASCII text padded with <paramref name="pad"/> (or cut) to exactly <paramref name="width"/> bytes.</summary>
    public void Ascii(string text, int width, byte pad = (byte)' ')
    {
        var span = Slot(width);
        span.Fill(pad);
        System.Text.Encoding.ASCII.GetBytes(text.AsSpan(0, Math.Min(text.Length, width)), span);
    }

    public void PatchU8(int at, byte value) => _buffer[at] = value;
    public void PatchU16(int at, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(_buffer.AsSpan(at), value);
    public void PatchU32(int at, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(at), value);

    /// <summary>A copy of the written bytes.</summary>
    public byte[] ToArray() => Written.ToArray();

    private Span<byte> Slot(int count)
    {
        int at = Reserve(count);
        return _buffer.AsSpan(at, count);
    }

    private void Ensure(int more)
    {
        if (Length + more <= _buffer.Length) return;
        Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, Length + more));
    }
}
