using System.Text.Json;
using NestedSmmu.Tests.Common;
using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Tests.Config;

/// <summary>
/// One test per validation rule: our verdict on a command line against what QEMU 11.1.3 printed
/// for the same line (tests/vectors/qemu-verdicts, made by tools/qemu-verdicts/make_verdicts.py).
/// </summary>
public sealed class QemuVerdictTests
{
    private const string Program = "qemu-system-aarch64: ";

    /// <summary>Cases whose QEMU verdict depends on this QEMU lacking KVM, or on a QEMU crash: checked one by one below.</summary>
    private static readonly HashSet<string> Special = ["noprefix-kvm-accel-option", "noprefix-kvm-machine-accel", "order-incompatible-and-kvm"];

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (string f in Directory.EnumerateFiles(TestVectors.DirectoryOf("qemu-verdicts"), "*.json").Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileNameWithoutExtension(f);
            if (!Special.Contains(name)) data.Add(name);
        }
        return data;
    }

    internal sealed record Verdict(string Name, string[] Prefix, string[] Args, int ExitCode, bool Accepted, string Stderr);

    internal static Verdict Load(string name) =>
        JsonSerializer.Deserialize<Verdict>(File.ReadAllText(TestVectors.PathOf("qemu-verdicts", name + ".json")),
            new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;

    /// <summary>Our output rendered as QEMU prints it: warnings, then the error, each prefixed with the program name.</summary>
    internal static string Render(MachineCheck check)
    {
        var lines = check.Warnings.Select(w => Program + w).ToList();
        if (check.Error is { } e) lines.Add(Program + e.Message);
        return string.Join("\n", lines);
    }

    internal static MachineCheck OursFor(Verdict v) => MachineValidator.Check([.. v.Prefix.Skip(1), .. v.Args], TestHosts.Grace);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Verdict_and_message_match_qemu(string name)
    {
        Verdict v = Load(name);
        MachineCheck ours = OursFor(v);
        ours.Accepted.ShouldBe(v.Accepted, Render(ours));
        Render(ours).ShouldBe(v.Stderr);
    }

    [Fact]
    public void This_qemu_has_no_kvm_so_accel_kvm_is_refused_before_any_device_while_our_host_provides_it()
    {
        // QEMU 11.1.3 here has no KVM ("invalid accelerator kvm"); the emulated host stands in
        // for KVM, so the same line goes on to the device: without firmware (-bios) it boots
        // with a device tree, which accel=on does not support (virt.c create_smmuv3_dev_dtb).
        Load("noprefix-kvm-accel-option").Stderr.ShouldBe("qemu-system-aarch64: -accel kvm: invalid accelerator kvm");
        Load("noprefix-kvm-machine-accel").Stderr.ShouldBe("qemu-system-aarch64: invalid accelerator kvm");
        OursFor(Load("noprefix-kvm-accel-option")).Error!.Message
            .ShouldBe("-device arm-smmuv3,primary-bus=pcie.0,accel=on: SMMUv3 with accel=on not supported for DT");
        OursFor(Load("noprefix-kvm-machine-accel")).Error!.QemuMessage.ShouldBe("SMMUv3 with accel=on not supported for DT");
    }

    [Fact]
    public void Legacy_iommu_and_missing_kvm_together_report_the_first_error_where_qemu_asserts()
    {
        // virt_machine_device_pre_plug_cb sets both errors; QEMU 11.1.3 aborts (error_setv assertion).
        Verdict v = Load("order-incompatible-and-kvm");
        v.ExitCode.ShouldBe(134);
        v.Stderr.ShouldContain("error_setv: Assertion");
        OursFor(v).Error!.QemuMessage.ShouldBe("virt machine already has iommu=smmuv3 set. Doesn't support incompatible iommus");
    }
}
