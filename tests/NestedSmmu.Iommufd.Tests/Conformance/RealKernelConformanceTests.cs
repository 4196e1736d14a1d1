using NestedSmmu.Iommufd.Conformance;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Scenarios.Conformance;
using NestedSmmu.Tests.Common;

namespace NestedSmmu.Iommufd.Tests.Conformance;

/// <summary>
/// The emulated host against a real kernel: the conformance sequence's answers from Linux
/// booted under QEMU 11.1 (tests/vectors/real-kernel, made by tools/real-kernel) are compared
/// with the emulated host's, line by line, for a host profile shaped like that QEMU machine.
/// Every line must agree, except the differences listed here, each explained in
/// docs/IOMMUFD.md with the kernel source that decides it.
/// </summary>
public sealed class RealKernelConformanceTests
{
    private const string Area = "real-kernel";

    /// <summary>The ACPI boot, where the IORT marks the root complex CANWBS, so every vIOMMU call runs.</summary>
    private const string RealVector = "linux-acpi.txt";

    /// <summary>The device-tree boot: no CANWBS, no S2FWB, so no vIOMMU.</summary>
    private const string DeviceTreeVector = "linux-dt.txt";

    private const string EmulatedVector = "emulated.txt";

    /// <summary>The ACPI boot with two SMMUs (pcie.0 and a pxb-pcie bus), one edu device behind each: the two-SMMU sequence.</summary>
    private const string TwoSmmuVector = "linux-acpi2.txt";

    private const string EmulatedTwoSmmuVector = "emulated-two-smmus.txt";

    /// <summary>A step whose answer differs between the real kernel and the emulated host, on purpose or by a known limit.</summary>
    /// <param name="Step">The step's name.</param>
    /// <param name="Linux">The real kernel's answer.</param>
    /// <param name="Emulated">The emulated host's answer.</param>
    public sealed record KnownDifference(string Step, string Linux, string Emulated);

    /// <summary>The documented differences (docs/IOMMUFD.md, "Checked against a real kernel").</summary>
    public static readonly IReadOnlyList<KnownDifference> Differences = [];

    /// <summary>
    /// The documented differences of the two-SMMU sequence (docs/IOMMUFD.md, "Two SMMUs"): none
    /// since the emulated host keeps every domain on the SMMU it was allocated for, as Linux
    /// does. The sequence reads no IOVA ranges, so <c>ioas.iova_ranges.attached</c> has no
    /// counterpart here.
    /// </summary>
    public static readonly IReadOnlyList<KnownDifference> TwoSmmuDifferences = [];

    private static IReadOnlyList<ConformanceLine> ReadVector(string file) =>
        [.. File.ReadAllLines(TestVectors.PathOf(Area, file)).Select(ConformanceLine.TryParse).OfType<ConformanceLine>()];

    /// <param name="canwbs">
    /// Whether the edu device's root complex is CANWBS: yes in the ACPI boot (the patched IORT),
    /// no in the device-tree boot.
    /// </param>
    private static IReadOnlyList<ConformanceLine> RunEmulated(bool canwbs = true)
    {
        HostProfile profile = HostProfile.Load(Path.Combine(TestVectors.RepositoryRoot, "examples", "hosts", "qemu-virt-smmuv3.json"));
        profile.Devices.ShouldAllBe(d => d.Canwbs, "the example profile describes the ACPI boot");
        if (!canwbs) profile = profile with { Devices = [.. profile.Devices.Select(d => d with { Canwbs = false })] };
        var host = new EmulatedHost(profile);
        return ConformanceSequence.Run(ConformanceTarget.ForEmulatedHost(host, "edu") with { Stage1 = GuestStage1Tables.Create });
    }

    /// <summary>The two-SMMU sequence on the profile shaped like the two-SMMU machine (devices <c>edu</c> and <c>edu-b</c>).</summary>
    private static IReadOnlyList<ConformanceLine> RunEmulatedTwoSmmus()
    {
        HostProfile profile = HostProfile.Load(Path.Combine(TestVectors.RepositoryRoot, "examples", "hosts", "qemu-virt-two-smmuv3.json"));
        profile.Smmus.Count.ShouldBe(2);
        var host = new EmulatedHost(profile);
        return ConformanceSequence.RunTwoSmmus(
            ConformanceTarget.ForEmulatedHost(host, "edu") with { Stage1 = GuestStage1Tables.Create },
            ConformanceTarget.ForEmulatedHost(host, "edu-b") with { Stage1 = GuestStage1Tables.Create });
    }

    private static void CompareWithDocumentedDifferences(IReadOnlyList<ConformanceLine> real, IReadOnlyList<ConformanceLine> emulated) =>
        CompareWithDocumentedDifferences(real, emulated, Differences);

    private static void CompareWithDocumentedDifferences(IReadOnlyList<ConformanceLine> real, IReadOnlyList<ConformanceLine> emulated,
        IReadOnlyList<KnownDifference> differences)
    {
        real.Select(l => l.Name).ShouldBe(emulated.Select(l => l.Name));
        var expected = differences.ToDictionary(d => d.Step);
        var unexplained = new List<string>();
        var seen = new HashSet<string>();
        foreach (var (linux, ours) in real.Zip(emulated))
        {
            if (linux.Result == ours.Result) continue;
            if (expected.TryGetValue(linux.Name, out KnownDifference? d) && d.Linux == linux.Result && d.Emulated == ours.Result)
            {
                seen.Add(d.Step);
                continue;
            }
            unexplained.Add($"{linux.Name}: linux '{linux.Result}', emulated '{ours.Result}'");
        }
        unexplained.ShouldBeEmpty();
        // a listed difference that no longer occurs has been fixed: take it off the list
        differences.Select(d => d.Step).Where(s => !seen.Contains(s)).ShouldBeEmpty();
    }

    [Fact]
    public void The_real_kernel_answered_every_step_of_the_sequence()
    {
        IReadOnlyList<ConformanceLine> real = ReadVector(RealVector);
        IReadOnlyList<ConformanceLine> emulated = RunEmulated();
        real.Select(l => l.Name).ShouldBe(emulated.Select(l => l.Name));
    }

    [Fact]
    public void The_emulated_host_answers_as_the_real_kernel_except_the_documented_differences() =>
        CompareWithDocumentedDifferences(ReadVector(RealVector), RunEmulated());

    [Fact]
    public void Without_canwbs_the_emulated_host_answers_as_the_device_tree_boot_except_the_documented_differences() =>
        CompareWithDocumentedDifferences(ReadVector(DeviceTreeVector), RunEmulated(canwbs: false));

    [Fact]
    public void The_emulated_run_is_the_committed_emulated_vector()
    {
        IReadOnlyList<ConformanceLine> committed = ReadVector(EmulatedVector);
        RunEmulated().ShouldBe(committed);
    }

    [Fact]
    public void With_two_SMMUs_the_emulated_host_answers_as_the_real_kernel_except_the_documented_differences() =>
        CompareWithDocumentedDifferences(ReadVector(TwoSmmuVector), RunEmulatedTwoSmmus(), TwoSmmuDifferences);

    [Fact]
    public void The_emulated_two_SMMU_run_is_the_committed_emulated_vector() =>
        RunEmulatedTwoSmmus().ShouldBe(ReadVector(EmulatedTwoSmmuVector));

    [Fact]
    public void With_two_SMMUs_the_real_kernel_keeps_every_object_on_the_SMMU_it_was_made_for()
    {
        // arm_smmu_attach_dev, arm_vsmmu_init, iommufd_vdevice_alloc_ioctl, iommufd_hwpt_alloc
        // (viommu->iommu_dev check) and arm_smmu_attach_dev_nested: EINVAL across SMMUs
        Dictionary<string, string> real = ReadVector(TwoSmmuVector).ToDictionary(l => l.Name, l => l.Result);
        foreach (string step in (string[])["two.b.device.attach.a_paging", "two.b.device.attach.a_nest_parent",
                     "two.b.viommu.alloc.a_nest_parent", "two.a.viommu.alloc.b_nest_parent", "two.b.vdevice.alloc.on_a_viommu",
                     "two.b.hwpt.alloc.nested.on_a_viommu", "two.b.device.attach.a_nested"])
            real[step].ShouldBe("EINVAL", step);
        // each device got an auto domain of its own: the first one's did not fit the second SMMU
        real["two.a.device.attach.ioas"].ShouldNotBe(real["two.b.device.attach.ioas"]);
        real["two.a.veventq.read"].ShouldBe($"ok events=1 C_BAD_CD sid=0x{ConformanceSequence.VirtualSid:X} seq=0");
        real["two.b.veventq.read"].ShouldBe($"ok events=1 C_BAD_CD sid=0x{ConformanceSequence.SecondVirtualSid:X} seq=0");
    }

    [Fact]
    public void Every_documented_difference_is_explained_in_the_iommufd_doc()
    {
        string doc = File.ReadAllText(Path.Combine(TestVectors.RepositoryRoot, "docs", "IOMMUFD.md"));
        Differences.Concat(TwoSmmuDifferences).Select(d => d.Step).Where(s => !doc.Contains($"`{s}`", StringComparison.Ordinal)).ShouldBeEmpty();
    }

    [Fact]
    public void Without_canwbs_the_real_kernel_refuses_the_viommu_and_agrees_with_the_acpi_boot_before_it()
    {
        IReadOnlyList<ConformanceLine> dt = ReadVector(DeviceTreeVector);
        IReadOnlyList<ConformanceLine> acpi = ReadVector(RealVector);
        dt.Select(l => l.Name).ShouldBe(acpi.Select(l => l.Name));
        dt.Single(l => l.Name == "viommu.alloc").Result.ShouldBe("EOPNOTSUPP");
        // everything up to the first vIOMMU call is the same on both boots
        int firstViommu = acpi.ToList().FindIndex(l => l.Name.StartsWith("viommu.", StringComparison.Ordinal));
        firstViommu.ShouldBeGreaterThan(0);
        dt.Take(firstViommu).ShouldBe(acpi.Take(firstViommu));
    }
}
