using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Scenarios.SelfChecks;

namespace NestedSmmu.Scenarios.Tests;

/// <summary>The self-checks behind `nestedsmmu run`: every check passes, and a failing one is reported.</summary>
public sealed class SelfCheckTests
{
    [Fact]
    public void The_hardware_self_check_passes_every_check()
    {
        var log = new StringWriter();
        var check = new HardwareSelfCheck(log);
        check.Run().ShouldBe(0, log.ToString());
        check.Passed.ShouldBe(9);
        check.Failures.ShouldBeEmpty();
        check.Counters.EventsWritten.ShouldBe(1);
        log.ToString().ShouldContain("  [ok] nested DMA write lands at the mapped PA");
    }

    [Theory]
    [InlineData("grace")]
    [InlineData("small")]
    public void The_emulated_host_self_check_passes_on_every_embedded_profile(string profile)
    {
        var log = new StringWriter();
        var check = new EmulatedHostSelfCheck(log, HostProfile.LoadEmbedded(profile));
        check.Run().ShouldBe(0, log.ToString());
        check.Passed.ShouldBe(6);
        check.Host!.Profile.Name.ShouldBe(profile);
    }

    [Fact]
    public void A_host_with_devices_behind_one_smmu_fails_the_first_check_and_stops()
    {
        HostProfile small = HostProfile.LoadEmbedded("small");
        string first = small.Devices[0].Smmu;
        var oneSmmu = small with { Devices = small.Devices.Where(d => d.Smmu == first).ToList() };
        var log = new StringWriter();
        var check = new EmulatedHostSelfCheck(log, oneSmmu);
        check.Run().ShouldBe(1);
        check.Failures.ShouldBe(["the profile has devices behind two SMMUs"]);
        log.ToString().ShouldContain("  [FAIL] the profile has devices behind two SMMUs");
    }
}
