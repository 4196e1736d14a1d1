using System.Buffers.Binary;
using System.Text;

namespace NestedSmmu.Vmm.Acpi;

/// <summary>
/// A small AML encoder (ACPI 6.5, chapter 20): name strings, integers, strings, buffers and packages,
/// Name, Device and Scope. Each method returns the encoded bytes of one term, so terms nest by
/// composition; package lengths are computed from the encoded contents.
/// </summary>
public static class Aml
{
    /// <summary>A name string: a path of 1-4 character segments, '_'-padded, optionally rooted with '\' (20.2.2).</summary>
    public static byte[] NameString(string path)
    {
        var bytes = new List<byte>();
        string rest = path;
        if (rest.StartsWith('\\'))
        {
            bytes.Add(AmlOpcode.RootChar);
            rest = rest[1..];
        }
        string[] segments = rest.Length == 0 ? [] : rest.Split('.');
        if (segments.Length == 2) bytes.Add(AmlOpcode.DualNamePrefix);
        else if (segments.Length > 2)
        {
            bytes.Add(AmlOpcode.MultiNamePrefix);
            bytes.Add((byte)segments.Length);
        }
        if (segments.Length == 0) bytes.Add(0); // NullName
        foreach (string segment in segments) bytes.AddRange(NameSeg(segment));
        return [.. bytes];
    }

    /// <summary>One NameSeg: a lead character A-Z or '_', then A-Z, 0-9 or '_', padded to four with '_'.</summary>
    public static byte[] NameSeg(string segment)
    {
        if (segment.Length is 0 or > AmlOpcode.NameSegLength)
            throw new ArgumentException($"AML name segment '{segment}' must have 1 to 4 characters.", nameof(segment));
        for (int i = 0; i < segment.Length; i++)
        {
            char c = segment[i];
            bool ok = c is (>= 'A' and <= 'Z') or '_' || (i > 0 && c is >= '0' and <= '9');
            if (!ok) throw new ArgumentException($"AML name segment '{segment}' has an invalid character '{c}'.", nameof(segment));
        }
        var seg = new byte[AmlOpcode.NameSegLength];
        Array.Fill(seg, AmlOpcode.NameSegPad);
        Encoding.ASCII.GetBytes(segment, seg);
        return seg;
    }

    /// <summary>
    /// An integer in the shortest encoding: ZeroOp, OneOp, or a Byte/Word/DWord/QWord prefix
    /// (20.2.3), as QEMU's aml_int chooses.
    /// </summary>
    public static byte[] Integer(ulong value)
    {
        if (value == 0) return [AmlOpcode.Zero];
        if (value == 1) return [AmlOpcode.One];
        if (value <= byte.MaxValue) return [AmlOpcode.BytePrefix, (byte)value];
        var bytes = value <= ushort.MaxValue ? new byte[3] : value <= uint.MaxValue ? new byte[5] : new byte[9];
        bytes[0] = bytes.Length switch { 3 => AmlOpcode.WordPrefix, 5 => AmlOpcode.DWordPrefix, _ => AmlOpcode.QWordPrefix };
        Span<byte> le = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(le, value);
        le[..(bytes.Length - 1)].CopyTo(bytes.AsSpan(1));
        return bytes;
    }

    /// <summary>An ASCII string, NUL-terminated (20.2.3 String).</summary>
    public static byte[] String(string text) => [AmlOpcode.StringPrefix, .. Encoding.ASCII.GetBytes(text), 0];

    /// <summary>A buffer of bytes: BufferOp PkgLength BufferSize ByteList (20.2.5.4).</summary>
    public static byte[] Buffer(ReadOnlySpan<byte> contents) =>
        WithPkgLength(AmlOpcode.Buffer, [.. Integer((ulong)contents.Length), .. contents]);

    /// <summary>A UTF-16LE string in a buffer with a NUL terminator, as ASL's Unicode() makes (19.6.148).</summary>
    public static byte[] Unicode(string text) => Buffer([.. Encoding.Unicode.GetBytes(text), 0, 0]);

    /// <summary>A package: PackageOp PkgLength NumElements PackageElementList (20.2.5.4).</summary>
    public static byte[] Package(params byte[][] elements)
    {
        if (elements.Length > byte.MaxValue) throw new ArgumentException("A Package holds at most 255 elements (use VarPackage).", nameof(elements));
        return WithPkgLength(AmlOpcode.Package, [(byte)elements.Length, .. elements.SelectMany(e => e)]);
    }

    /// <summary>Name (NameSeg, DataRefObject) (20.2.5.1).</summary>
    public static byte[] Name(string name, byte[] value) => [AmlOpcode.Name, .. NameString(name), .. value];

    /// <summary>Device (NameString) { TermList } (20.2.5.2).</summary>
    public static byte[] Device(string name, params byte[][] terms) =>
        [AmlOpcode.ExtOpPrefix, .. WithPkgLength(AmlOpcode.DeviceExt, [.. NameString(name), .. terms.SelectMany(t => t)])];

    /// <summary>Scope (NameString) { TermList } (20.2.5.1).</summary>
    public static byte[] Scope(string name, params byte[][] terms) =>
        WithPkgLength(AmlOpcode.Scope, [.. NameString(name), .. terms.SelectMany(t => t)]);

    /// <summary>
    /// opcode PkgLength contents. PkgLength counts itself (20.2.4): one byte holds up to 63; longer
    /// lengths take 1-3 more bytes, the lead byte giving the count in bits 7:6 and the low nibble.
    /// </summary>
    public static byte[] WithPkgLength(byte opcode, byte[] contents)
    {
        byte[] length = PkgLength(contents.Length);
        return [opcode, .. length, .. contents];
    }

    /// <summary>The PkgLength encoding for <paramref name="contentLength"/> bytes of contents.</summary>
    public static byte[] PkgLength(int contentLength)
    {
        const int OneByteMax = 0x3F;
        if (contentLength + 1 <= OneByteMax) return [(byte)(contentLength + 1)];
        for (int extra = 1; extra <= 3; extra++)
        {
            int total = contentLength + 1 + extra;
            if (total >= 1 << (4 + 8 * extra)) continue;
            var bytes = new byte[1 + extra];
            bytes[0] = (byte)((extra << 6) | (total & 0xF));
            for (int i = 1; i <= extra; i++) bytes[i] = (byte)(total >> (4 + 8 * (i - 1)));
            return bytes;
        }
        throw new ArgumentOutOfRangeException(nameof(contentLength), contentLength, "AML package too large (PkgLength holds 28 bits).");
    }
}
