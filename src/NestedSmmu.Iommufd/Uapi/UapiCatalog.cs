using System.Collections.Frozen;
using System.Reflection;

namespace NestedSmmu.Iommufd.Uapi;

/// <summary>A uAPI struct: its C name, the C# type and the C-name → C#-field mapping.</summary>
/// <param name="CName">e.g. <c>iommu_ioas_map</c>.</param>
/// <param name="Type">The blittable C# struct.</param>
/// <param name="Fields">Every field that carries a <see cref="UapiNameAttribute"/>, in declaration order.</param>
public sealed record UapiStructInfo(string CName, Type Type, IReadOnlyList<UapiFieldInfo> Fields);

/// <summary>One field of a <see cref="UapiStructInfo"/>.</summary>
/// <param name="CName">e.g. <c>user_va</c>.</param>
/// <param name="FieldName">The C# field name, usable with <c>Marshal.OffsetOf</c>.</param>
public sealed record UapiFieldInfo(string CName, string FieldName);

/// <summary>A named uAPI constant (enum member or ioctl number).</summary>
/// <param name="CName">e.g. <c>IOMMU_HWPT_ALLOC_NEST_PARENT</c>.</param>
/// <param name="CSharpName">e.g. <c>HwptAllocFlags.NestParent</c>.</param>
/// <param name="Value">The numeric value.</param>
public sealed record UapiConstantInfo(string CName, string CSharpName, ulong Value);

/// <summary>
/// The table that maps every declaration in <see cref="NestedSmmu.Iommufd.Uapi"/> to its C name,
/// built once by reflection over <see cref="UapiNameAttribute"/>. Used by messages
/// (<see cref="NameOf(IommufdIoctl)"/>) and by the layout test; never on a hot path.
/// </summary>
public static class UapiCatalog
{
    private static readonly Lazy<Tables> s_tables = new(Build);

    /// <summary>Every uAPI struct declared, in name order.</summary>
    public static IReadOnlyList<UapiStructInfo> Structs => s_tables.Value.Structs;

    /// <summary>Every <see cref="IommufdIoctl"/> member with its C macro name.</summary>
    public static IReadOnlyList<UapiConstantInfo> Ioctls => s_tables.Value.Ioctls;

    /// <summary>Every enum/flag constant (not ioctls) with its C name.</summary>
    public static IReadOnlyList<UapiConstantInfo> Constants => s_tables.Value.Constants;

    /// <summary>The C macro name of an ioctl, or its hex value when it is not a declared one.</summary>
    public static string NameOf(IommufdIoctl ioctl) =>
        s_tables.Value.IoctlNames.TryGetValue((uint)ioctl, out string? name) ? name : $"ioctl 0x{(uint)ioctl:X}";

    private sealed record Tables(
        IReadOnlyList<UapiStructInfo> Structs,
        IReadOnlyList<UapiConstantInfo> Ioctls,
        IReadOnlyList<UapiConstantInfo> Constants,
        FrozenDictionary<uint, string> IoctlNames);

    private static Tables Build()
    {
        const string ns = "NestedSmmu.Iommufd.Uapi";
        Type[] types = typeof(UapiCatalog).Assembly.GetTypes()
            .Where(t => t.Namespace == ns)
            .OrderBy(t => t.Name, StringComparer.Ordinal)
            .ToArray();

        var structs = new List<UapiStructInfo>();
        var ioctls = new List<UapiConstantInfo>();
        var constants = new List<UapiConstantInfo>();

        foreach (Type t in types)
        {
            if (t.IsValueType && !t.IsEnum && t.GetCustomAttribute<UapiNameAttribute>() is { } sn)
            {
                var fields = t.GetFields(BindingFlags.Public | BindingFlags.Instance)
                    .Where(f => f.GetCustomAttribute<UapiNameAttribute>() is not null)
                    .OrderBy(f => f.MetadataToken)
                    .Select(f => new UapiFieldInfo(f.GetCustomAttribute<UapiNameAttribute>()!.Name, f.Name))
                    .ToArray();
                structs.Add(new UapiStructInfo(sn.Name, t, fields));
            }
            else if (t.IsEnum)
            {
                var target = t == typeof(IommufdIoctl) ? ioctls : constants;
                foreach (FieldInfo f in t.GetFields(BindingFlags.Public | BindingFlags.Static))
                {
                    if (f.GetCustomAttribute<UapiNameAttribute>() is not { } cn) continue;
                    ulong value = Convert.ToUInt64(f.GetRawConstantValue(), System.Globalization.CultureInfo.InvariantCulture);
                    target.Add(new UapiConstantInfo(cn.Name, $"{t.Name}.{f.Name}", value));
                }
            }
        }

        var names = ioctls.ToFrozenDictionary(i => (uint)i.Value, i => i.CName);
        return new Tables(structs, ioctls, constants, names);
    }
}
