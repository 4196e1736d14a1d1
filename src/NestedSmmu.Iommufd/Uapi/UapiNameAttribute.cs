namespace NestedSmmu.Iommufd.Uapi;

/// <summary>
/// The name a struct, field or constant has in include/uapi/linux/iommufd.h. C# names are
/// PascalCase; this attribute keeps the mapping so <see cref="UapiCatalog"/> (and the layout
/// test) can line every declaration up with the C header.
/// </summary>
[AttributeUsage(AttributeTargets.Struct | AttributeTargets.Field | AttributeTargets.Enum,
    AllowMultiple = false, Inherited = false)]
public sealed class UapiNameAttribute(string name) : Attribute
{
    /// <summary>The C identifier, e.g. <c>iommu_ioas_map</c>, <c>user_va</c>, <c>IOMMU_IOAS_MAP</c>.</summary>
    public string Name { get; } = name;
}
