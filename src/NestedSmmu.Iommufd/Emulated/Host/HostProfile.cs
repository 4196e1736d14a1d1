using System.Globalization;
using System.Reflection;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// What an emulated host is made of: its physical memory, its SMMUv3 instances (each optionally
/// with a Tegra241 CMDQV beside it) and the PCI devices behind them. Loaded from JSON
/// (<see cref="Load"/>, <see cref="Parse"/>) or from the profiles embedded in this assembly
/// (<see cref="LoadEmbedded"/>): <c>grace</c>, a Grace-class server, and <c>small</c>, two SMMUs
/// and a few devices for tests. Every profile is validated on construction by the reader;
/// profiles built in code are checked by <see cref="Validate"/> (which <see cref="EmulatedHost"/>
/// calls), and errors name the JSON path of the offending value.
/// </summary>
/// <param name="Name">A short name for messages (<c>grace</c>).</param>
/// <param name="Description">Free text, or null.</param>
/// <param name="Memory">The host's physical memory window.</param>
/// <param name="Smmus">The physical SMMUs, in discovery order.</param>
/// <param name="Devices">The PCI devices VFIO can hand to a VMM.</param>
public sealed record HostProfile(
    string Name,
    string? Description,
    HostMemoryProfile Memory,
    IReadOnlyList<SmmuProfile> Smmus,
    IReadOnlyList<PciDeviceProfile> Devices)
{
    /// <summary>The embedded profile <see cref="EmulatedHost.CreateDefault"/> uses.</summary>
    public const string DefaultName = "grace";

    /// <summary>The resource-name prefix of embedded profiles (see the project file's EmbeddedResource item).</summary>
    internal const string ResourcePrefix = "NestedSmmu.Iommufd.Profiles.";

    private const string ResourceSuffix = ".json";

    /// <summary>Names of the profiles embedded in this assembly, sorted.</summary>
    public static IReadOnlyList<string> EmbeddedNames { get; } = FindEmbeddedNames();

    /// <summary>Loads an embedded profile by name (<c>grace</c>, <c>small</c>).</summary>
    /// <exception cref="ArgumentException">No embedded profile has that name; the message lists the names.</exception>
    public static HostProfile LoadEmbedded(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        string resource = ResourcePrefix + name + ResourceSuffix;
        using Stream? stream = typeof(HostProfile).Assembly.GetManifestResourceStream(resource);
        if (stream is null)
            throw new ArgumentException(
                $"No embedded host profile is named '{name}'; embedded profiles: {string.Join(", ", EmbeddedNames)}.", nameof(name));
        return HostProfileReader.Read(stream, $"embedded profile '{name}'");
    }

    /// <summary>Loads a profile from a JSON file.</summary>
    /// <exception cref="HostProfileException">The file is not a valid profile (the message names the file and JSON path).</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static HostProfile Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        using FileStream stream = File.OpenRead(path);
        return HostProfileReader.Read(stream, path);
    }

    /// <summary>Parses a profile from JSON text.</summary>
    /// <exception cref="HostProfileException">The text is not a valid profile.</exception>
    public static HostProfile Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var stream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json));
        return HostProfileReader.Read(stream, null);
    }

    /// <summary>
    /// Checks the cross references and limits the reader checks (for profiles built in code):
    /// unique names, unique SMMU bases, non-overlapping MMIO and memory, known SMMU references,
    /// unique BDFs and (per SMMU) stream IDs that fit SIDSIZE.
    /// </summary>
    /// <exception cref="HostProfileException">The first problem, with the JSON path it would have.</exception>
    public void Validate() => HostProfileValidator.Validate(this, null);

    /// <summary>The SMMU named <paramref name="name"/>, or null.</summary>
    public SmmuProfile? FindSmmu(string name) => Smmus.FirstOrDefault(s => s.Name == name);

    private static string[] FindEmbeddedNames()
    {
        Assembly assembly = typeof(HostProfile).Assembly;
        return [.. assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(ResourceSuffix, StringComparison.Ordinal))
            .Select(n => n[ResourcePrefix.Length..^ResourceSuffix.Length])
            .Order(StringComparer.Ordinal)];
    }
}

/// <summary>The host's physical memory: one contiguous window of DRAM.</summary>
/// <param name="Base">First byte (page aligned).</param>
/// <param name="Size">Bytes (a whole number of pages, non-zero).</param>
public sealed record HostMemoryProfile(ulong Base, ulong Size)
{
    /// <summary>One past the last byte.</summary>
    public ulong End => Base + Size;
}

/// <summary>One physical SMMUv3.</summary>
/// <param name="Name">Unique name, referenced by devices (<c>smmu0</c>).</param>
/// <param name="MmioBase">Base of its 128 KiB register frame on the host's MMIO bus.</param>
/// <param name="Features">What its ID registers report.</param>
/// <param name="Cmdqv">The Tegra241 CMDQV beside it, or null.</param>
public sealed record SmmuProfile(string Name, ulong MmioBase, SmmuFeatures Features, CmdqvProfile? Cmdqv)
{
    /// <summary>True when a Tegra241 CMDQV sits beside this SMMU.</summary>
    public bool HasCmdqv => Cmdqv is not null;
}

/// <summary>
/// A Tegra241 CMDQV's placement and synthesis parameters (what its PARAM register reports,
/// drivers/iommu/arm/arm-smmu-v3/tegra241-cmdqv.c). <see cref="Tegra241CmdqvHostDriver"/> builds the hardware model from them and
/// reads them back from its PARAM register.
/// </summary>
/// <param name="MmioBase">Base of its register frame.</param>
/// <param name="NumVintfLog2">PARAM.NUM_VINTF_LOG2: 2^n virtual interfaces (0..6).</param>
/// <param name="NumVcmdqLog2">PARAM.NUM_VCMDQ_LOG2: 2^n VCMDQs shared out evenly per VINTF (0..7, at least NumVintfLog2).</param>
/// <param name="NumSidPerVmLog2">PARAM.NUM_SID_PER_VM_LOG2: SID match/replace slots per VINTF (0..4).</param>
/// <param name="Version">PARAM.VER (Linux expects 1).</param>
public sealed record CmdqvProfile(ulong MmioBase, int NumVintfLog2, int NumVcmdqLog2, int NumSidPerVmLog2, int Version)
{
    /// <summary>Largest NUM_VINTF_LOG2: VINTF_ERR_MAP has 64 bits.</summary>
    public const int MaxVintfLog2 = 6;
    /// <summary>Largest NUM_VCMDQ_LOG2: CMDQ_ERR_MAP has 128 bits.</summary>
    public const int MaxVcmdqLog2 = 7;
    /// <summary>Largest NUM_SID_PER_VM_LOG2: 16 SID_MATCH slots per VINTF.</summary>
    public const int MaxSidPerVmLog2 = 4;
    /// <summary>Largest PARAM.VER (a 4-bit field).</summary>
    public const int MaxVersion = 15;

    /// <summary>Virtual interfaces.</summary>
    public int Vintfs => 1 << NumVintfLog2;
    /// <summary>VCMDQs in all.</summary>
    public int Vcmdqs => 1 << NumVcmdqLog2;
    /// <summary>Logical VCMDQs per VINTF, as Linux computes it (VCMDQs / VINTFs).</summary>
    public int VcmdqsPerVintf => Vcmdqs / Vintfs;
    /// <summary>SID match/replace slots per VINTF.</summary>
    public int SidsPerVintf => 1 << NumSidPerVmLog2;
}

/// <summary>What a PCI device is, for messages and for choosing devices in a VMM configuration.</summary>
public enum PciDeviceKind
{
    /// <summary>A GPU.</summary>
    Gpu,
    /// <summary>A network adapter.</summary>
    Nic,
}

/// <summary>One PCI function behind an SMMU.</summary>
/// <param name="Address">Its PCI address (segment, bus, device, function).</param>
/// <param name="Name">Unique name; the VMM may bind by it or by address.</param>
/// <param name="Kind">GPU or NIC.</param>
/// <param name="Smmu">Name of the SMMU it sits behind.</param>
/// <param name="StreamId">Its StreamID at that SMMU (the root complex maps the requester ID to it).</param>
/// <param name="AtsCapable">It has an ATS capability (and an ATC).</param>
/// <param name="PasidBits">Width of its PASID capability, 0 for none.</param>
/// <param name="Canwbs">
/// Its root complex is marked CANWBS in the IORT (memory-access flags): its accesses are fully
/// coherent, so arm-smmu-v3 may give it a vIOMMU (arm_smmu_get_viommu_size). True by default,
/// as on Grace; false for a board whose firmware does not say so (QEMU's virt, any device-tree
/// boot): then IOMMU_VIOMMU_ALLOC is EOPNOTSUPP (the emulated SMMU reports no S2FWB).
/// </param>
public sealed record PciDeviceProfile(
    PciAddress Address, string Name, PciDeviceKind Kind, string Smmu, uint StreamId, bool AtsCapable, int PasidBits = 0,
    bool Canwbs = true)
{
    /// <summary>The widest PASID a PCIe PASID capability can report (20 bits).</summary>
    public const int MaxPasidBits = 20;
}

/// <summary>A PCI address with its segment: <c>ssss:bb:dd.f</c>.</summary>
/// <param name="Segment">PCI segment (domain).</param>
/// <param name="RequesterId">Bus, device and function.</param>
public readonly record struct PciAddress(ushort Segment, RequesterId RequesterId)
{
    /// <summary>Parses <c>ssss:bb:dd.f</c>, or <c>bb:dd.f</c> in segment 0 (hex fields).</summary>
    public static bool TryParse(string? text, out PciAddress address)
    {
        address = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        string t = text.Trim();
        string[] parts = t.Split(':');
        ushort segment = 0;
        if (parts.Length == 3)
        {
            if (parts[0].Length is 0 or > 4 || !ushort.TryParse(parts[0], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out segment))
                return false;
        }
        else if (parts.Length != 2)
        {
            return false;
        }
        if (!RequesterId.TryParse(parts[^2] + ":" + parts[^1], out RequesterId rid)) return false;
        address = new PciAddress(segment, rid);
        return true;
    }

    /// <summary>Parses like <see cref="TryParse"/>.</summary>
    /// <exception cref="FormatException">Not a PCI address.</exception>
    public static PciAddress Parse(string text) => TryParse(text, out PciAddress a) ? a
        : throw new FormatException($"'{text}' is not a PCI address (expected ssss:bb:dd.f or bb:dd.f in hex).");

    /// <summary><c>ssss:bb:dd.f</c>, lowercase hex, as sysfs spells it.</summary>
    public override string ToString() => $"{Segment:x4}:{RequesterId}";
}
