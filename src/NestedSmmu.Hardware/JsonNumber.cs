using System.Globalization;

namespace NestedSmmu.Hardware;

/// <summary>
/// The number spellings of the project's JSON inputs (scenarios, results, host profiles) and
/// register dumps: <c>0x</c>-prefixed hex or plain decimal, unsigned, at most 64 bits. Beside
/// <see cref="JsonPaths"/> so that every reader and the CLI accept the same text.
/// </summary>
public static class JsonNumber
{
    /// <summary>Largest integer a JSON number may carry exactly (IEEE double): values must be below 2^53.</summary>
    public const ulong JsonNumberLimit = 1UL << 53;

    /// <summary>
    /// Parses <c>0x</c>/<c>0X</c> hex or decimal digits, nothing else (no sign, spaces or separators).
    /// On failure <paramref name="error"/> says why, quoting the text: "'0xZZ' is not a hex or
    /// decimal number" or "'0x10000000000000000' does not fit in 64 bits".
    /// </summary>
    public static bool TryParse(ReadOnlySpan<char> text, out ulong value, out string? error)
    {
        value = 0;
        bool hex = text.Length >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
        ReadOnlySpan<char> digits = hex ? text[2..] : text;
        bool wellFormed = !digits.IsEmpty
            && (hex ? !digits.ContainsAnyExcept(HexDigits) : !digits.ContainsAnyExceptInRange('0', '9'));
        if (!wellFormed)
        {
            error = $"'{text}' is not a hex or decimal number";
            return false;
        }

        bool parsed = hex
            ? ulong.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value)
            : ulong.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out value);
        if (!parsed)
        {
            // The digits are well formed, so the only way to fail is overflow.
            error = $"'{text}' does not fit in 64 bits";
            return false;
        }
        error = null;
        return true;
    }

    /// <summary>Parses like <see cref="TryParse"/> and throws <see cref="FormatException"/> with its message.</summary>
    public static ulong Parse(ReadOnlySpan<char> text) =>
        TryParse(text, out ulong value, out string? error) ? value : throw new FormatException(error);

    /// <summary>True when <paramref name="value"/> needs no more than <paramref name="bits"/> bits (1..64).</summary>
    public static bool FitsIn(ulong value, int bits) => bits >= 64 || value >> bits == 0;

    /// <summary>Lowercase hex without padding, as the formats write addresses and values: <c>0x4ecba567</c>.</summary>
    public static string ToHex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);

    /// <summary>Lowercase hex padded to 16 digits, as the formats write memory and event words: <c>0x0000001000000010</c>.</summary>
    public static string ToHex64(ulong value) => "0x" + value.ToString("x16", CultureInfo.InvariantCulture);

    private static readonly System.Buffers.SearchValues<char> HexDigits =
        System.Buffers.SearchValues.Create("0123456789abcdefABCDEF");
}
