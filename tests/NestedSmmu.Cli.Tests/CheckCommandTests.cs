using System.Text.Json;
using NestedSmmu.Tests.Common;
using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Cli.Tests;

/// <summary>`nestedsmmu check` end to end: verdicts, QEMU's messages, resolved vSMMUs, topology, JSON.</summary>
public sealed class CheckCommandTests
{
    private static string[] Seed002Args =>
        [.. QemuCommandLine.SplitShellWords(File.ReadAllText(TestVectors.PathOf("qemu-verdicts", "seed-002.cmdline")))];

    private static CliRunner.Output Check(params string[] args) => CliRunner.Run(["check", .. args]);

    [Fact]
    public void Seed_002_is_accepted_on_the_default_host_and_json_shows_the_resolved_properties()
    {
        CliRunner.Output o = Check(["--json", "--", .. Seed002Args]);
        o.ExitCode.ShouldBe(0, o.Stderr);
        o.Stderr.ShouldBeEmpty();
        using JsonDocument doc = JsonDocument.Parse(o.Stdout);
        JsonElement root = doc.RootElement;
        root.GetProperty("verdict").GetString().ShouldBe("accepted");
        root.GetProperty("host").GetString().ShouldBe("emulated host 'grace'");
        JsonElement v = root.GetProperty("vsmmus").EnumerateArray().Single();
        v.GetProperty("name").GetString().ShouldBe("smmuv3.1");
        v.GetProperty("physicalSmmu").GetString().ShouldBe("smmu0");
        v.GetProperty("ats").GetBoolean().ShouldBeTrue();
        v.GetProperty("ril").GetBoolean().ShouldBeTrue();
        v.GetProperty("ssidsize").GetInt32().ShouldBe(20);
        v.GetProperty("oas").GetInt32().ShouldBe(48);
        foreach (string p in new[] { "ats", "ril", "ssidsize", "oas" })
            v.GetProperty("sources").GetProperty(p).GetString().ShouldBe("host");
        JsonElement dev0 = root.GetProperty("devices").EnumerateArray().Single(d => d.GetProperty("name").GetString() == "dev0");
        dev0.GetProperty("streamId").GetInt32().ShouldBe(0x200);
        dev0.GetProperty("vsmmu").GetString().ShouldBe("smmuv3.1");
        dev0.GetProperty("physicalSmmu").GetString().ShouldBe("smmu0");
        dev0.GetProperty("hostAddress").GetString().ShouldBe("0009:06:00.0");
        root.GetProperty("notModelled").EnumerateArray().Select(e => e.GetString()).ShouldContain("-device nvme,drive=nvme0,serial=deadbeaf1,bus=pcie.0");
        root.GetProperty("machine").GetProperty("devices").GetArrayLength().ShouldBe(6);
    }

    [Fact]
    public void The_text_report_lists_each_vsmmu_and_device()
    {
        CliRunner.Output o = Check(["--", .. Seed002Args]);
        o.ExitCode.ShouldBe(0, o.Stderr);
        o.Stdout.ShouldContain("accepted: QEMU 11.1 would accept this command line, and emulated host 'grace' can back it.");
        o.Stdout.ShouldContain("smmuv3.1: primary-bus pcie.1, buses [0x01-0x02], accel=on, physical SMMU smmu0");
        o.Stdout.ShouldContain("ats=on (from host) ril=on (from host) ssidsize=20 (from host) oas=48 (from host)");
        o.Stdout.ShouldContain("dev0 (vfio-pci-nohotplug): bus pcie.port1 slot 00.0, StreamID 0x0200, vSMMU smmuv3.1, host 0009:06:00.0 on physical SMMU smmu0");
        o.Stdout.ShouldContain("not modelled (kept as written): -nographic;");
    }

    [Theory]
    [InlineData("smmu-oas-40")]
    [InlineData("smmu-accel-needs-kvm")]
    [InlineData("prop-ssidsize-21")]
    [InlineData("smmu-bypass-pxb")]
    public void A_refused_line_exits_2_with_one_error_line_carrying_qemus_message(string vector)
    {
        using JsonDocument v = JsonDocument.Parse(File.ReadAllText(TestVectors.PathOf("qemu-verdicts", vector + ".json")));
        string[] args = [.. v.RootElement.GetProperty("args").EnumerateArray().Select(a => a.GetString()!)];
        string qemu = v.RootElement.GetProperty("stderr").GetString()!;
        CliRunner.Output o = Check(["--", "qemu-system-aarch64", .. args]);
        o.ExitCode.ShouldBe(2);
        string[] errors = [.. o.Stderr.Split('\n').Where(l => l.StartsWith("error:", StringComparison.Ordinal))];
        errors.ShouldHaveSingleItem().ShouldBe("error: " + qemu["qemu-system-aarch64: ".Length..]);
    }

    [Fact]
    public void Another_host_profile_changes_the_verdict()
    {
        string[] line = ["-machine", "virt,accel=kvm", "-bios", "fw.fd", "-object", "iommufd,id=fd0",
            "-device", "arm-smmuv3,primary-bus=pcie.0,accel=on", "-device", "vfio-pci,host=0000:01:00.0,iommufd=fd0"];
        Check(["--", .. line]).ExitCode.ShouldBe(0);
        CliRunner.Output small = Check(["--host", "small", "--", .. line]);
        small.ExitCode.ShouldBe(2);
        small.Stderr.ShouldContain("error: -device vfio-pci,host=0000:01:00.0,iommufd=fd0: Host SMMUv3 Stream Table format mismatch (host STLEVEL=0, QEMU STLEVEL=1)");
    }

    [Fact]
    public void A_host_profile_file_is_read()
    {
        string path = CliRunner.TempFile("host.json", """
            { "name": "one", "memory": { "base": "0x80000000", "size": "0x40000000" },
              "smmus": [ { "name": "s0", "base": "0x10000000", "features": { "stage1": true, "stage2": true, "oasBits": 44,
                "gran4K": true, "gran16K": true, "gran64K": true, "ats": false, "ril": true, "sidBits": 16, "ssidBits": 0,
                "twoLevelStreamTable": true } } ],
              "devices": [ { "bdf": "0000:01:00.0", "name": "nic", "kind": "nic", "smmu": "s0", "streamId": "0x100", "ats": false } ] }
            """);
        CliRunner.Output o = Check(["--host", path, "--json", "--", "-machine", "virt,accel=kvm", "-bios", "fw.fd", "-object", "iommufd,id=fd0",
            "-device", "arm-smmuv3,primary-bus=pcie.0,accel=on", "-device", "vfio-pci,host=0000:01:00.0,iommufd=fd0"]);
        o.ExitCode.ShouldBe(0, o.Stderr);
        using JsonDocument doc = JsonDocument.Parse(o.Stdout);
        JsonElement v = doc.RootElement.GetProperty("vsmmus")[0];
        (v.GetProperty("ats").GetBoolean(), v.GetProperty("oas").GetInt32(), v.GetProperty("ssidsize").GetInt32(), v.GetProperty("cmdqv").GetBoolean())
            .ShouldBe((false, 44, 0, false));
    }

    [Fact]
    public void Warnings_go_to_stderr_and_the_line_is_still_accepted()
    {
        CliRunner.Output o = Check("--", "-device", "pxb-pcie,id=pcie.1,bus_nr=0x10", "-device", "arm-smmuv3,primary-bus=pcie.1");
        o.ExitCode.ShouldBe(0);
        o.Stderr.Trim().ShouldBe("-device arm-smmuv3,primary-bus=pcie.1: warning: SMMUv3 device only supported with pcie.0 for DT");
    }

    [Fact]
    public void Misuse_of_the_command_exits_1_and_help_shows_an_example()
    {
        Check().ExitCode.ShouldBe(1);
        Check("--host", "nope", "--", "-m", "1G").Stderr.ShouldContain("error: host profile 'nope'");
        CliRunner.Output help = Check("--help");
        help.ExitCode.ShouldBe(0);
        help.Stdout.ShouldContain("nestedsmmu check -- -machine virt,accel=kvm");
    }

    [Fact]
    public void A_whole_pasted_line_with_continuations_is_one_argument_too()
    {
        string line = File.ReadAllText(TestVectors.PathOf("qemu-verdicts", "seed-002.cmdline"));
        CliRunner.Output o = Check("--", line);
        o.ExitCode.ShouldBe(0, o.Stderr);
        o.Stdout.ShouldContain("physical SMMU smmu0");
        Check("--", "-device 'arm-smmuv3").Stderr.ShouldContain("error: unterminated ' quote");
    }
}
