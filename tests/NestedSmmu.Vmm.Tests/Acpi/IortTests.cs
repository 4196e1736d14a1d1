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

    public static TheoryData<string> Cases => QemuTableCases.All;
}
