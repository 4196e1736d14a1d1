using System.Text.Json;
using NestedSmmu.Tests.Common;

namespace NestedSmmu.Cli.Tests;

/// <summary>
/// Bad command lines through `nestedsmmu check`, one row per kind of user mistake: each exits 2
/// with exactly one error line that quotes the offending option, nothing but the refusal on
/// stdout (no half-built machine report), and QEMU's own text where QEMU has a message
/// (tests/vectors/qemu-verdicts; the rows past QEMU need the host, which QEMU checks only at run time).
/// </summary>
public sealed class BadInputTableTests
{
    private const string Kvm = "-machine virt,accel=kvm -bios fw.fd -object iommufd,id=iommufd0 ";

    /// <summary>Row: what is wrong, host profile, QEMU arguments, the option the error must quote, the QEMU verdict vector (or null).</summary>
    public static TheoryData<string, string, string, string, string?> Rows() => new()
    {
        { "unknown property", "grace", "-device arm-smmuv3,primary-bus=pcie.0,foo=1", "-device arm-smmuv3,primary-bus=pcie.0,foo=1", "prop-unknown" },
        { "bad enum value", "grace", "-device arm-smmuv3,primary-bus=pcie.0,oas=40", "-device arm-smmuv3,primary-bus=pcie.0,oas=40", "smmu-oas-40" },
        { "bad bool value", "grace", "-device arm-smmuv3,primary-bus=pcie.0,accel=maybe", "-device arm-smmuv3,primary-bus=pcie.0,accel=maybe", "prop-accel-maybe-bool" },
        { "missing bus", "grace", "-device arm-smmuv3,primary-bus=pcie.7", "-device arm-smmuv3,primary-bus=pcie.7", "smmu-bus-not-found" },
        { "no bus at all", "grace", "-device arm-smmuv3", "-device arm-smmuv3", "smmu-no-bus" },
        { "duplicate id", "grace", "-device e1000,id=x -device e1000,id=x", "-device e1000,id=x", "pci-duplicate-id" },
        { "SMMU on a bus that is not a root bus", "grace", "-device pcie-root-port,id=rp,chassis=1 -device arm-smmuv3,primary-bus=rp",
            "-device arm-smmuv3,primary-bus=rp", "smmu-bus-not-root" },
        { "two SMMUs on one bus", "grace", "-device arm-smmuv3,primary-bus=pcie.0 -device arm-smmuv3,primary-bus=pcie.0",
            "-device arm-smmuv3,primary-bus=pcie.0", "smmu-second-on-bus" },
        { "iommufd link to a missing object", "grace", "-device vfio-pci,host=0001:07:00.0,iommufd=nope",
            "-device vfio-pci,host=0001:07:00.0,iommufd=nope", "vfio-iommufd-link-missing" },
        { "option without its argument", "grace", "-device", "-device", "opt-missing-argument" },
        { "accel without an iommufd object", "grace",
            "-machine virt,accel=kvm -bios fw.fd -device arm-smmuv3,primary-bus=pcie.0,accel=on,id=v0 -device vfio-pci,host=0009:01:00.0",
            "-device vfio-pci,host=0009:01:00.0", null },
        { "device behind the wrong physical SMMU", "grace",
            Kvm + "-device pxb-pcie,id=pcie.1,bus_nr=1 -device arm-smmuv3,primary-bus=pcie.1,id=v0,accel=on " +
            "-device pcie-root-port,id=rp0,bus=pcie.1,chassis=1 -device pcie-root-port,id=rp1,bus=pcie.1,chassis=2 " +
            "-device vfio-pci,host=0009:01:00.0,bus=rp0,id=gpu0,iommufd=iommufd0 -device vfio-pci,host=0008:01:00.0,bus=rp1,id=gpu1,iommufd=iommufd0",
            "-device vfio-pci,host=0008:01:00.0,bus=rp1,id=gpu1,iommufd=iommufd0", null },
        { "cmdqv=on on a host without CMDQV", "small",
            Kvm + "-device arm-smmuv3,primary-bus=pcie.0,accel=on,id=v0,cmdqv=on -device vfio-pci,host=0001:01:00.0,id=gpu1,iommufd=iommufd0",
            "-device vfio-pci,host=0001:01:00.0,id=gpu1,iommufd=iommufd0", null },
        { "host function that does not exist", "grace", Kvm + "-device vfio-pci,host=0009:07:00.0,iommufd=iommufd0",
            "-device vfio-pci,host=0009:07:00.0,iommufd=iommufd0", null },
    };

    [Theory]
    [MemberData(nameof(Rows))]
    public void A_bad_line_gives_one_error_naming_the_option_and_builds_nothing(string mistake, string host, string line, string option, string? vector)
    {
        CliRunner.Output o = CliRunner.Run(["check", "--host", host, "--", .. line.Split(' ')]);
        o.ExitCode.ShouldBe(2, mistake);
        string error = o.Stderr.Split('\n').Where(l => l.StartsWith("error:", StringComparison.Ordinal)).ShouldHaveSingleItem(mistake);
        error.ShouldStartWith($"error: {option}: ", customMessage: mistake);
        o.Stdout.Trim().ShouldBe($"refused on emulated host '{host}' (see the error line).", mistake);
        if (vector is not null)
        {
            using JsonDocument v = JsonDocument.Parse(File.ReadAllText(TestVectors.PathOf("qemu-verdicts", vector + ".json")));
            v.RootElement.GetProperty("args").EnumerateArray().Select(a => a.GetString()).ShouldBe(line.Split(' '), mistake);
            error.ShouldBe("error: " + v.RootElement.GetProperty("stderr").GetString()!["qemu-system-aarch64: ".Length..], mistake);
        }
    }
}
