using NestedSmmu.Iommufd.Conformance;

namespace NestedSmmu.Iommufd.Tests.Conformance;

public sealed class ConformanceLineTests
{
    [Theory]
    [InlineData("ioas.alloc: ok id=1", "ioas.alloc", "ok id=1")]
    [InlineData("  veventq.read: ok events=1 C_BAD_CD sid=0x10 seq=0\r", "veventq.read", "ok events=1 C_BAD_CD sid=0x10 seq=0")]
    [InlineData("raw.iommu_destroy.size_short: EINVAL", "raw.iommu_destroy.size_short", "EINVAL")]
    public void Lines_round_trip_through_the_text_form(string text, string name, string result)
    {
        ConformanceLine line = ConformanceLine.TryParse(text).ShouldNotBeNull();
        line.ShouldBe(new ConformanceLine(name, result));
        ConformanceLine.TryParse(line.ToString()).ShouldBe(line);
    }

    [Theory]
    [InlineData("")]
    [InlineData("# sequence-ms 5311")]
    [InlineData("no separator here")]
    [InlineData("two words: not a step")]
    public void Notes_and_console_noise_are_not_lines(string text) => ConformanceLine.TryParse(text).ShouldBeNull();
}
