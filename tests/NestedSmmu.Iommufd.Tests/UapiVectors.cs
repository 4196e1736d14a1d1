using System.Text.Json;

namespace NestedSmmu.Iommufd.Tests;

/// <summary>
/// Loads shared/vectors/iommufd-uapi.json: the layout of include/uapi/linux/iommufd.h as
/// compiled from the 7.3 header (struct sizes, field offsets, ioctl numbers, constants).
/// The repository sits next to the shared/ folder, so the file is found by walking up
/// from the test's base directory.
/// </summary>
internal static class UapiVectors
{
    public const string RelativePath = "shared/vectors/iommufd-uapi.json";

    private static readonly Lazy<JsonDocument> s_document = new(Load);

    public static JsonElement Root => s_document.Value.RootElement;

    public static string Locate()
    {
        string start = AppContext.BaseDirectory;
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "shared", "vectors", "iommufd-uapi.json");
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException(
            $"Could not find {RelativePath} in any parent of the test directory '{start}'. " +
            "The uAPI layout test needs the shared vectors checked out next to the repository " +
            "(<parent>/shared/vectors/iommufd-uapi.json beside <parent>/<repo>).");
    }

    private static JsonDocument Load() => JsonDocument.Parse(File.ReadAllBytes(Locate()));
}
