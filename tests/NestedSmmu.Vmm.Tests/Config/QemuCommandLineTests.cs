using NestedSmmu.Tests.Common;
using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Tests.Config;

/// <summary>QemuOpts parsing into MachineSpec, and the JSON form's lossless round trip.</summary>
public sealed class QemuCommandLineTests
{
    private static string Seed002 => File.ReadAllText(TestVectors.PathOf("qemu-verdicts", "seed-002.cmdline"));

    [Fact]
    public void Seed_002_parses_into_typed_records()
    {
        MachineSpec spec = QemuCommandLine.Parse(Seed002);
        spec.Machine.Accel.ShouldBe("kvm");
        spec.Machine.GicVersion.ShouldBe("3");
        spec.Machine.Ras.ShouldBeTrue();
        spec.Machine.HighmemMmioSize.ShouldBe(4UL << 40);
        spec.KvmRequested.ShouldBeTrue();
        spec.Cpu!.Model.ShouldBe("host");
        spec.Smp!.Cpus.ShouldBe(4u);
        spec.Memory!.Size.ShouldBe(16UL << 30);
        spec.Objects.OfType<MemoryBackendObject>().Single().Size.ShouldBe(16UL << 30);
        spec.Objects.OfType<AcpiGenericInitiatorObject>().Select(g => g.Node).ShouldBe([1u, 2, 3, 4, 5, 6, 7, 8]);
        spec.Objects.OfType<AcpiGenericInitiatorObject>().ShouldAllBe(g => g.PciDev == "dev0");
        spec.Numa.Count.ShouldBe(9);
        spec.Numa[0].Cpus.ShouldBe(["0-3"]);
        spec.Numa[0].MemDev.ShouldBe("m0");

        ArmSmmuV3Device smmu = spec.Smmus.Single();
        (smmu.PrimaryBus, smmu.Accel, smmu.Ats, smmu.Ril, smmu.Oas, smmu.SsidSize, smmu.Cmdqv)
            .ShouldBe(("pcie.1", true, OnOffAuto.Auto, OnOffAuto.Auto, AutoBits.Auto, AutoBits.Auto, OnOffAuto.Auto));
        smmu.IsGiven("ats").ShouldBeTrue();
        smmu.IsGiven("cmdqv").ShouldBeFalse(); // defaulted
        VfioPciDevice dev0 = spec.VfioDevices.Single();
        (dev0.Driver, dev0.Host, dev0.Iommufd, dev0.RomBar, dev0.Bus).ShouldBe(("vfio-pci-nohotplug", "0009:06:00.0", "iommufd0", 0, "pcie.port1"));
        spec.Devices.OfType<PxbPcieDevice>().Single().NumaNode.ShouldBe((ushort)0);
        spec.Devices.OfType<PcieRootPortDevice>().Single().Extra.ShouldBe([new OptionProperty("io-reserve", "0")]);
        spec.Devices.OfType<OtherDevice>().Select(d => d.Driver).ShouldBe(["nvme", "e1000"]);
        spec.Unmodelled.Select(u => u.Quote()).ShouldBe([
            "-nographic", "-bios /usr/share/AAVMF/AAVMF_CODE.fd",
            "-drive file=/var/lib/libvirt/images/guest.qcow2,index=0,media=disk,format=qcow2,if=none,id=nvme0",
            "-netdev user,id=net0,hostfwd=tcp::5558-:22,hostfwd=tcp::5586-:5586"]);
    }

    [Fact]
    public void Command_line_to_json_and_back_is_lossless()
    {
        MachineSpec spec = QemuCommandLine.Parse(Seed002);
        string json = MachineSpecJson.Write(spec);
        MachineSpec back = MachineSpecJson.Read(json);
        MachineSpecJson.Write(back).ShouldBe(json);
        IReadOnlyList<string> args = QemuCommandLine.Format(back);
        args.ShouldBe(QemuCommandLine.SplitShellWords(Seed002).Skip(1).ToList());
        MachineSpecJson.Write(QemuCommandLine.Parse(args)).ShouldBe(json);
        json.ShouldContain("\"kind\": \"arm-smmuv3\"");
        json.ShouldContain("\"oas\": \"auto\"");
    }

    [Fact]
    public void Json_whose_typed_values_disagree_with_the_option_text_is_refused()
    {
        string json = MachineSpecJson.Write(QemuCommandLine.Parse("-device pxb-pcie,id=pcie.1,bus_nr=0x10"));
        Should.Throw<QemuConfigException>(() => MachineSpecJson.Read(json.Replace("\"busNr\": 16", "\"busNr\": 17", StringComparison.Ordinal)))
            .Message.ShouldStartWith("-device pxb-pcie,id=pcie.1,bus_nr=0x10: machine JSON: the record's typed values disagree");
        Should.Throw<QemuConfigException>(() => MachineSpecJson.Read("{ \"devices\": [ { \"kind\": \"nope\" } ] }"));
    }

    [Theory]
    [InlineData("bus_nr=16", 16)]
    [InlineData("bus_nr=0x10", 16)]
    [InlineData("bus_nr=010", 8)] // strtoull base 0: octal (qemu-verdicts/prop-busnr-octal.json)
    [InlineData("bus_nr=255", 255)]
    public void Integers_are_read_as_qemus_visitors_read_them(string prop, int value)
    {
        QemuCommandLine.Parse($"-device pxb-pcie,id=p,{prop}").Devices.OfType<PxbPcieDevice>().Single().BusNr.ShouldBe((byte)value);
    }

    [Theory]
    [InlineData("-m 512", 512UL << 20)]
    [InlineData("-m size=2G", 2UL << 30)]
    [InlineData("-m 1.5G", 3UL << 29)]
    [InlineData("-m 4096M", 4UL << 30)]
    public void Sizes_take_suffixes_and_a_bare_memory_size_is_mebibytes(string option, ulong bytes)
    {
        QemuCommandLine.Parse(option).Memory!.Size.ShouldBe(bytes);
    }

    [Fact]
    public void Doubled_commas_are_literal_and_the_program_word_is_optional()
    {
        MachineSpec spec = QemuCommandLine.Parse(["qemu-system-aarch64", "-device", "e1000,id=a,,b,romfile=x"]);
        OtherDevice d = spec.Devices.OfType<OtherDevice>().Single();
        d.Id.ShouldBe("a,b");
        d.Extra.ShouldBe([new OptionProperty("romfile", "x")]);
        QemuCommandLine.Parse(["/usr/bin/qemu-system-aarch64", "-M", "virt,iommu=smmuv3"]).Machine.HasLegacySmmu.ShouldBeTrue();
    }

    [Fact]
    public void Help_requests_and_bare_words_quote_the_option()
    {
        Should.Throw<QemuConfigException>(() => QemuCommandLine.Parse("-device arm-smmuv3,help")).OptionText.ShouldBe("-device arm-smmuv3,help");
        Should.Throw<QemuConfigException>(() => QemuCommandLine.Parse("disk.img")).Message.ShouldStartWith("disk.img: not an option");
        Should.Throw<QemuConfigException>(() => QemuCommandLine.Parse("-device 'e1000")).Message.ShouldContain("unterminated");
    }

    [Fact]
    public void Several_machine_options_merge_and_later_keys_win()
    {
        MachineSpec spec = QemuCommandLine.Parse("-machine virt,its=off -machine its=on,gic-version=3");
        spec.Machine.Its.ShouldBeTrue();
        spec.Machine.GicVersion.ShouldBe("3");
        spec.Machine.Text.ShouldBe("virt,its=off,its=on,gic-version=3");
    }
}
