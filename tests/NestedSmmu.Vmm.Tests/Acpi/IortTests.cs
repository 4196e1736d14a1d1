using NestedSmmu.Tests.Common;
using NestedSmmu.Vmm.Acpi;
using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Vmm.Tests.Acpi;

public sealed class IortTests
{
    [Theory]
    [MemberData(nameof(Cases))]
    public void Iort_equals_qemu_11_1_with_the_checksum_byte_masked(string name)
    {
        byte[] qemu = File.ReadAllBytes(TestVectors.PathOf("qemu-tables", name, "IORT.dat"));
        byte[] ours = Iort.Build(VirtBoard.Layout(QemuTableCases.Spec(name)));

        AcpiTable.ChecksumIsValid(ours).ShouldBeTrue();
        ours[AcpiHeader.Checksum] = qemu[AcpiHeader.Checksum] = 0;
        Convert.ToHexString(ours).ShouldBe(Convert.ToHexString(qemu));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Iort_from_the_parsed_command_line_equals_qemu_11_1(string name)
    {
        byte[] qemu = File.ReadAllBytes(TestVectors.PathOf("qemu-tables", name, "IORT.dat"));
        byte[] ours = Iort.Build(ParsedTableCases.Board(name));

        AcpiTable.ChecksumIsValid(ours).ShouldBeTrue();
        ours[AcpiHeader.Checksum] = qemu[AcpiHeader.Checksum] = 0;
        Convert.ToHexString(ours).ShouldBe(Convert.ToHexString(qemu));
    }

    /// <summary>
    /// The firmware-enumerated view: QEMU's tables after the bridges were numbered depth first
    /// (tools/qemu-tables/qemu-acpi-enumerated.py plays the firmware's scan through ECAM before
    /// QEMU builds the tables), so each root bus's range covers the buses behind its root ports.
    /// </summary>
    [Theory]
    [MemberData(nameof(EnumeratedCases))]
    public void Iort_in_the_enumerated_view_equals_qemu_after_the_bridges_are_numbered(string name)
    {
        byte[] qemu = File.ReadAllBytes(TestVectors.PathOf("qemu-tables", name, "IORT.enumerated.dat"));
        byte[] ours = Iort.Build(ParsedTableCases.Board(name, PciNumberingView.FirmwareEnumerated));

        AcpiTable.ChecksumIsValid(ours).ShouldBeTrue();
        ours[AcpiHeader.Checksum] = qemu[AcpiHeader.Checksum] = 0;
        Convert.ToHexString(ours).ShouldBe(Convert.ToHexString(qemu));
    }

    [Fact]
    public void The_two_views_differ_where_root_ports_sit_under_a_pxb()
    {
        // pxb-one-smmu: before numbering, the root port's secondary bus 0 drags the pxb's range
        // down to bus 0 (0x0000, 0x1100 IDs); numbered, it is buses 0x10-0x11 (0x1000, 0x200 IDs).
        var unenumerated = ParsedTableCases.Board("pxb-one-smmu").Smmus.Single().Ranges.Single();
        var enumerated = ParsedTableCases.Board("pxb-one-smmu", PciNumberingView.FirmwareEnumerated).Smmus.Single().Ranges.Single();
        (unenumerated.FirstRequesterId, unenumerated.RequesterIdCount).ShouldBe((0x0000u, 0x1100u));
        (enumerated.FirstRequesterId, enumerated.RequesterIdCount).ShouldBe((0x1000u, 0x200u));
    }

    [Fact]
    public void Its_gaps_are_the_requester_ids_no_smmu_translates()
    {
        var gaps = Iort.Bypassed([[new IortIdRange(0x1000, 0x200)], [new IortIdRange(0x2000, 0x300)]]);
        gaps.ShouldBe([new IortIdRange(0, 0x1000), new IortIdRange(0x1200, 0xE00), new IortIdRange(0x2300, 0xDD00)]);
    }

    public static TheoryData<string> Cases => QemuTableCases.All;

    public static readonly TheoryData<string> EnumeratedCases = new(
        "smmuv3-legacy", "smmuv3-dev", "pxb-one-smmu", "three-smmus", "gicv3-its", "bypass-pxb", "iommu-smmuv3-gicv3", "smp4-big");
}
