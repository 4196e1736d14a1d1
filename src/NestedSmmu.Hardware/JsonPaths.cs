using System.Buffers;
using System.Text.Json;
using System.Text.Unicode;

namespace NestedSmmu.Hardware;

/// <summary>
/// JSONPath-style locations for error messages (<c>$.memory[2].qwords[1]</c>), shared by every
/// reader of the project's JSON inputs (scenarios, host profiles) so errors read alike.
/// </summary>
public static class JsonPaths
{
    /// <summary>The path of member <paramref name="name"/> of the value at <paramref name="path"/>: <c>$.a.b</c>, or <c>$['a b']</c>.</summary>
    public static string Member(string path, string name)
    {
        bool plain = name.Length > 0 && (char.IsAsciiLetter(name[0]) || name[0] == '_')
            && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
        return plain ? $"{path}.{name}" : $"{path}['{name.Replace("\\", "\\\\").Replace("'", "\\'")}']";
    }

    public static string Item(string path, int index) => $"{path}[{index}]";

    /// <summary>A JSON value kind as an error message names it ("an object", "a string", ...).</summary>
    public static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };

    /// <summary>
    /// The whole of a UTF-8 JSON stream, or the error message for its first invalid UTF-8 sequence.
    /// System.Text.Json parses such bytes but throws InvalidOperationException later, when a string
    /// or member name holding them is read; the readers check up front so that the user gets one
    /// message with the place instead.
    /// </summary>
    public static byte[] ReadUtf8(Stream stream, out string? invalid)
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        byte[] bytes = buffer.ToArray();
        invalid = null;
        ReadOnlySpan<byte> rest = bytes;
        Span<char> chars = stackalloc char[256];
        int offset = 0;
        while (!rest.IsEmpty)
        {
            OperationStatus status = Utf8.ToUtf16(rest, chars, out int read, out _, replaceInvalidSequences: false);
            offset += read;
            rest = rest[read..];
            if (status == OperationStatus.InvalidData || status == OperationStatus.NeedMoreData)
            {
                int line = bytes.AsSpan(0, offset).Count((byte)'\n') + 1;
                int column = offset - (bytes.AsSpan(0, offset).LastIndexOf((byte)'\n') + 1) + 1;
                invalid = $"not valid UTF-8 (line {line}, byte {column}: 0x{bytes[offset]:X2})";
                break;
            }
        }
        return bytes;
    }
}
