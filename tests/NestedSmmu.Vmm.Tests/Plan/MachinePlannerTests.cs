using System.Buffers.Binary;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.Plan;
using NestedSmmu.Vmm.Tests.Config;

namespace NestedSmmu.Vmm.Tests.Plan;

/// <summary>The planner on host views built in code (bus-number and slot limits, nesting, groups) and the sysfs inputs it adds.</summary>
public sealed class MachinePlannerTests
{
    private static HostSmmuInfo GraceSmmu(string name) => TestHosts.Grace.Smmus[0] with { Name = name };

    // SMMUs smmu00.. with devices segment = SMMU index, bus = device index + 1; each its own group.
    private static HostView Host(params int[] devicesPerSmmu)
    {
        var smmus = devicesPerSmmu.Select((_, i) => GraceSmmu($"smmu{i:d2}")).ToList();
        var devices = devicesPerSmmu.SelectMany((n, i) => Enumerable.Range(1, n).Select(b =>
            new HostDeviceInfo($"{i:x4}:{b:x2}:00.0", $"smmu{i:d2}", $"g{i}.{b}", false, 20, null))).ToList();
        return new HostView("built host", smmus, devices);
    }

    [Fact]
    public void Fifteen_smmus_of_fifteen_devices_fill_the_bus_numbers_exactly_and_check_accepts_it()
    {
        MachinePlan plan = MachinePlanner.Plan(Host([.. Enumerable.Repeat(15, 15)]), new PlanRequest());
        plan.Vsmmus.Select(v => (v.BusNr, v.LastBus)).ShouldBe(Enumerable.Range(0, 15).Select(i => ((byte)(0x10 + 16 * i), (byte)(0x1F + 16 * i))));
        ((int)plan.Vsmmus[^1].LastBus).ShouldBe(MachinePlanner.MaxBusNr);
        MachineCheck check = MachineValidator.Check(plan.Spec, Host([.. Enumerable.Repeat(15, 15)]));
        check.Error.ShouldBeNull();
        check.Devices.Count(d => d.HostAddress is not null).ShouldBe(225);
        check.Vsmmus.Select(v => (int)v.BusRange.Max).Max().ShouldBe(MachinePlanner.MaxBusNr);
    }

    [Fact]
    public void More_devices_than_bus_numbers_allow_is_refused()
    {
        var e = Should.Throw<PlanException>(() => MachinePlanner.Plan(Host([.. Enumerable.Repeat(15, 14), 16]), new PlanRequest()));
        e.Message.ShouldBe("226 devices behind 15 physical SMMUs need more bus numbers than a PCI segment has: physical SMMU smmu14's pxb-pcie " +
            "would span 0xf0-0x100, past 0xff; pass fewer devices with --device");
        Should.Throw<PlanException>(() => MachinePlanner.Plan(Host(33), new PlanRequest()))
            .Message.ShouldBe("33 devices behind physical SMMU smmu00: one pxb-pcie root bus has 32 slots for root ports");
    }

    [Fact]
    public void An_smmu_without_stage_1_cannot_nest_and_a_device_asked_twice_is_refused()
    {
        HostView host = Host(1, 1);
        HostSmmuInfo s1 = host.Smmus[1];
        uint idr0 = s1.HwInfo.Idr0 & ~(1u << SmmuFeatures.IDR0_S1P);
        host = host with { Smmus = [host.Smmus[0], s1 with { HwInfo = s1.HwInfo with { Idr0 = idr0 } }] };
        Should.Throw<PlanException>(() => MachinePlanner.Plan(host, new PlanRequest { Devices = ["0001:01:00.0"] }))
            .Message.ShouldBe("0001:01:00.0 is behind physical SMMU smmu01, which cannot nest (IDR0: S1P=0 S2P=1; an accel vSMMU needs both stages)");
        MachinePlan all = MachinePlanner.Plan(host, new PlanRequest());
        all.Vsmmus.ShouldHaveSingleItem().PhysicalSmmu.ShouldBe("smmu00");
        all.Notes.ShouldHaveSingleItem().ShouldStartWith("left out 0001:01:00.0 is behind physical SMMU smmu01");
        Should.Throw<PlanException>(() => MachinePlanner.Plan(host, new PlanRequest { Devices = ["0000:01:00.0", "0:1:0.0"] }))
            .Message.ShouldBe("0000:01:00.0 is asked for twice");
    }

    [Fact]
    public void Cmdqv_off_and_auto_are_written_as_asked()
    {
        MachinePlan off = MachinePlanner.Plan(Host(1), new PlanRequest { Cmdqv = OnOffAuto.Off });
        off.Spec.Smmus.Single().Cmdqv.ShouldBe(OnOffAuto.Off);
        MachineValidator.Check(off.Spec, Host(1)).Vsmmus.Single().Resolved!.Cmdqv.ShouldBeFalse();
        MachinePlan auto = MachinePlanner.Plan(Host(1), new PlanRequest());
        auto.Spec.Smmus.Single().Text.ShouldBe("arm-smmuv3,primary-bus=pcie.1,id=vsmmu0,accel=on,cmdqv=auto");
        MachineValidator.Check(auto.Spec, Host(1)).Vsmmus.Single().Resolved!.Cmdqv.ShouldBeTrue();
    }

    [Fact]
    public void Sysfs_gives_numa_node_ats_capability_and_the_iommu_from_its_class_device_list()
    {
        string root = Path.Combine(Path.GetTempPath(), "nestedsmmu-sysfs", Guid.NewGuid().ToString("N"));
        try
        {
            string smmu = Path.Combine(root, "devices/platform/arm-smmu-v3.0.auto/iommu/smmu3.0x0000000011000000");
            Directory.CreateDirectory(Path.Combine(smmu, "devices"));
            Directory.CreateDirectory(Path.Combine(root, "class/iommu"));
            File.CreateSymbolicLink(Path.Combine(root, "class/iommu/smmu3.0x0000000011000000"), smmu);
            string Function(string bdf, string numa, byte[]? config)
            {
                string dir = Path.Combine(root, "devices/pci0009:00/0009:00:00.0", bdf);
                Directory.CreateDirectory(Path.Combine(dir, "vfio-dev/vfio0"));
                Directory.CreateDirectory(Path.Combine(root, "bus/pci/devices"));
                File.CreateSymbolicLink(Path.Combine(root, "bus/pci/devices", bdf), dir);
                File.WriteAllText(Path.Combine(dir, "numa_node"), numa);
                if (config is not null) File.WriteAllBytes(Path.Combine(dir, "config"), config);
                return dir;
            }
            // ATS (ID 0x000F) second in the extended list, after a capability at 0x100 pointing to 0x148.
            var withAts = new byte[4096];
            BinaryPrimitives.WriteUInt32LittleEndian(withAts.AsSpan(0x100), 0x0001u | (1u << 16) | (0x148u << 20));
            BinaryPrimitives.WriteUInt32LittleEndian(withAts.AsSpan(0x148), 0x000Fu | (1u << 16));
            var withoutAts = new byte[4096];
            BinaryPrimitives.WriteUInt32LittleEndian(withoutAts.AsSpan(0x100), 0x0001u | (1u << 16));
            string a = Function("0009:01:00.0", "1\n", withAts);
            Function("0009:02:00.0", "-1\n", withoutAts);
            Function("0009:03:00.0", "0\n", new byte[64]); // an unprivileged read: the first 64 bytes only
            // 0009:01:00.0 has its iommu link; the other two are found through the IOMMU's device list.
            File.CreateSymbolicLink(Path.Combine(a, "iommu"), smmu);
            foreach (string bdf in new[] { "0009:02:00.0", "0009:03:00.0" })
                File.CreateSymbolicLink(Path.Combine(smmu, "devices", bdf), Path.Combine(root, "devices/pci0009:00/0009:00:00.0", bdf));

            SysfsHostDevices.Iommus(root).ShouldBe(["smmu3.0x0000000011000000"]);
            SysfsHostDevices.Read(root).ShouldBe([
                new HostDeviceLocation("0009:01:00.0", "smmu3.0x0000000011000000", "0009:01:00.0", 1, true),
                new HostDeviceLocation("0009:02:00.0", "smmu3.0x0000000011000000", "0009:02:00.0", null, false),
                new HostDeviceLocation("0009:03:00.0", "smmu3.0x0000000011000000", "0009:03:00.0", 0, null)]);
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }
}
