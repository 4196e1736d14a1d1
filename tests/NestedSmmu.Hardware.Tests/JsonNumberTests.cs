
namespace NestedSmmu.Hardware.Tests;

public class JsonNumberTests
{
    [Theory]
    [InlineData("0", 0UL)]
    [InlineData("0x0", 0UL)]
    [InlineData("42", 42UL)]
    [InlineData("0x2A", 42UL)]
    [InlineData("0X2a", 42UL)]
    [InlineData("0x0D44101B", 0x0D44101BUL)]
    [InlineData("0x000000000000000000ff", 0xffUL)] // leading zeros beyond 16 digits still fit
    [InlineData("0xffffffffffffffff", ulong.MaxValue)]
    [InlineData("18446744073709551615", ulong.MaxValue)]
    public void Parses(string text, ulong expected)
    {
        JsonNumber.TryParse(text, out ulong value, out string? error).ShouldBeTrue(error);
        value.ShouldBe(expected);
        error.ShouldBeNull();
    }

    [Theory]
    [InlineData("", "'' is not a hex or decimal number")]
    [InlineData("0x", "'0x' is not a hex or decimal number")]
    [InlineData("0xZZ", "'0xZZ' is not a hex or decimal number")]
    [InlineData("-1", "'-1' is not a hex or decimal number")]
    [InlineData("+1", "'+1' is not a hex or decimal number")]
    [InlineData(" 1", "' 1' is not a hex or decimal number")]
    [InlineData("1_000", "'1_000' is not a hex or decimal number")]
    [InlineData("0b101", "'0b101' is not a hex or decimal number")]
    [InlineData("ff", "'ff' is not a hex or decimal number")]
    [InlineData("0x10000000000000000", "'0x10000000000000000' does not fit in 64 bits")]
    [InlineData("18446744073709551616", "'18446744073709551616' does not fit in 64 bits")]
    public void Rejects(string text, string message)
    {
        JsonNumber.TryParse(text, out _, out string? error).ShouldBeFalse();
        error.ShouldBe(message);
        Should.Throw<FormatException>(() => JsonNumber.Parse(text)).Message.ShouldBe(message);
    }

    [Theory]
    [InlineData(0UL, "0x0", "0x0000000000000000")]
    [InlineData(0x4ecba567UL, "0x4ecba567", "0x000000004ecba567")]
    [InlineData(ulong.MaxValue, "0xffffffffffffffff", "0xffffffffffffffff")]
    public void Formats(ulong value, string hex, string hex64)
    {
        JsonNumber.ToHex(value).ShouldBe(hex);
        JsonNumber.ToHex64(value).ShouldBe(hex64);
    }

    [Theory]
    [InlineData(0xffffffffUL, 32, true)]
    [InlineData(0x100000000UL, 32, false)]
    [InlineData(0xfffffUL, 20, true)]
    [InlineData(0x100000UL, 20, false)]
    [InlineData(ulong.MaxValue, 64, true)]
    public void Fits(ulong value, int bits, bool fits) => JsonNumber.FitsIn(value, bits).ShouldBe(fits);
}
