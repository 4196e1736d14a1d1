using NestedSmmu.Scenarios;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Scenarios.Tests;

/// <summary>ScenarioWriter's layout, and Parse(Write(s)) == s for generated scenarios.</summary>
public class ScenarioWriterTests
{
    [Fact]
    public void Writes_the_vector_layout()
    {
        var s = new Scenario
        {
            Description = "it's <small>",
            Idr = new Dictionary<SmmuRegister, uint> { [SmmuRegister.IDR5] = 0x74, [SmmuRegister.IDR0] = 0x0D44101B },
            Writes = [new RegisterWrite(SmmuRegister.STRTAB_BASE, 0x40000000, 64), new RegisterWrite(0x44u, 0)],
            Memory = [new MemoryBlock(0x41000000, [0x41002003UL]), new MemoryBlock(0x42000000, ReadOnlySpan<ulong>.Empty)],
            Accesses = [new Access(0x10, null, 0x8080604567, AccessKind.Write), new Access(1, 0xfffff, 0, AccessKind.Read)],
        };

        ScenarioWriter.ToJson(s).ShouldBe("""
            {
             "format": "nestedsmmu-scenario/1",
             "description": "it's <small>",
             "smmu": {
              "idr": {
               "IDR0": "0xd44101b",
               "IDR5": "0x74"
              },
              "writes": [
               {
                "reg": "STRTAB_BASE",
                "value": "0x40000000",
                "width": 64
               },
               {
                "reg": "0x44",
                "value": "0x0"
               }
              ]
             },
             "memory": [
              {
               "address": "0x41000000",
               "qwords": [
                "0x0000000041002003"
               ]
              },
              {
               "address": "0x42000000",
               "qwords": []
              }
             ],
             "accesses": [
              {
               "sid": "0x10",
               "ssid": null,
               "iova": "0x8080604567",
               "access": "write"
              },
              {
               "sid": "0x1",
               "ssid": "0xfffff",
               "iova": "0x0",
               "access": "read"
              }
             ]
            }
            """);
    }

    [Fact]
    public void Empty_scenario_round_trips()
    {
        var s = new Scenario();
        ScenarioReader.Parse(ScenarioWriter.ToJson(s)).ShouldBe(s);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(8)]
    public void Generated_scenario_round_trips(int seed)
    {
        var s = Generate(new Random(seed));

        string json = ScenarioWriter.ToJson(s);
        var back = ScenarioReader.Parse(json);

        back.ShouldBe(s);
        ScenarioWriter.ToJson(back).ShouldBe(json);
    }

    [Fact]
    public void Equality_is_structural()
    {
        var a = Generate(new Random(99));
        var b = Generate(new Random(99));
        a.ShouldBe(b);
        a.ShouldNotBeSameAs(b);
        (a with { Description = "other" }).ShouldNotBe(b);
        (a with { Accesses = [.. a.Accesses.Skip(1)] }).ShouldNotBe(b);
        (a with { Memory = [new MemoryBlock(0, [1UL])] }).ShouldNotBe(a with { Memory = [new MemoryBlock(0, [2UL])] });
    }

    [Fact]
    public void Model_rejects_what_the_format_cannot_hold()
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new RegisterWrite(0x22u, 0));
        Should.Throw<ArgumentOutOfRangeException>(() => new RegisterWrite(0x84u, 0, 64));
        Should.Throw<ArgumentOutOfRangeException>(() => new RegisterWrite(0x1fffcu, 0, 64));
        Should.Throw<ArgumentOutOfRangeException>(() => new RegisterWrite(SmmuRegister.CR0, 1UL << 32));
        Should.Throw<ArgumentOutOfRangeException>(() => new RegisterWrite(SmmuRegister.CR0, 0, 16));
        Should.Throw<ArgumentOutOfRangeException>(() => new RegisterWrite(SmmuRegister.Page1, 0));
        Should.Throw<ArgumentOutOfRangeException>(() => new MemoryBlock(4, [0UL]));
        Should.Throw<ArgumentOutOfRangeException>(() => new MemoryBlock((1UL << 52) - 8, [0UL, 0UL]));
        Should.Throw<ArgumentOutOfRangeException>(() => new Access(0, 1u << 20, 0, AccessKind.Read));
        Should.Throw<ArgumentException>(() => new Scenario { Idr = new Dictionary<SmmuRegister, uint> { [SmmuRegister.CR0] = 1 } });
    }

    [Fact]
    public void Memory_blocks_load_into_memory()
    {
        var words = Enumerable.Range(0, 1500).Select(i => 0x0102030405060708UL * (ulong)(i + 1)).ToArray();
        var s = new Scenario { Memory = [new MemoryBlock(0x40000ff8, words), new MemoryBlock(0x40000ff8, [7UL])] };
        var memory = new NestedSmmu.Hardware.Memory.SparseMemory();

        s.LoadMemory(memory);

        memory.ReadUInt64(0x40000ff8).ShouldBe(7UL); // the later block wins
        memory.ReadUInt64(0x40001000).ShouldBe(words[1]);
        memory.ReadUInt64(0x40000ff8 + 8 * 1499).ShouldBe(words[1499]);
    }

    /// <summary>A random valid scenario that uses every shape the format has, including the extremes.</summary>
    internal static Scenario Generate(Random rng)
    {
        ulong Any() => rng.Next(4) switch
        {
            0 => 0,
            1 => ulong.MaxValue,
            2 => (ulong)rng.Next(),
            _ => (ulong)rng.NextInt64() * 2 + (ulong)rng.Next(2),
        };

        SmmuRegister[] ids = [SmmuRegister.IDR0, SmmuRegister.IDR1, SmmuRegister.IDR2, SmmuRegister.IDR3,
            SmmuRegister.IDR4, SmmuRegister.IDR5, SmmuRegister.IIDR, SmmuRegister.AIDR];
        var named = Enum.GetValues<SmmuRegister>().Where(r => r != SmmuRegister.Page1).ToArray();

        var idr = ids.Where(_ => rng.Next(2) == 0).ToDictionary(r => r, _ => (uint)Any());
        var writes = Enumerable.Range(0, rng.Next(12)).Select(_ =>
        {
            if (rng.Next(3) == 0)
            {
                bool wide = rng.Next(2) == 0;
                uint offset = (uint)rng.Next((int)(SmmuRegisters.FrameSize / 8)) * 8 + (wide ? 0u : 4u * (uint)rng.Next(2));
                return new RegisterWrite(offset, wide ? Any() : (uint)Any(), wide ? 64 : 32);
            }
            var r = named[rng.Next(named.Length)];
            bool is64 = SmmuRegisters.Is64Bit(r) && rng.Next(4) != 0;
            return new RegisterWrite(r, is64 ? Any() : (uint)Any(), is64 ? 64 : 32);
        }).ToArray();
        var memory = Enumerable.Range(0, rng.Next(6)).Select(i =>
        {
            int count = rng.Next(20);
            ulong address = i == 0 ? (1UL << 52) - 8 * (ulong)count : (ulong)rng.NextInt64(1L << 49) * 8;
            return new MemoryBlock(address, Enumerable.Range(0, count).Select(_ => Any()).ToArray());
        }).ToArray();
        var accesses = Enumerable.Range(0, 1 + rng.Next(8)).Select(_ => new Access(
            (uint)Any(),
            rng.Next(2) == 0 ? null : (uint)rng.Next(1 << Access.SsidBits),
            Any(),
            rng.Next(2) == 0 ? AccessKind.Read : AccessKind.Write)).ToArray();

        return new Scenario
        {
            Description = rng.Next(3) == 0 ? null : $"generated \"{rng.Next()}\" \\ ünïcode",
            Idr = idr,
            Writes = writes,
            Memory = memory,
            Accesses = accesses,
        };
    }
}
