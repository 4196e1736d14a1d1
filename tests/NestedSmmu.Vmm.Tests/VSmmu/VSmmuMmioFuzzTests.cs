using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Vmm.Tests.VSmmu;

/// <summary>Whatever a guest writes, an accelerated vSMMU answers with register state and errors, never an exception.</summary>
public sealed class VSmmuMmioFuzzTests
{
    private static readonly SmmuRegister[] Registers = Enum.GetValues<SmmuRegister>();

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Random_register_traffic_over_random_guest_tables_never_throws(int seed)
    {
        using var rig = new AccelRig();
        var random = new Random(seed);
        // Queues and the stream table in a 64 KiB window of RAM filled with noise, so commands and STEs are random too.
        ulong window = rig.Ram.Base + 0x10_0000;
        var noise = new byte[0x1_0000];
        random.NextBytes(noise);
        rig.Ram.Write(window, noise);

        for (int i = 0; i < 4000; i++)
        {
            SmmuRegister r = Registers[random.Next(Registers.Length)];
            ulong offset = (ulong)r + (random.Next(4) == 0 ? (ulong)SmmuRegister.Page1 : 0);
            int width = random.Next(3) switch { 0 => 8, 1 => 4, _ => random.Next(1, 9) };
            ulong value = r switch
            {
                SmmuRegister.STRTAB_BASE or SmmuRegister.CMDQ_BASE or SmmuRegister.EVENTQ_BASE =>
                    random.Next(8) == 0 ? (ulong)random.NextInt64() : (window + (ulong)(uint)random.Next(0x1_0000)) | (uint)random.Next(32),
                SmmuRegister.CR0 => (ulong)random.Next(16),
                _ => (ulong)random.NextInt64(),
            };
            if (random.Next(2) == 0) rig.Bus.Write(AccelRig.FrameA + offset, width is 4 or 8 ? width : 4, value);
            else rig.Bus.Read(AccelRig.FrameA + offset, width is 4 or 8 ? width : 4);
            if (i % 500 == 0) rig.DmaRead("nic0", (ulong)random.NextInt64() & 0xFF_FFFF_F000);
        }

        (rig.A.Traps.Total + rig.B.Traps.Total).ShouldBe(4000, "offsets past frame A land in frame B, which follows it");
        rig.A.Counters.CommandsConsumed.ShouldBeGreaterThan(0, "the noise ran as commands");
        // Whatever state it is in, the vSMMU can still be reset and torn down cleanly.
        rig.A.Reset();
        rig.A.Enabled.ShouldBeFalse();
        rig.A.Dispose();
        rig.A.Viommu.ShouldBeNull();
    }
}
