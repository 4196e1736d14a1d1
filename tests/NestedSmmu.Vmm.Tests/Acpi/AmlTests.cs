using NestedSmmu.Vmm.Acpi;

namespace NestedSmmu.Vmm.Tests.Acpi;

/// <summary>The AML encoder against the encodings of ACPI 6.5 chapter 20 (hex from the grammar's rules).</summary>
public sealed class AmlTests
{
    [Theory]
    // 20.2.4: one byte holds lengths up to 63 including itself; beyond, bits 7:6 count the extra
    // bytes, bits 3:0 are the low nibble and each extra byte the next 8 bits.
    [InlineData(0, "01")]
    [InlineData(62, "3F")]
    [InlineData(63, "4104")] // 63 + 2 = 65 = 0x41: lead 0x40 | 0x1, then 0x41 >> 4 = 0x04
    [InlineData(0xFFD, "4FFF")] // 0xFFD + 2 = 0xFFF, the largest two-byte length
    [InlineData(0xFFE, "810001")] // 0xFFE + 3 = 0x1001
    public void PkgLength_encodings(int contentLength, string hex)
    {
        Convert.ToHexString(Aml.PkgLength(contentLength)).ShouldBe(hex);
    }

    [Theory]
    [InlineData(0ul, "00")]
    [InlineData(1ul, "01")]
    [InlineData(0x21ul, "0A21")]
    [InlineData(0x1234ul, "0B3412")]
    [InlineData(0x0C00_0000ul, "0C0000000C")]
    [InlineData(0x80_0000_0000ul, "0E0000000080000000")]
    public void Integers_take_the_shortest_encoding(ulong value, string hex) =>
        Convert.ToHexString(Aml.Integer(value)).ShouldBe(hex);

    [Theory]
    [InlineData("\\_SB", "5C5F53425F")]
    [InlineData("CV1", "4356315F")]
    [InlineData("\\_SB.PCI0", "5C2E5F53425F50434930")]
    [InlineData("\\_SB.PCI0.RES0", "5C2F035F53425F5043493052455330")]
    public void Name_strings(string path, string hex) => Convert.ToHexString(Aml.NameString(path)).ShouldBe(hex);

    [Theory]
    [InlineData("1ABC")]
    [InlineData("TOOLONG")]
    [InlineData("a")]
    public void Invalid_name_segments_are_refused(string seg) => Should.Throw<ArgumentException>(() => Aml.NameSeg(seg));

    [Fact]
    public void Name_with_string_and_a_resource_template_with_one_interrupt()
    {
        // Name (_HID, "NVDA200C")
        Convert.ToHexString(Aml.Name("_HID", Aml.String("NVDA200C"))).ShouldBe("085F4849440D4E5644413230304300");
        // ResourceTemplate () { Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 0x94 } }:
        // Buffer 11, PkgLength 0E (itself + size 0A0B + 11 bytes), the extended interrupt
        // descriptor 89 0600 (consumer | edge = 03, one GSIV 0x94), End Tag 79 00.
        Convert.ToHexString(new ResourceTemplate().Interrupt(AmlTrigger.Edge, AmlPolarity.ActiveHigh, 0x94).ToAml())
            .ShouldBe("110E0A0B8906000301940000007900");
    }
}
