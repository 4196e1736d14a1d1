using System.Text.Json;

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
}
