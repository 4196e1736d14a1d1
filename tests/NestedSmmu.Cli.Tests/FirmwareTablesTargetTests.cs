using NestedSmmu.Fuzz;
using NestedSmmu.Tests.Common;

namespace NestedSmmu.Cli.Tests;

/// <summary>
/// The firmware-tables fuzz target (random machines through the IORT, DSDT and DTB writers and back
/// through the guest's readers) is not vacuous: its seed corpus reaches the table checks for emulated,
/// iommu=smmuv3 and accel=on/cmdqv machines, a machine the validator refuses stops before the tables,
/// and the command line an input stands for can be read back for a crash report.
/// </summary>
public sealed class FirmwareTablesTargetTests
{
    private static byte[] Seed(string name) =>
        File.ReadAllBytes(Path.Combine(TestVectors.RepositoryRoot, "fuzz", "corpus", "firmware-tables", name));

    [Theory]
    [InlineData("emulated-pxb-smmu-on-pcie0.bin", "arm-smmuv3,primary-bus=pcie.0")]
    [InlineData("legacy-iommu-smmuv3.bin", "iommu=smmuv3")]
    [InlineData("accel-cmdqv-one-gpu.bin", "cmdqv=on")]
    [InlineData("accel-two-smmus.bin", "id=smmu1,accel=on")]
    public void A_seed_machine_is_accepted_and_its_tables_read_back_in_both_bus_numbering_views(string seed, string expected)
    {
        byte[] input = Seed(seed);
        FirmwareTablesTarget.Describe(input).ShouldContain(expected);
        FirmwareTablesTarget.Boards(input).ShouldBe(2, FirmwareTablesTarget.Describe(input));
    }

    [Fact]
    public void A_refused_machine_stops_before_the_tables()
    {
        byte[] input = Seed("refused-two-smmus-one-bus.bin");
        FirmwareTablesTarget.Boards(input).ShouldBe(0, FirmwareTablesTarget.Describe(input));
    }

    [Fact]
    public void Random_machines_mostly_reach_the_tables_and_never_crash()
    {
        var rng = new Random(13);
        int accepted = 0;
        for (int i = 0; i < 300; i++)
        {
            var input = new byte[rng.Next(48)];
            rng.NextBytes(input);
            if (FirmwareTablesTarget.Boards(input) > 0) accepted++;
        }
        accepted.ShouldBeGreaterThan(30, "the choices must build machines the validator accepts");
    }
}
