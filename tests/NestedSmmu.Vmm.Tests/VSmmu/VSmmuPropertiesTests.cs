using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Tests.Common;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Vmm.Tests.VSmmu;

/// <summary>The ID registers a vSMMU advertises: QEMU 11.1's for each stage, with the resolved properties applied.</summary>
public sealed class VSmmuPropertiesTests
{
    /// <summary>tests/vectors/vsmmu/qemu-arm-smmuv3-reset-registers.txt: register name → value, per stage.</summary>
    private static Dictionary<string, uint> QemuRegisters(string stage)
    {
        var result = new Dictionary<string, uint>();
        string? current = null;
        foreach (string line in File.ReadLines(TestVectors.PathOf("vsmmu", "qemu-arm-smmuv3-reset-registers.txt")))
        {
            if (line.StartsWith("# stage=", StringComparison.Ordinal)) { current = line["# stage=".Length..]; continue; }
            if (current != stage) continue;
            string[] f = line.Split(' ');
            f[1].ShouldBe("OK");
            result[f[0]] = Convert.ToUInt32(f[2], 16);
        }
        result.Count.ShouldBe(11, $"stage {stage} in the vector");
        return result;
    }

    [Theory]
    [InlineData("1", VSmmuStage.Stage1)]
    [InlineData("2", VSmmuStage.Stage2)]
    [InlineData("nested", VSmmuStage.Nested)]
    public void Emulated_vSMMU_reads_back_QEMU_11_1_registers_for_each_stage_on_both_pages(string stage, VSmmuStage value)
    {
        Dictionary<string, uint> qemu = QemuRegisters(stage);
        var ram = new Hardware.Memory.SparseMemory();
        using var vsmmu = new EmulatedVSmmu("smmuv3.0", VSmmuProperties.EmulatedDefault with { Stage = value }, ram);

        uint Read(uint offset) => (uint)vsmmu.Read(offset, 4);
        Read((uint)SmmuRegister.IDR0).ShouldBe(qemu["IDR0"]);
        Read((uint)SmmuRegister.IDR1).ShouldBe(qemu["IDR1"]);
        Read((uint)SmmuRegister.IDR2).ShouldBe(qemu["IDR2"]);
        Read((uint)SmmuRegister.IDR3).ShouldBe(qemu["IDR3"]);
        Read((uint)SmmuRegister.IDR4).ShouldBe(qemu["IDR4"]);
        Read((uint)SmmuRegister.IDR5).ShouldBe(qemu["IDR5"]);
        Read((uint)SmmuRegister.IIDR).ShouldBe(qemu["IIDR"]);
        Read((uint)SmmuRegister.AIDR).ShouldBe(qemu["AIDR"]);
        Read((uint)SmmuRegister.GBPA).ShouldBe(qemu["GBPA"]);
        Read((uint)SmmuRegister.Page1 + (uint)SmmuRegister.IDR0).ShouldBe(qemu["PAGE1_IDR0"]);
        Read((uint)SmmuRegister.Page1 + (uint)SmmuRegister.GBPA).ShouldBe(qemu["PAGE1_GBPA"]);
        vsmmu.Traps.Reads(0).ShouldBe(9);
        vsmmu.Traps.Reads(1).ShouldBe(2);
    }

    [Fact]
    public void Resolved_accel_properties_override_QEMU_defaults_as_smmuv3_accel_does()
    {
        SmmuFeatures f = new VSmmuProperties(Accel: true, Ats: true, Ril: false, SsidSize: 20, OasBits: 48).ToFeatures();
        Dictionary<string, uint> qemu = QemuRegisters("1");

        f.Idr0.ShouldBe(qemu["IDR0"] | 1u << SmmuFeatures.IDR0_ATS);
        f.Idr1.ShouldBe(qemu["IDR1"] | 20u << 6, "IDR1.SSIDSIZE [10:6]");
        f.Idr3.ShouldBe(qemu["IDR3"] & ~(1u << 10), "IDR3.RIL [10] cleared");
        f.Idr5.ShouldBe((qemu["IDR5"] & ~7u) | 5, "IDR5.OAS [2:0] = 0b101, 48 bits");
    }

    [Fact]
    public void Accel_off_defaults_are_QEMU_s_and_the_queue_sizes_cap_at_2_to_the_19()
    {
        SmmuFeatures f = VSmmuProperties.EmulatedDefault.ToFeatures();
        (f.Ats, f.Ril, f.SsidBits, f.OasBits).ShouldBe((false, true, 0, 44));
        (f.CmdqLog2Max, f.EventqLog2Max).ShouldBe((19, 19));
        f.Msi.ShouldBeFalse("QEMU's model does not advertise MSIs");
    }

    [Theory]
    [InlineData(21, 44)]
    [InlineData(0, 40)]
    public void Properties_the_device_cannot_take_are_refused(int ssidSize, int oas)
    {
        Should.Throw<ArgumentException>(() => new VSmmuProperties(SsidSize: ssidSize, OasBits: oas).ToFeatures());
    }

    [Fact]
    public void Accelerated_vSMMU_refuses_stages_other_than_1_with_QEMU_s_message()
    {
        var e = Should.Throw<ArgumentException>(() => new AcceleratedVSmmu("smmuv3.0",
            new VSmmuProperties(Accel: true, Stage: VSmmuStage.Nested), new Hardware.Memory.SparseMemory(), null!));
        e.Message.ShouldStartWith("Only stage1 is supported for SMMUv3 with accel=on");
    }

    [Fact]
    public void The_factory_builds_the_kind_the_accel_property_asks_for()
    {
        var ram = new Hardware.Memory.SparseMemory();
        VSmmuFactory.Create("smmuv3.0", VSmmuProperties.EmulatedDefault, ram).ShouldBeOfType<EmulatedVSmmu>();
        Should.Throw<ArgumentException>(() => VSmmuFactory.Create("smmuv3.1", new VSmmuProperties(Accel: true), ram))
            .Message.ShouldContain("accel=on");
        using var rig = new AccelRig(attach: false);
        using IVSmmu accel = VSmmuFactory.Create("smmuv3.2", new VSmmuProperties(Accel: true, OasBits: 48), rig.Ram, rig.Context);
        accel.ShouldBeOfType<AcceleratedVSmmu>().Properties.Accel.ShouldBeTrue();
    }
}
