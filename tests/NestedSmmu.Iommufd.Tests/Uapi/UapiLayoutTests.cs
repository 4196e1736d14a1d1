using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Uapi;

/// <summary>
/// Checks every uAPI declaration against tests/vectors/iommufd-uapi.json (sizes and offsets
/// of the 7.3 header). The test walks the JSON, so a vector the C# lacks fails, and it counts
/// what it checked, so it cannot pass by checking nothing.
/// </summary>
public class UapiLayoutTests
{
    // Counts of the vector file: 38 structs with 180 listed fields, 21 ioctls, 56 constants.
    private const int JsonStructs = 38;
    private const int JsonFields = 180;
    private const int JsonIoctls = 21;
    private const int JsonConstants = 56;

    /// <summary>The structs the VMM seam uses; each must be declared and match.</summary>
    public static readonly string[] RequiredStructs =
    [
        "iommu_destroy", "iommu_ioas_alloc", "iommu_ioas_map", "iommu_ioas_unmap",
        "iommu_ioas_iova_ranges", "iommu_iova_range", "iommu_hw_info", "iommu_hwpt_alloc",
        "iommu_hwpt_invalidate", "iommu_viommu_alloc", "iommu_vdevice_alloc", "iommu_veventq_alloc",
        "iommu_hw_queue_alloc", "iommu_hw_info_arm_smmuv3", "iommu_hw_info_tegra241_cmdqv",
        "iommu_hwpt_arm_smmuv3", "iommu_viommu_arm_smmuv3_invalidate", "iommu_viommu_tegra241_cmdqv",
        "iommufd_vevent_header", "iommu_vevent_arm_smmuv3", "iommu_vevent_tegra241_cmdqv",
    ];

    /// <summary>Ioctls declared in C# that the vector file does not list (IOAS_CHANGE_PROCESS, nr 0x92).</summary>
    private static readonly string[] IoctlsBeyondVectors = ["IOMMU_IOAS_CHANGE_PROCESS"];

    private static int UnsafeSizeOf(Type t) =>
        (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(t).Invoke(null, null)!;

    [Fact]
    public void Every_struct_in_the_vectors_has_its_size_and_field_offsets()
    {
        var declared = UapiCatalog.Structs.ToDictionary(s => s.CName);
        int structs = 0, fields = 0;
        var failures = new List<string>();

        foreach (JsonProperty s in UapiVectors.Root.GetProperty("structs").EnumerateObject())
        {
            if (!declared.TryGetValue(s.Name, out UapiStructInfo? info))
            {
                failures.Add($"{s.Name}: not declared in C#");
                continue;
            }
            structs++;
            int size = s.Value.GetProperty("size").GetInt32();
            if (Marshal.SizeOf(info.Type) != size) failures.Add($"{s.Name}: Marshal.SizeOf {Marshal.SizeOf(info.Type)} != {size}");
            if (UnsafeSizeOf(info.Type) != size) failures.Add($"{s.Name}: Unsafe.SizeOf {UnsafeSizeOf(info.Type)} != {size}");

            var byCName = info.Fields.ToDictionary(f => f.CName);
            var jsonOffsets = s.Value.GetProperty("offsets");
            foreach (JsonProperty f in jsonOffsets.EnumerateObject())
            {
                if (!byCName.TryGetValue(f.Name, out UapiFieldInfo? field))
                {
                    failures.Add($"{s.Name}.{f.Name}: field not declared");
                    continue;
                }
                fields++;
                int offset = (int)Marshal.OffsetOf(info.Type, field.FieldName);
                if (offset != f.Value.GetInt32()) failures.Add($"{s.Name}.{f.Name}: offset {offset} != {f.Value.GetInt32()}");
            }
            // No C# field may claim a C name the header does not have.
            foreach (UapiFieldInfo field in info.Fields)
            {
                if (!jsonOffsets.TryGetProperty(field.CName, out _)) failures.Add($"{s.Name}: extra C# field {field.FieldName} ({field.CName})");
            }
        }

        failures.ShouldBeEmpty();
        structs.ShouldBe(JsonStructs);
        fields.ShouldBe(JsonFields);
        UapiCatalog.Structs.Count.ShouldBe(JsonStructs, "every declared uAPI struct is covered by the vectors");
    }

    [Fact]
    public void Required_structs_are_declared_with_the_vector_layout()
    {
        var declared = UapiCatalog.Structs.ToDictionary(s => s.CName);
        var json = UapiVectors.Root.GetProperty("structs");
        int fields = 0;
        foreach (string name in RequiredStructs)
        {
            declared.ShouldContainKey(name);
            var info = declared[name];
            var vector = json.GetProperty(name);
            Marshal.SizeOf(info.Type).ShouldBe(vector.GetProperty("size").GetInt32(), name);
            foreach (JsonProperty f in vector.GetProperty("offsets").EnumerateObject())
            {
                var field = info.Fields.Single(x => x.CName == f.Name);
                ((int)Marshal.OffsetOf(info.Type, field.FieldName)).ShouldBe(f.Value.GetInt32(), $"{name}.{f.Name}");
                fields++;
            }
        }
        RequiredStructs.Length.ShouldBe(21);
        fields.ShouldBe(100);
    }

    [Fact]
    public void Every_ioctl_number_matches_and_is_0x3B00_or_nr()
    {
        var declared = UapiCatalog.Ioctls.ToDictionary(i => i.CName);
        int checkedCount = 0;
        foreach (JsonProperty p in UapiVectors.Root.GetProperty("ioctls").EnumerateObject())
        {
            declared.ShouldContainKey(p.Name);
            declared[p.Name].Value.ShouldBe(p.Value.GetUInt64(), p.Name);
            (declared[p.Name].Value & ~0xFFUL).ShouldBe(0x3B00UL, p.Name);
            checkedCount++;
        }
        checkedCount.ShouldBe(JsonIoctls);
        declared.Keys.Except(JsonNames("ioctls")).ShouldBe(IoctlsBeyondVectors);
        UapiCatalog.NameOf(IommufdIoctl.IoasMap).ShouldBe("IOMMU_IOAS_MAP");
        IommufdIoctl.HwQueueAlloc.CommandNumber().ShouldBe((byte)0x94);
    }

    [Fact]
    public void Every_constant_matches_its_vector()
    {
        var declared = UapiCatalog.Constants.GroupBy(c => c.CName).ToDictionary(g => g.Key, g => g.ToArray());
        int checkedCount = 0;
        foreach (JsonProperty p in UapiVectors.Root.GetProperty("constants").EnumerateObject())
        {
            declared.ShouldContainKey(p.Name);
            declared[p.Name].Length.ShouldBe(1, $"{p.Name} is declared once");
            declared[p.Name][0].Value.ShouldBe(p.Value.GetUInt64(), $"{p.Name} ({declared[p.Name][0].CSharpName})");
            checkedCount++;
        }
        checkedCount.ShouldBe(JsonConstants);
        declared.Keys.Except(JsonNames("constants")).ShouldBeEmpty("no C# constant claims a name the header lacks");
    }

    [Fact]
    public void Uapi_structs_are_blittable_and_every_public_field_is_named()
    {
        foreach (UapiStructInfo s in UapiCatalog.Structs)
        {
            ContainsReferences(s.Type).ShouldBeFalse(s.CName);
            s.Type.StructLayoutAttribute!.Value.ShouldBe(LayoutKind.Explicit, s.CName);
            int publicFields = s.Type.GetFields(BindingFlags.Public | BindingFlags.Instance).Length;
            s.Fields.Count.ShouldBe(publicFields, $"{s.CName}: every public field carries [UapiName]");
        }
    }

    [Fact]
    public void Vector_file_is_the_repository_copy_beside_the_test_binaries()
    {
        string path = UapiVectors.Locate();
        path.Replace('\\', '/').ShouldEndWith("/vectors/" + UapiVectors.FileName);
        path.ShouldStartWith(AppContext.BaseDirectory);
    }

    private static bool ContainsReferences(Type t) =>
        (bool)typeof(RuntimeHelpers).GetMethod(nameof(RuntimeHelpers.IsReferenceOrContainsReferences))!
            .MakeGenericMethod(t).Invoke(null, null)!;

    private static IEnumerable<string> JsonNames(string section) =>
        UapiVectors.Root.GetProperty(section).EnumerateObject().Select(p => p.Name).ToArray();
}
