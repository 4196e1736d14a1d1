using System.Globalization;
using System.Numerics;

namespace NestedSmmu.Vmm.Config;

/// <summary>
/// QemuOpts syntax (util/qemu-option.c opts_do_parse): <c>[implied-value,]key=value,...</c> with
/// <c>,,</c> for a literal comma; a bare <c>key</c> means <c>key=on</c> and <c>nokey</c>
/// <c>key=off</c> (both deprecated short forms, warned about); <c>help</c> or <c>?</c> asks for help.
/// </summary>
internal static class QemuOpts
{
    /// <summary>Splits an option argument into its properties; the implied key names a leading bare value.</summary>
    public static List<OptionProperty> Split(string text, string? impliedKey, List<string> warnings, string quote)
    {
        var result = new List<OptionProperty>();
        int i = 0;
        bool first = true;
        while (i <= text.Length)
        {
            string param = ReadUntilComma(text, ref i);
            if (param.Length == 0 && i > text.Length && !first) break;
            int eq = param.IndexOf('=');
            if (param is "help" or "?")
            {
                throw new QemuConfigException(quote,
                    "help requests are QEMU's to answer: run it with this option to list properties (nothing to check here)");
            }
            if (eq < 0 && first && impliedKey is not null)
            {
                result.Add(new OptionProperty(impliedKey, param));
            }
            else if (eq < 0)
            {
                // Short-form booleans (qemu-option.c parse_option_bool's deprecated forms).
                if (param.StartsWith("no", StringComparison.Ordinal) && param.Length > 2)
                {
                    warnings.Add($"{quote}: warning: short-form boolean option '{param}' deprecated\nPlease use {param[2..]}=off instead");
                    result.Add(new OptionProperty(param[2..], "off"));
                }
                else
                {
                    warnings.Add($"{quote}: warning: short-form boolean option '{param}' deprecated\nPlease use {param}=on instead");
                    result.Add(new OptionProperty(param, "on"));
                }
            }
            else
            {
                result.Add(new OptionProperty(param[..eq], param[(eq + 1)..]));
            }
            first = false;
            if (i > text.Length) break;
        }
        return result;
    }

    // Reads up to the next single comma (",," is a literal comma) and moves past it.
    private static string ReadUntilComma(string text, ref int i)
    {
        var sb = new System.Text.StringBuilder();
        while (i < text.Length)
        {
            char c = text[i];
            if (c == ',')
            {
                if (i + 1 < text.Length && text[i + 1] == ',') { sb.Append(','); i += 2; continue; }
                i++;
                return sb.ToString();
            }
            sb.Append(c);
            i++;
        }
        i = text.Length + 1;
        return sb.ToString();
    }

    /// <summary>Writes properties back with <c>,</c> doubled inside values.</summary>
    public static string Join(IEnumerable<OptionProperty> properties) =>
        string.Join(",", properties.Select(p => p.Value is null ? Escape(p.Key) : $"{Escape(p.Key)}={Escape(p.Value)}"));

    private static string Escape(string s) => s.Replace(",", ",,", StringComparison.Ordinal);

    /// <summary>
    /// An unsigned integer as QEMU's keyval input visitor reads one (qemu_strtou64 with base 0:
    /// decimal, 0x hex, leading-0 octal); a minus sign or junk is not a number.
    /// </summary>
    public static bool TryParseUnsigned(string s, out ulong value, out bool overflow)
    {
        value = 0;
        overflow = false;
        string t = s.Trim();
        if (t.Length == 0) return false;
        if (t.StartsWith('-'))
        {
            // strtoull accepts "-1" (wrapping); QEMU's qemu_strtou64 then rejects it as out of range.
            if (TryParseUnsigned(t[1..], out _, out _)) { overflow = true; return true; }
            return false;
        }
        int radix = 10;
        if (t.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) { radix = 16; t = t[2..]; }
        else if (t.Length > 1 && t[0] == '0') { radix = 8; t = t[1..]; }
        if (t.Length == 0) return false;
        BigInteger v = BigInteger.Zero;
        foreach (char c in t)
        {
            int digit = c is >= '0' and <= '9' ? c - '0' : c is >= 'a' and <= 'f' ? c - 'a' + 10 : c is >= 'A' and <= 'F' ? c - 'A' + 10 : 99;
            if (digit >= radix) return false;
            v = v * radix + digit;
        }
        if (v > ulong.MaxValue) { overflow = true; return true; }
        value = (ulong)v;
        return true;
    }

    /// <summary>
    /// A size as qemu_strtosz reads one (util/cutils.c do_strtosz): a number (decimal, may have a
    /// fraction; or 0x hex) and an optional suffix B, K, M, G, T, P, E (any case).
    /// </summary>
    /// <param name="text">The text.</param>
    /// <param name="defaultSuffixUnit">The unit of a bare number (1 for bytes; -m uses MiB).</param>
    /// <param name="value">The size in bytes.</param>
    public static bool TryParseSize(string text, ulong defaultSuffixUnit, out ulong value)
    {
        value = 0;
        string t = text.Trim();
        if (t.Length == 0) return false;
        ulong unit = defaultSuffixUnit;
        char last = char.ToUpperInvariant(t[^1]);
        int shift = "BKMGTPE".IndexOf(last);
        if (shift >= 0)
        {
            unit = 1UL << (10 * shift);
            t = t[..^1];
        }
        if (t.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            if (!ulong.TryParse(t[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong hex)) return false;
            BigInteger r = (BigInteger)hex * unit;
            if (r > ulong.MaxValue) return false;
            value = (ulong)r;
            return true;
        }
        if (!decimal.TryParse(t, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal d) || d < 0) return false;
        decimal bytes = Math.Floor(d * unit);
        if (bytes > ulong.MaxValue) return false;
        value = (ulong)bytes;
        return true;
    }
}
