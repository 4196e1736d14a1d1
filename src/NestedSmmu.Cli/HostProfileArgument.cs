using NestedSmmu.Iommufd.Emulated;

namespace NestedSmmu.Cli;

/// <summary>The `--host` argument of the commands that take an emulated host: an embedded profile's name, or a profile JSON file.</summary>
internal static class HostProfileArgument
{
    /// <summary>
    /// Loads the profile <paramref name="nameOrPath"/> names (the reader validates it). Throws
    /// <see cref="ArgumentException"/> when it is neither; <paramref name="otherForms"/> lists what
    /// else the command would have accepted (plan: a sysfs directory), for that message.
    /// </summary>
    public static HostProfile Load(string nameOrPath, string? otherForms = null) =>
        HostProfile.EmbeddedNames.Contains(nameOrPath) ? HostProfile.LoadEmbedded(nameOrPath)
        : File.Exists(nameOrPath) ? HostProfile.Load(nameOrPath)
        : throw new ArgumentException(otherForms is null
            ? $"neither an embedded profile ({string.Join(", ", HostProfile.EmbeddedNames)}) nor a file"
            : $"neither an embedded profile ({string.Join(", ", HostProfile.EmbeddedNames)}), a file, nor {otherForms}");
}
