namespace NestedSmmu.Hardware.Tests.Memory;

public class MmioBusTests
{
    private sealed class Recorder(ulong size) : IMmioDevice
    {
        public ulong Size { get; } = size;
        public List<(string Op, ulong Offset, int Width, ulong Value)> Log { get; } = new();
        public ulong Read(ulong offset, int width) { Log.Add(("R", offset, width, 0)); return 0xA000 + offset; }
        public void Write(ulong offset, int width, ulong value) => Log.Add(("W", offset, width, value));
    }

    [Fact]
    public void RoutesByAddressWithOffsetsRelativeToTheWindow()
    {
        var bus = new MmioBus();
        var a = new Recorder(0x1000);
        var b = new Recorder(0x2_0000);
        bus.Map(0x0900_0000, b, "smmu");
        bus.Map(0x0800_0000, a, "uart");
        bus.Regions.Select(r => r.Name).ShouldBe(["uart", "smmu"]); // kept in address order

        bus.Read(0x0800_0010, 4).ShouldBe(0xA010UL);
        bus.Write(0x0901_00A8, 4, 7);
        bus.Write(0x0800_0FFC, 8, 1);
        a.Log.ShouldBe([("R", 0x10UL, 4, 0UL), ("W", 0xFFCUL, 8, 1UL)]);
        b.Log.ShouldBe([("W", 0x1_00A8UL, 4, 7UL)]);

        bus.TryFind(0x0900_0000 + 0x1_FFFF, out var r2).ShouldBeTrue();
        r2.Name.ShouldBe("smmu");
        bus.TryFind(0x0902_0000, out _).ShouldBeFalse();
    }

    [Fact]
    public void UnclaimedAccessesReadZeroAndAreIgnored()
    {
        var bus = new MmioBus();
        bus.TryRead(0x1234, 4, out ulong v).ShouldBeFalse();
        v.ShouldBe(0UL);
        bus.TryWrite(0x1234, 4, 1).ShouldBeFalse();
        bus.Read(0x1234, 8).ShouldBe(0UL);
        bus.Write(0x1234, 2, 1); // no exception
    }

    [Theory]
    [InlineData(0x1000UL, 0x1000UL, "b", "[0x1000, 0x2000)", "'a' [0x1000, 0x2000)")]
    [InlineData(0x0800UL, 0x1000UL, "b", "[0x800, 0x1800)", "'a' [0x1000, 0x2000)")]
    [InlineData(0x1FFFUL, 0x10UL, "b", "[0x1FFF, 0x200F)", "'a' [0x1000, 0x2000)")]
    public void OverlappingWindowsAreAConfigurationErrorNamingBoth(ulong baseAddress, ulong size, string name, string own, string other)
    {
        var bus = new MmioBus();
        bus.Map(0x1000, new Recorder(0x1000), "a");
        var ex = Should.Throw<InvalidOperationException>(() => bus.Map(baseAddress, new Recorder(size), name));
        ex.Message.ShouldBe($"MMIO region '{name}' {own} overlaps {other}.");
        bus.Regions.Count.ShouldBe(1);
    }

    [Fact]
    public void AdjacentWindowsDoNotOverlap()
    {
        var bus = new MmioBus();
        bus.Map(0x1000, new Recorder(0x1000), "a");
        bus.Map(0x2000, new Recorder(0x1000), "b");
        bus.Map(0x0, new Recorder(0x1000), "c");
        bus.Regions.Count.ShouldBe(3);
    }

    [Fact]
    public void BadWindowsAndWidthsAreRejected()
    {
        var bus = new MmioBus();
        Should.Throw<ArgumentException>(() => bus.Map(0, new Recorder(0), "empty")).Message.ShouldContain("zero size");
        Should.Throw<ArgumentOutOfRangeException>(() => bus.Map(ulong.MaxValue - 10, new Recorder(0x100), "wrap")).Message.ShouldContain("wraps");
        Should.Throw<ArgumentNullException>(() => bus.Map(0, null!, "null"));
        Should.Throw<ArgumentOutOfRangeException>(() => bus.Read(0, 3)).Message.ShouldContain("width 3");
        Should.Throw<ArgumentOutOfRangeException>(() => bus.Write(0, 16, 0));
    }

    [Fact]
    public void UnmapRemovesTheDevice()
    {
        var bus = new MmioBus();
        var a = new Recorder(0x1000);
        bus.Map(0x1000, a, "a");
        bus.Unmap(a).ShouldBeTrue();
        bus.Unmap(a).ShouldBeFalse();
        bus.TryRead(0x1000, 4, out _).ShouldBeFalse();
        bus.Map(0x1800, new Recorder(0x1000), "b"); // the space is free again
    }

    [Fact]
    public void AnSmmuMapsAsATwoPageFrame()
    {
        var bus = new MmioBus();
        var smmu = new SmmuV3(new SparseMemory(), SmmuFeatures.QemuVirtNested);
        bus.Map(0x0905_0000, smmu, "smmuv3");
        bus.Read(0x0905_0000, 4).ShouldBe(0x0D44101BUL);
        bus.Regions[0].End.ShouldBe(0x0907_0000UL);
    }
}
