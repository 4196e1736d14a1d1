using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Hardware.Tests.Cmdqv;

/// <summary>A guest (or a broken driver) can write anything anywhere: the model must never throw.</summary>
public sealed class CmdqvMmioFuzzTests
{
    private static readonly int[] Widths = [0, 1, 2, 3, 4, 5, 8, 16];

    /// <summary>Offsets where registers live, so random values often land on something with side effects.</summary>
    private static ulong InterestingOffset(Random rng, Tegra241Cmdqv cmdqv)
    {
        int q = rng.Next(cmdqv.NumVcmdqs + 2);
        int v = rng.Next(cmdqv.NumVintfs + 2);
        int l = rng.Next(cmdqv.LvcmdqsPerVintf + 2);
        ulong reg = (ulong)rng.Next((int)L.VcmdqStride / sizeof(uint)) * sizeof(uint);
        return rng.Next(8) switch
        {
            0 => (ulong)rng.Next(0x40) * sizeof(uint),
            1 => L.CmdqAlloc(q),
            2 => L.Vintf(v) + (ulong)rng.Next((int)L.VintfStride / sizeof(uint)) * sizeof(uint),
            3 => L.VcmdqPage0Base + L.VcmdqStride * (ulong)q + reg,
            4 => L.VcmdqPage1Base + L.VcmdqStride * (ulong)q + reg,
            5 => L.VintfPage0(v) + L.VcmdqStride * (ulong)l + reg,
            6 => L.VintfPage1(v) + L.VcmdqStride * (ulong)l + reg,
            _ => (ulong)rng.NextInt64() & (rng.Next(2) == 0 ? 0x3F_FFFFUL : ulong.MaxValue),
        };
    }

    private static ulong RandomValue(Random rng) => rng.Next(4) switch
    {
        0 => 0,
        1 => ulong.MaxValue,
        2 => (ulong)rng.Next(64),
        _ => (ulong)rng.NextInt64(),
    };

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Random_accesses_never_throw(int seed)
    {
        var rng = new Random(seed);
        var rig = new CmdqvRig(new Tegra241CmdqvOptions { NumVintfLog2 = 2, NumVcmdqLog2 = 4 });
        // Give the queues something to chew on: random words where random BASEs may point.
        for (int i = 0; i < 256; i++)
            rig.Memory.WriteUInt64((ulong)rng.Next(1 << 20) * sizeof(ulong), (ulong)rng.NextInt64());
        rig.Memory.AddAbortRange(0x0080_0000, 0x0010_0000);
        int raised = 0;
        rig.Cmdqv.ErrorRaised += _ =>
        {
            // A handler that also pokes registers, re-entering the model from inside consumption.
            raised++;
            rig.Cmdqv.Write(InterestingOffset(rng, rig.Cmdqv), sizeof(uint), RandomValue(rng));
        };

        for (int i = 0; i < 20_000; i++)
        {
            ulong offset = InterestingOffset(rng, rig.Cmdqv);
            int width = Widths[rng.Next(Widths.Length)];
            if (rng.Next(2) == 0) rig.Cmdqv.Write(offset, width, RandomValue(rng));
            else rig.Cmdqv.Read(offset, width);
        }
        // The bus path (which rejects bad widths itself) with in-range accesses.
        var bus = new MmioBus();
        bus.Map(0x1_0000_0000, rig.Cmdqv, "cmdqv");
        for (int i = 0; i < 2_000; i++)
        {
            ulong offset = InterestingOffset(rng, rig.Cmdqv);
            bus.Write(0x1_0000_0000 + offset, sizeof(uint), RandomValue(rng));
            bus.Read(0x1_0000_0000 + offset, sizeof(ulong));
        }
        (rig.Cmdqv.Counters.Errors + rig.Cmdqv.Counters.CommandsExecuted).ShouldBeGreaterThanOrEqualTo(raised);
    }

    [Theory]
    [InlineData(0UL, 2)]
    [InlineData(0UL, 16)]
    [InlineData(2UL, 4)]
    [InlineData(0x22FFCUL, 8)] // the last word of the frame: an 8-byte access would run past the end
    [InlineData(0x230000UL, 4)]
    [InlineData(ulong.MaxValue, 4)]
    [InlineData(ulong.MaxValue - 3, 8)]
    public void Malformed_accesses_read_zero_and_write_nothing(ulong offset, int width)
    {
        var rig = new CmdqvRig();
        rig.Cmdqv.Read(offset, width).ShouldBe(0UL);
        rig.Cmdqv.Write(offset, width, ulong.MaxValue);
        rig.Read32((ulong)CmdqvRegister.CONFIG).ShouldBe(Tegra241Cmdqv.CONFIG_ResetValue);
    }

    [Fact]
    public void Undefined_offsets_read_zero_and_ignore_writes()
    {
        var rig = new CmdqvRig();
        ulong[] holes =
        [
            0x00C, 0x034, 0x1FC, L.CmdqAlloc(rig.Cmdqv.NumVcmdqs), L.Vintf(rig.Cmdqv.NumVintfs), L.Vintf(0) + 0x08,
            L.Vintf(0) + 0xD0, L.VcmdqPage0Base - 4, L.Vcmdq(0, VcmdqPage0Register.GERRORN) + 4,
            L.Vcmdq(0, VcmdqPage1Register.CONS_INDX_BASE_H) + 4, L.Lvcmdq(0, 5, VcmdqPage0Register.PROD),
        ];
        foreach (ulong h in holes)
        {
            rig.Write32(h, 0xFFFF_FFFF);
            rig.Read32(h).ShouldBe(0u, $"offset 0x{h:X}");
        }
    }

    [Fact]
    public void Queue_commands_of_random_words_never_throw()
    {
        var rng = new Random(7);
        var rig = new CmdqvRig();
        rig.BringUpHost(log2Entries: 6);
        rig.BringUpGuest(vintf: 1, vmid: 3, queue: 8, log2Entries: 6);
        rig.MapSid(1, 0, 1, 2);
        rig.Cmdqv.ErrorRaised += e =>
        {
            rig.Replace(e.Queue, rig.View(e.Queue).Cons, Command.Sync());
            rig.Acknowledge(e.Queue);
        };
        for (int round = 0; round < 200; round++)
        {
            var commands = new Command[rng.Next(1, 8)];
            for (int i = 0; i < commands.Length; i++)
            {
                ulong w0 = (ulong)rng.NextInt64();
                // Bias towards real opcodes so some get past the filter and the SMMU's legality check.
                if (rng.Next(2) == 0) w0 = (w0 & ~0xFFUL) | (byte)Enum.GetValues<CommandOpcode>()[rng.Next(Enum.GetValues<CommandOpcode>().Length)];
                commands[i] = new Command(w0, (ulong)rng.NextInt64());
            }
            rig.Submit(round % 2 == 0 ? 0 : 8, round % 2 == 0 ? QueueAlias.Global : QueueAlias.Logical, commands);
        }
        rig.Cons(0).ShouldBe(rig.Prod(0));
        rig.Cons(8).ShouldBe(rig.Prod(8));
    }
}
