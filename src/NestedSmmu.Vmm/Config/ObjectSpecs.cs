using System.Text.Json.Serialization;

namespace NestedSmmu.Vmm.Config;

/// <summary><c>-object qom-type,id=...</c>: the kinds this model knows, and the rest kept as written.</summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "kind")]
[JsonDerivedType(typeof(IommufdObject), "iommufd")]
[JsonDerivedType(typeof(MemoryBackendObject), "memory-backend")]
[JsonDerivedType(typeof(AcpiGenericInitiatorObject), "acpi-generic-initiator")]
[JsonDerivedType(typeof(OtherObject), "other")]
public abstract record ObjectSpec : OptionRecord
{
    /// <inheritdoc/>
    public override string Option => "object";

    /// <summary><c>qom-type</c> (the implied first key).</summary>
    public required string QomType { get; init; }

    /// <summary><c>id</c> (QEMU requires one for -object).</summary>
    public required string Id { get; init; }
}

/// <summary><c>-object iommufd,id=...[,fd=N]</c>: an open /dev/iommu the vfio devices link to.</summary>
public sealed record IommufdObject : ObjectSpec
{
    /// <summary><c>fd</c>: a pre-opened /dev/iommu descriptor (name or number), or null to open one.</summary>
    public string? Fd { get; init; }
}

/// <summary><c>-object memory-backend-ram|file|memfd</c>: host memory for guest RAM.</summary>
public sealed record MemoryBackendObject : ObjectSpec
{
    /// <summary>The backend QOM types.</summary>
    public static readonly IReadOnlyList<string> Types = ["memory-backend-ram", "memory-backend-file", "memory-backend-memfd"];

    /// <summary><c>size</c> in bytes.</summary>
    public ulong Size { get; init; }

    /// <summary><c>share</c>: MAP_SHARED (default off, memfd: on).</summary>
    public bool Share { get; init; }

    /// <summary><c>mem-path</c> (memory-backend-file), e.g. a hugetlbfs mount, or null.</summary>
    public string? MemPath { get; init; }

    /// <summary><c>hugetlb</c> (memory-backend-memfd): back with huge pages.</summary>
    public bool Hugetlb { get; init; }

    /// <summary><c>hugetlbsize</c> in bytes (memory-backend-memfd), or null for the default huge page size.</summary>
    public ulong? HugetlbSize { get; init; }

    /// <summary><c>prealloc</c>.</summary>
    public bool Prealloc { get; init; }
}

/// <summary>
/// <c>-object acpi-generic-initiator,id=...,pci-dev=DEV,node=N</c>: an SRAT Generic Initiator
/// affinity for a PCI device (hw/acpi/acpi_generic_initiator.c).
/// </summary>
public sealed record AcpiGenericInitiatorObject : ObjectSpec
{
    /// <summary><c>pci-dev</c>: the id of the device.</summary>
    public required string PciDev { get; init; }

    /// <summary><c>node</c>: the NUMA node.</summary>
    public uint Node { get; init; }
}

/// <summary>Any other -object: kept as written, not modelled.</summary>
public sealed record OtherObject : ObjectSpec;
