using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>Host profiles: the embedded ones, the JSON format, and errors that name the JSON path.</summary>
public sealed class HostProfileTests
{
    private const string MinimalSmmu = """{ "name": "s0", "base": "0x10000000", "features": { "sidBits": 16 } }""";
    private const string MinimalDevice = """{ "bdf": "01:00.0", "name": "d0", "kind": "gpu", "smmu": "s0", "streamId": 256 }""";

    private static string Profile(string smmus = MinimalSmmu, string devices = MinimalDevice,
        string memory = """{ "base": "0x80000000", "size": "0x40000000" }""") =>
        $$"""{ "name": "t", "memory": {{memory}}, "smmus": [ {{smmus}} ], "devices": [ {{devices}} ] }""";

    private static HostProfileException Bad(string json)
    {
        var e = Should.Throw<HostProfileException>(() => HostProfile.Parse(json));
        e.Message.ShouldStartWith(e.Path);
        return e;
    }

    [Fact]
    public void Devices_are_CANWBS_unless_the_profile_says_otherwise()
    {
        HostProfile.Parse(Profile()).Devices[0].Canwbs.ShouldBeTrue();
        HostProfile.Parse(Profile(devices: MinimalDevice.Replace(" }", ", \"canwbs\": false }", StringComparison.Ordinal))).Devices[0].Canwbs.ShouldBeFalse();
        Bad(Profile(devices: MinimalDevice.Replace(" }", ", \"canwbs\": 1 }", StringComparison.Ordinal))).Path.ShouldBe("$.devices[0].canwbs");
        HostProfile.LoadEmbedded("grace").Devices.ShouldAllBe(d => d.Canwbs);
    }

    [Fact]
    public void The_embedded_profiles_are_grace_and_small()
    {
        HostProfile.EmbeddedNames.ShouldBe(["grace", "small"]);
        HostProfile.DefaultName.ShouldBe("grace");
    }

    [Fact]
    public void Grace_has_five_SMMUs_with_CMDQV_and_GPUs_and_NICs_behind_them()
    {
        HostProfile grace = HostProfile.LoadEmbedded("grace");

        grace.Smmus.Count.ShouldBe(5);
        grace.Smmus.ShouldAllBe(s => s.HasCmdqv);
        grace.Devices.Count(d => d.Kind == PciDeviceKind.Gpu).ShouldBeGreaterThanOrEqualTo(2);
        grace.Devices.Count(d => d.Kind == PciDeviceKind.Nic).ShouldBeGreaterThanOrEqualTo(2);
        SmmuFeatures f = grace.Smmus[0].Features;
        (f.Nesting, f.OasBits, f.Ats, f.Ril, f.SsidBits, f.SidBits, f.TwoLevelStreamTable).ShouldBe((true, 48, true, true, 20, 32, true));
        CmdqvProfile c = grace.Smmus[0].Cmdqv!;
        (c.Vintfs, c.VcmdqsPerVintf, c.SidsPerVintf, c.Version).ShouldBe((16, 8, 16, 1));
        grace.Devices.Single(d => d.Name == "gpu0").Address.ToString().ShouldBe("0009:01:00.0");
    }

    [Fact]
    public void Small_has_two_SMMUs_one_linear_one_two_level()
    {
        HostProfile small = HostProfile.LoadEmbedded("small");

        small.Smmus.Select(s => (s.Name, s.Features.TwoLevelStreamTable, s.HasCmdqv)).ShouldBe([("smmu0", false, true), ("smmu1", true, false)]);
        small.Devices.Select(d => d.Name).ShouldBe(["gpu0", "nic0", "gpu1", "nic1"]);
    }

    [Fact]
    public void Raw_ID_registers_decode_through_the_hardware_codec()
    {
        // QEMU's virt SMMUv3 with stage=nested: IDR0 0x0D44101B, IDR1 0x02730010, IDR3 0x1414, IDR5 0x74.
        HostProfile p = HostProfile.Parse(Profile(smmus: """
            { "name": "s0", "base": "0x10000000", "idr": { "idr0": "0x0D44101B", "idr1": "0x02730010", "idr3": "0x1414", "idr5": "0x74" } }
            """));
        p.Smmus[0].Features.ShouldBe(SmmuFeatures.QemuVirtNested);
    }

    /// <summary>A profile file with a byte that is not UTF-8 (as the scenario fuzzer found for scenarios) is one error, not InvalidOperationException.</summary>
    [Fact]
    public void Invalid_utf8_in_a_profile_file_is_one_error_with_line_and_byte()
    {
        string path = Path.Combine(Path.GetTempPath(), $"nestedsmmu-profile-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllBytes(path, [.. "{\n \"name\": \"x"u8, 0xFF, .. "\"\n}"u8]);
            var e = Should.Throw<HostProfileException>(() => HostProfile.Load(path));
            e.Message.ShouldBe($"{path}: $: not valid UTF-8 (line 2, byte 12: 0xFF)");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_profile_loads_from_a_file_and_errors_name_the_file()
    {
        string path = Path.Combine(Path.GetTempPath(), $"nestedsmmu-profile-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(path, Profile());
            HostProfile.Load(path).Devices.Single().StreamId.ShouldBe(256u);
            File.WriteAllText(path, Profile(devices: MinimalDevice.Replace("\"s0\"", "\"s9\"", StringComparison.Ordinal)));
            var e = Should.Throw<HostProfileException>(() => HostProfile.Load(path));
            e.Source.ShouldBe(path);
            e.Message.ShouldStartWith(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void An_unknown_embedded_profile_lists_the_names()
    {
        Should.Throw<ArgumentException>(() => HostProfile.LoadEmbedded("nope")).Message.ShouldContain("grace, small");
    }

    [Fact]
    public void An_unknown_SMMU_reference_names_the_device_path()
    {
        HostProfileException e = Bad(Profile(devices: MinimalDevice.Replace("\"s0\"", "\"smmu7\"", StringComparison.Ordinal)));
        e.Path.ShouldBe("$.devices[0].smmu");
        e.Detail.ShouldContain("smmu7");
        e.Detail.ShouldContain("s0");
    }

    [Fact]
    public void Duplicate_BDFs_and_stream_IDs_are_refused()
    {
        string second = """{ "bdf": "0000:01:00.0", "name": "d1", "kind": "nic", "smmu": "s0", "streamId": 257 }""";
        HostProfileException bdf = Bad(Profile(devices: MinimalDevice + ", " + second));
        (bdf.Path, bdf.Detail).ShouldBe(("$.devices[1].bdf", "PCI address 0000:01:00.0 is already used by $.devices[0]"));

        string sameSid = """{ "bdf": "02:00.0", "name": "d1", "kind": "nic", "smmu": "s0", "streamId": "0x100" }""";
        Bad(Profile(devices: MinimalDevice + ", " + sameSid)).Path.ShouldBe("$.devices[1].streamId");

        string sameName = """{ "bdf": "02:00.0", "name": "d0", "kind": "nic", "smmu": "s0", "streamId": 1 }""";
        Bad(Profile(devices: MinimalDevice + ", " + sameName)).Path.ShouldBe("$.devices[1].name");

        // A different segment is a different address.
        HostProfile.Parse(Profile(devices: MinimalDevice + """, { "bdf": "0001:01:00.0", "name": "d1", "kind": "nic", "smmu": "s0", "streamId": 1 }"""))
            .Devices.Count.ShouldBe(2);
    }

    [Theory]
    [InlineData("\"0xZZ\"", "'0xZZ' is not a hex or decimal number")]
    [InlineData("-1", "-1 is not an unsigned integer")]
    [InlineData("1.5", "1.5 is not an unsigned integer")]
    [InlineData("9007199254740992", "too large for a JSON number")]
    [InlineData("true", "expected a number or a hex string, got a boolean")]
    [InlineData("\"0x100000000\"", "does not fit a 32-bit StreamID")]
    public void Bad_numbers_name_their_path(string value, string detail)
    {
        HostProfileException e = Bad(Profile(devices: MinimalDevice.Replace("256", value, StringComparison.Ordinal)));
        e.Path.ShouldBe("$.devices[0].streamId");
        e.Detail.ShouldContain(detail);
    }

    [Theory]
    [InlineData("""{ "name": "s0", "base": "0x10000000", "features": { "sidBits": 33 } }""", "$.smmus[0].features.sidBits", "out of range")]
    [InlineData("""{ "name": "s0", "base": "0x10000000", "features": { "warp": true } }""", "$.smmus[0].features.warp", "unknown SMMU feature")]
    [InlineData("""{ "name": "s0", "base": "0x10000000" }""", "$.smmus[0]", "missing 'features'")]
    [InlineData("""{ "name": "s0", "base": "0x10000000", "features": {}, "idr": {} }""", "$.smmus[0]", "not both")]
    [InlineData("""{ "name": "s0", "base": "0x10008000", "features": {} }""", "$.smmus[0].base", "64 KiB")]
    [InlineData("""{ "name": "s0", "base": "0x80000000", "features": {} }""", "$.smmus[0].base", "overlaps $.memory")]
    [InlineData("""{ "name": "s0", "base": "0x10000000", "features": { "stage1": false, "stage2": false } }""", "$.smmus[0].features.stage2", "stage 1 or stage 2")]
    [InlineData("""{ "name": "s0", "base": "0x10000000", "features": { "oasBits": 34 } }""", "$.smmus[0].features.oasBits", "not an architected")]
    [InlineData("""{ "name": "s0", "base": "0x10000000", "features": {}, "cmdqv": { "base": "0x10010000", "numVintfLog2": 1, "numVcmdqLog2": 1, "numSidPerVmLog2": 0, "version": 1 } }""", "$.smmus[0].cmdqv.base", "overlaps $.smmus[0].base")]
    [InlineData("""{ "name": "s0", "base": "0x10000000", "features": {}, "cmdqv": { "base": "0x10200000", "numVintfLog2": 3, "numVcmdqLog2": 1, "numSidPerVmLog2": 0, "version": 1 } }""", "$.smmus[0].cmdqv.numVcmdqLog2", "below numVintfLog2")]
    [InlineData("""{ "name": "s0", "base": "0x10000000", "features": { "twoLevelStreamTable": false, "sidBits": 24 } }""", "$.smmus[0].features.sidBits", "two-level")]
    public void Bad_SMMUs_name_their_path(string smmu, string path, string detail)
    {
        HostProfileException e = Bad(Profile(smmus: smmu, devices: ""));
        e.Path.ShouldBe(path);
        e.Detail.ShouldContain(detail);
    }

    [Fact]
    public void Structural_errors_name_their_path()
    {
        Bad("""{ "name": "t", "memory": { "base": 0, "size": 4096 }, "smmus": [], "devices": [], "extra": 1 }""").Path.ShouldBe("$.extra");
        Bad("""{ "name": "t", "smmus": [], "devices": [] }""").Detail.ShouldBe("missing member 'memory'");
        Bad("""{ "name": "t", "memory": { "base": 0, "size": 4096 }, "smmus": [], "devices": [] }""").Path.ShouldBe("$.smmus");
        Bad("{ \"name\": ").Detail.ShouldStartWith("not valid JSON");
        Bad(Profile(devices: MinimalDevice.Replace("\"gpu\"", "\"fpga\"", StringComparison.Ordinal))).Path.ShouldBe("$.devices[0].kind");
        Bad(Profile(devices: MinimalDevice.Replace("01:00.0", "1:0", StringComparison.Ordinal))).Path.ShouldBe("$.devices[0].bdf");
        Bad(Profile(memory: """{ "base": "0x80000800", "size": "0x40000000" }""")).Path.ShouldBe("$.memory.base");
        Bad(Profile(smmus: """{ "name": "s0", "base": "0x10000000", "features": { "sidBits": 4 } }""")).Path.ShouldBe("$.devices[0].streamId");
    }

    [Fact]
    public void Profiles_built_in_code_are_validated_by_the_host()
    {
        HostProfile small = HostProfile.LoadEmbedded("small");
        HostProfile broken = small with { Devices = [.. small.Devices, small.Devices[0] with { Name = "dup" }] };
        Should.Throw<HostProfileException>(() => new EmulatedHost(broken)).Path.ShouldBe("$.devices[4].bdf");
    }

    [Theory]
    [InlineData("0009:01:00.0", "0009:01:00.0")]
    [InlineData("01:00.1", "0000:01:00.1")]
    [InlineData("ABCD:FF:1F.7", "abcd:ff:1f.7")]
    public void PCI_addresses_parse_with_their_segment(string text, string canonical) =>
        PciAddress.Parse(text).ToString().ShouldBe(canonical);

    [Theory]
    [InlineData("")]
    [InlineData("1:2")]
    [InlineData("10000:01:00.0")]
    [InlineData("01:20.0")]
    [InlineData("gpu0")]
    public void Bad_PCI_addresses_do_not_parse(string text) => PciAddress.TryParse(text, out _).ShouldBeFalse();
}
