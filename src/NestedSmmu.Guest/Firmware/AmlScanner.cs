using System.Buffers.Binary;
using System.Text;

namespace NestedSmmu.Guest.Firmware;

/// <summary>A Device found in AML with the named objects a driver matches on.</summary>
/// <param name="Path">Its absolute name, e.g. \_SB.CV00.</param>
/// <param name="Hid">_HID as a string (an EISA ID integer is decoded to its 7-character form), or null.</param>
/// <param name="Uid">_UID when it is an integer, or null.</param>
/// <param name="UidString">_UID when it is a string, or null.</param>
/// <param name="Resources">_CRS when it is a Name holding a resource-template buffer (empty otherwise).</param>
public sealed record AcpiDevice(string Path, string? Hid, ulong? Uid, string? UidString, IReadOnlyList<AcpiResource> Resources);

/// <summary>
/// A scanner of AML definition blocks (ACPI 6.5, chapter 20) for Devices and their _HID, _UID and
/// static _CRS, as a guest needs to find platform devices such as the Tegra241 CMDQV. It follows
/// Scope and Device bodies; skips Method, If/Else/While, Field, Processor and other package-length
/// constructs whole; decodes Name values that are data (integers, strings, buffers). It does not
/// run methods: a _CRS built by a method is not seen (QEMU's are static Names).
/// </summary>
public static class AmlScanner
{
    // Opcodes (ACPI 6.5, 20.3 "AML Byte Stream Byte Values").
    private const byte ZeroOp = 0x00, OneOp = 0x01, AliasOp = 0x06, NameOp = 0x08, BytePrefix = 0x0A, WordPrefix = 0x0B,
        DWordPrefix = 0x0C, StringPrefix = 0x0D, QWordPrefix = 0x0E, ScopeOp = 0x10, BufferOp = 0x11, PackageOp = 0x12,
        VarPackageOp = 0x13, MethodOp = 0x14, ExternalOp = 0x15, ExtOpPrefix = 0x5B, IfOp = 0xA0, ElseOp = 0xA1, WhileOp = 0xA2,
        OnesOp = 0xFF;
    private const byte MutexOp = 0x01, EventOp = 0x02, RevisionOp = 0x30, OpRegionOp = 0x80, FieldOp = 0x81, DeviceOp = 0x82,
        ProcessorOp = 0x83, PowerResOp = 0x84, ThermalZoneOp = 0x85, IndexFieldOp = 0x86, BankFieldOp = 0x87;
    private const byte RootChar = (byte)'\\', ParentPrefix = (byte)'^', DualNamePrefix = 0x2E, MultiNamePrefix = 0x2F;
    private const int NameSegLength = 4;

    /// <summary>Every Device in a DSDT or SSDT (the ACPI header is checked and skipped).</summary>
    public static List<AcpiDevice> FindDevices(ReadOnlySpan<byte> table)
    {
        string sig = table.Length >= 4 ? Encoding.ASCII.GetString(table[..4]) : "";
        var header = AcpiTableHeader.Read(table, sig == "SSDT" ? "SSDT" : "DSDT");
        var devices = new List<AcpiDevice>();
        var reader = new Reader(table[..(int)header.Length].ToArray(), header.Signature);
        reader.TermList(AcpiTableHeader.Size, (int)header.Length, "\\", devices, null);
        return devices;
    }

    /// <summary>Accumulates the named objects of one Device body.</summary>
    private sealed class DeviceObjects
    {
        public string? Hid;
        public ulong? Uid;
        public string? UidString;
        public List<AcpiResource> Resources = new();
    }

    private sealed class Reader(byte[] aml, string table)
    {
        public void TermList(int at, int end, string scope, List<AcpiDevice> devices, DeviceObjects? device)
        {
            while (at < end)
            {
                int op = aml[at];
                switch (op)
                {
                    case ScopeOp:
                    {
                        int bodyEnd = PkgEnd(at + 1, out int p);
                        string name = NameString(ref p);
                        TermList(p, bodyEnd, Join(scope, name), devices, null);
                        at = bodyEnd;
                        continue;
                    }
                    case NameOp:
                    {
                        int p = at + 1;
                        string name = NameString(ref p);
                        object? value = DataObject(ref p);
                        if (device is not null) Assign(device, name, value, Join(scope, name));
                        at = p;
                        continue;
                    }
                    case MethodOp: case IfOp: case ElseOp: case WhileOp: case PackageOp: case VarPackageOp: case BufferOp:
                        at = PkgEnd(at + 1, out _);
                        continue;
                    case AliasOp:
                    {
                        int p = at + 1;
                        NameString(ref p);
                        NameString(ref p);
                        at = p;
                        continue;
                    }
                    case ExternalOp:
                    {
                        int p = at + 1;
                        NameString(ref p);
                        at = p + 2; // ObjectType, ArgumentCount
                        continue;
                    }
                    case ExtOpPrefix when at + 1 < end:
                    {
                        byte ext = aml[at + 1];
                        switch (ext)
                        {
                            case DeviceOp:
                            {
                                int bodyEnd = PkgEnd(at + 2, out int p);
                                string path = Join(scope, NameString(ref p));
                                var objects = new DeviceObjects();
                                TermList(p, bodyEnd, path, devices, objects);
                                devices.Add(new AcpiDevice(path, objects.Hid, objects.Uid, objects.UidString, objects.Resources));
                                at = bodyEnd;
                                continue;
                            }
                            case ProcessorOp: case PowerResOp: case ThermalZoneOp: case FieldOp: case IndexFieldOp: case BankFieldOp:
                                at = PkgEnd(at + 2, out _);
                                continue;
                            case MutexOp:
                            {
                                int p = at + 2;
                                NameString(ref p);
                                at = p + 1; // SyncFlags
                                continue;
                            }
                            case EventOp:
                            {
                                int p = at + 2;
                                NameString(ref p);
                                at = p;
                                continue;
                            }
                            case OpRegionOp:
                            {
                                int p = at + 2;
                                NameString(ref p);
                                p++; // RegionSpace
                                // Offset and length computed by an expression cannot be sized here: stop this list.
                                if (!IsIntegerStart(aml[p]) || DataObject(ref p) is not ulong || !IsIntegerStart(aml[p]) || DataObject(ref p) is not ulong) return;
                                at = p;
                                continue;
                            }
                        }
                        return; // an extended opcode this scanner does not size: leave the rest of this list
                    }
                    default:
                        // Any other term (a statement or expression) cannot be sized without a full parser;
                        // the enclosing Scope or Device is skipped by its package length.
                        return;
                }
            }
        }

        private static void Assign(DeviceObjects d, string name, object? value, string path)
        {
            string seg = name.Length >= NameSegLength ? name[^NameSegLength..] : name;
            switch (seg)
            {
                case "_HID":
                    d.Hid = value switch { string s => s, ulong v => DecodeEisaId((uint)v), _ => null };
                    break;
                case "_UID":
                    if (value is ulong u) d.Uid = u;
                    else if (value is string s) d.UidString = s;
                    break;
                case "_CRS" when value is byte[] buffer:
                    d.Resources = AcpiResourceDecoder.Decode(buffer, path);
                    break;
            }
        }

        private static bool IsIntegerStart(byte op) => op is ZeroOp or OneOp or OnesOp or BytePrefix or WordPrefix or DWordPrefix or QWordPrefix;

        /// <summary>A data object: integer, string or buffer; a package is skipped (null).</summary>
        private object? DataObject(ref int p)
        {
            byte op = aml[p++];
            switch (op)
            {
                case ZeroOp: return 0UL;
                case OneOp: return 1UL;
                case OnesOp: return ulong.MaxValue;
                case BytePrefix: p += 1; return (ulong)aml[p - 1];
                case WordPrefix: p += 2; return (ulong)BinaryPrimitives.ReadUInt16LittleEndian(aml.AsSpan(p - 2));
                case DWordPrefix: p += 4; return (ulong)BinaryPrimitives.ReadUInt32LittleEndian(aml.AsSpan(p - 4));
                case QWordPrefix: p += 8; return BinaryPrimitives.ReadUInt64LittleEndian(aml.AsSpan(p - 8));
                case StringPrefix:
                {
                    int start = p;
                    while (aml[p] != 0) p++;
                    return Encoding.ASCII.GetString(aml, start, p++ - start);
                }
                case BufferOp:
                {
                    int end = PkgEnd(p, out int q);
                    if (DataObject(ref q) is not ulong size) { p = end; return null; }
                    int count = (int)Math.Min(size, (ulong)(end - q));
                    var bytes = aml.AsSpan(q, count).ToArray();
                    p = end;
                    return bytes;
                }
                case PackageOp: case VarPackageOp:
                    p = PkgEnd(p, out _);
                    return null;
                case ExtOpPrefix when aml[p] == RevisionOp:
                    p++;
                    return 0UL;
                default:
                    throw new FirmwareTableException($"{table}: unexpected AML opcode 0x{op:X2} at 0x{p - 1:X} where a data object was expected.");
            }
        }

        /// <summary>Reads a PkgLength at <paramref name="at"/> (ACPI 6.5, 20.2.4); returns where the package ends and sets <paramref name="body"/> after the length bytes.</summary>
        private int PkgEnd(int at, out int body)
        {
            byte lead = aml[at];
            int follow = lead >> 6;
            int length = follow == 0 ? lead & 0x3F : lead & 0x0F;
            for (int k = 0; k < follow; k++) length |= aml[at + 1 + k] << (4 + 8 * k);
            body = at + 1 + follow;
            int end = at + length;
            if (length < 1 + follow || end > aml.Length) throw new FirmwareTableException($"{table}: package length {length} at 0x{at:X} runs past the table (0x{aml.Length:X}).");
            return end;
        }

        private string NameString(ref int p)
        {
            var sb = new StringBuilder();
            while (aml[p] is RootChar or ParentPrefix) sb.Append((char)aml[p++]);
            int segs;
            switch (aml[p])
            {
                case 0x00: p++; return sb.ToString();
                case DualNamePrefix: p++; segs = 2; break;
                case MultiNamePrefix: segs = aml[p + 1]; p += 2; break;
                default: segs = 1; break;
            }
            for (int s = 0; s < segs; s++)
            {
                if (s > 0) sb.Append('.');
                // Segments are padded with '_' to four characters; "_SB_" is written \_SB.
                string seg = Encoding.ASCII.GetString(aml, p, NameSegLength).TrimEnd('_');
                sb.Append(seg.Length == 0 ? "_" : seg);
                p += NameSegLength;
            }
            return sb.ToString();
        }

        private static string Join(string scope, string name)
        {
            if (name.StartsWith('\\')) return name;
            while (name.StartsWith('^'))
            {
                int dot = scope.LastIndexOf('.');
                scope = dot > 0 ? scope[..dot] : "\\";
                name = name[1..];
            }
            return scope == "\\" ? "\\" + name : scope + "." + name;
        }
    }

    /// <summary>Decodes a compressed EISA ID (three 5-bit letters and four hex digits, stored byte-swapped; ACPI 6.5, 6.1.5).</summary>
    public static string DecodeEisaId(uint stored)
    {
        uint v = BinaryPrimitives.ReverseEndianness(stored);
        const int letterBits = 5;
        const uint letterMask = (1u << letterBits) - 1;
        const char letterBase = (char)0x40;
        char c1 = (char)(letterBase + ((v >> 26) & letterMask)), c2 = (char)(letterBase + ((v >> 21) & letterMask)), c3 = (char)(letterBase + ((v >> 16) & letterMask));
        return $"{c1}{c2}{c3}{v & 0xFFFF:X4}";
    }
}
