using System.Text.Json;
using NestedSmmu.Tests.Common;

namespace NestedSmmu.Iommufd.Tests;

/// <summary>
/// Loads tests/vectors/iommufd-uapi.json: the layout of include/uapi/linux/iommufd.h as
/// compiled from the Linux 7.3 header (struct sizes, field offsets, ioctl numbers, constants;
/// provenance in tests/vectors/README.md).
/// </summary>
internal static class UapiVectors
{
    public const string FileName = "iommufd-uapi.json";

    private static readonly Lazy<JsonDocument> s_document = new(Load);

    public static JsonElement Root => s_document.Value.RootElement;

    public static string Locate() => TestVectors.PathOf(FileName);

    private static JsonDocument Load() => JsonDocument.Parse(File.ReadAllBytes(Locate()));
}
