using System.Text.Json;
using NestedSmmu.Guest;
using NestedSmmu.Guest.Dma;
using NestedSmmu.Guest.Smmu;
using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Uapi;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.Machine;
using NestedSmmu.Vmm.Tests.Config;
using NestedSmmu.Vmm.VCmdqv;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Vmm.Tests.Realize;

/// <summary>The emulated host's DMA as the VM's passthrough hook (what the CLI does).</summary>
internal sealed class HostDma(EmulatedHostDiagnostics diagnostics) : IPassthroughDma
{
    public DmaResult Dma(string hostAddress, ulong iova, AccessKind access, Span<byte> data) => diagnostics.Dma(hostAddress, iova, access, data);
}

/// <summary>A VM device as the guest workload's DMA engine.</summary>
internal sealed class VmEngine(VmDevice device) : IDmaEngine
{
    public bool Write(ulong iova, ReadOnlySpan<byte> data) => device.Dma(iova, AccessKind.Write, data.ToArray()).IsSuccess;
    public bool Read(ulong iova, Span<byte> data) => device.Dma(iova, AccessKind.Read, data).IsSuccess;
}

/// <summary>
/// <see cref="Vm"/> realized on the emulated grace host: where things land, the guest driving it
/// through MMIO, RAM and the tables only, both invalidation paths side by side, hot-plug, unplug,
/// teardown and the report.
/// </summary>
public sealed class VmTests
{
    /// <summary>
    /// Two accel vSMMUs with cmdqv=on: smmuv3.0 on pcie.1 (gpu0, behind smmu0) and smmuv3.1 on pcie.2
    /// (nic0, behind smmu3), with two free root ports on pcie.2 for hot-plug.
    /// </summary>
    private static readonly string[] Machine =
    [
        .. GraceMachines.Base("512M", "virt,accel=kvm,gic-version=3"), .. GraceMachines.Gpu0OnSmmu0, .. GraceMachines.Nic0OnSmmu3,
        "-device", "pcie-root-port,id=rp4,bus=pcie.2,chassis=4",
    ];

    private sealed class Bed : IDisposable
    {
        public Bed(string[]? args = null)
        {
            Host = EmulatedHost.FromEmbedded("grace");
            MemoryBefore = Host.Diagnostics.HostMemoryAllocated;
            Fd = Host.Open();
            Check = MachineValidator.Check(args ?? Machine, TestHosts.Grace);
            Check.Error.ShouldBeNull();
            Vm = Vm.Realize(Check, TestHosts.Grace, Fd, new VmOptions { PassthroughDma = new HostDma(Host.Diagnostics) });
        }

        public EmulatedHost Host { get; }
        public ulong MemoryBefore { get; }
        public EmulatedIommufd Fd { get; }
        public MachineCheck Check { get; }
        public Vm Vm { get; }

        public GuestKernel Boot()
        {
            var pages = new GuestPageAllocator(Vm.Ram, Vm.Ram.Base, Vm.Ram.Size / 2);
            GuestKernel k = Vm.Tables.DeviceTreeBoot
                ? GuestKernel.BootFromDeviceTree(Vm.Bus, Vm.Ram, pages, Vm.Tables.Dtb!)
                : GuestKernel.BootFromAcpi(Vm.Bus, Vm.Ram, pages, Vm.Tables.Iort, Vm.Tables.Dsdt);
            Vm.Boot();
            k.Log.Errors.ShouldBeEmpty();
            return k;
        }

        public GuestPageAllocator Buffers => new(Vm.Ram, Vm.Ram.Base + Vm.Ram.Size / 2, Vm.Ram.Size / 2);

        public void Dispose()
        {
            Vm.Dispose();
            Fd.Dispose();
        }
    }

    [Fact]
    public void Realize_places_vsmmus_and_cmdqvs_where_the_board_says_and_attaches_devices_at_their_requester_id()
    {
        using var bed = new Bed();
        Vm vm = bed.Vm;
        vm.Vsmmus.Select(v => v.Name).ShouldBe(["smmuv3.0", "smmuv3.1"]);
        foreach (VmVsmmu v in vm.Vsmmus)
        {
            // virt's platform bus: each SMMU's frame, then its CMDQV region right after it.
            vm.Bus.TryFind(v.Placed.Base, out var region).ShouldBeTrue();
            region.Name.ShouldBe(v.Name);
            v.Cmdqv.ShouldNotBeNull().MmioBase.ShouldBe(v.Placed.CmdqvBase!.Value);
            // 4 KiB backend pages clamp IDR1.CMDQS to 8 (a 4 KiB queue), as tegra241_cmdqv_init_regs does.
            uint idr1 = (uint)vm.Bus.Read(v.Placed.Base + (ulong)SmmuRegister.IDR1, 4);
            SmmuFeatures.FromIdrs(0, idr1, 0, 0).CmdqLog2Max.ShouldBe(8);
            v.Accel.ShouldBeTrue();
            v.Device.Properties.Cmdqv.ShouldBeTrue();
        }
        vm.Vsmmus.Select(v => v.PhysicalSmmu).ShouldBe(["smmu0", "smmu3"]);
        VmDevice gpu0 = vm.Device("gpu0").ShouldNotBeNull();
        VmDevice nic0 = vm.Device("nic0").ShouldNotBeNull();
        gpu0.Vsid.ShouldBe(bed.Check.Devices.Single(d => d.Name == "gpu0").StreamId);
        gpu0.Vsid.ShouldBe(0x0200u); // bus 2 (rp1's secondary under pxb bus 1), devfn 0
        nic0.Vsid.ShouldBe(0x0900u);
        var a0 = (AcceleratedVSmmu)vm.Vsmmus[0].Device;
        a0.DeviceOf(gpu0.Vsid).ShouldBe(gpu0.IommufdDevice);
        a0.Viommu.ShouldNotBeNull().Type.ShouldBe(ViommuType.Tegra241Cmdqv);
        // One stage 2 per physical SMMU: the kernel refuses the first SMMU's nest parent to the
        // second SMMU's device (arm_smmu_attach_dev: EINVAL), so the host context allocates another.
        vm.HostContext.ShouldNotBeNull().NestParents.Count.ShouldBe(2);
        vm.Tables.DeviceTreeBoot.ShouldBeFalse();
        vm.Tables.Dtb.ShouldBeNull(); // accel=on: QEMU writes no device tree for it
    }

    [Fact]
    public void Trapped_and_direct_invalidations_have_the_same_tlb_effect_and_only_trapped_ones_exit()
    {
        using var bed = new Bed();
        GuestKernel kernel = bed.Boot();
        VmDevice gpu0 = bed.Vm.Device("gpu0")!;
        VmVsmmu v = gpu0.Vsmmu!;
        DmaDevice dma = kernel.AddPciDevice("gpu0", gpu0.RequesterId).ShouldNotBeNull();
        GuestSmmu smmu = kernel.Smmus.Single(s => ReferenceEquals(s.Driver, dma.Smmu));
        smmu.Cmdqv.ShouldNotBeNull();
        GuestPageAllocator buffers = bed.Buffers;

        var effects = new List<(bool Cached, bool CachedAfter, bool FaultsAfter, long Batches, long Traps)>();
        foreach (bool trapped in new[] { true, false })
        {
            kernel.BypassVcmdq(trapped);
            ulong pa = buffers.Allocate(0x1000);
            DmaMapping m = dma.Map(pa, 0x1000)!;
            gpu0.Dma(m.Iova, AccessKind.Write, new byte[] { 1, 2, 3, 4 }).IsSuccess.ShouldBeTrue();
            bool cached = Tlb(bed, m.Iova, dma.Domain.Asid);

            // The CMDQV driver's counters are a sum over its queues taken when read.
            long PathBatches() => (trapped ? smmu.Driver.SmmuQueueCounters : smmu.Cmdqv!.DirectCounters).Batches;
            long batchesBefore = PathBatches();
            long trapsBefore = trapped ? v.CommandQueueTraps : v.CmdqvTraps;
            long otherTrapsBefore = trapped ? v.CmdqvTraps : v.CommandQueueTraps;
            dma.Unmap(m).ShouldBeTrue();
            long batches = PathBatches() - batchesBefore;
            long traps = (trapped ? v.CommandQueueTraps : v.CmdqvTraps) - trapsBefore;
            // Nothing of the other path moved.
            ((trapped ? v.CmdqvTraps : v.CommandQueueTraps) - otherTrapsBefore).ShouldBe(0);

            bool faults = !gpu0.Dma(m.Iova, AccessKind.Write, new byte[] { 9 }).IsSuccess;
            effects.Add((cached, Tlb(bed, m.Iova, dma.Domain.Asid), faults, batches, traps));
            buffers.Free(pa, 0x1000);
        }
        var (t, d) = (effects[0], effects[1]);
        // The same TLB effect: cached before, gone after, the DMA faults, on both paths.
        (t.Cached, t.CachedAfter, t.FaultsAfter).ShouldBe((true, false, true));
        (d.Cached, d.CachedAfter, d.FaultsAfter).ShouldBe((true, false, true));
        t.Batches.ShouldBeGreaterThan(0);
        t.Traps.ShouldBeGreaterThanOrEqualTo(t.Batches);
        d.Batches.ShouldBeGreaterThan(0);
        d.Traps.ShouldBe(0);
        v.CmdqvDirectDoorbells.ShouldBeGreaterThanOrEqualTo(d.Batches);
        // The guest sees both faults with the vSID the VMM attached.
        bed.Vm.ServiceEvents();
        dma.Smmu.ProcessEvents().Where(f => f.Type == EventType.F_TRANSLATION).Select(f => f.StreamId).ShouldBe([gpu0.Vsid, gpu0.Vsid]);
    }

    private static bool Tlb(Bed bed, ulong iova, ushort asid) =>
        bed.Host.Diagnostics.TlbEntries("smmu0").Any(e => e.Asid == asid && e.Covers(iova));

    [Fact]
    public void Hot_plug_is_for_a_booted_guest_keeps_the_vsmmus_binding_and_unplug_follows_the_cmdqv_policy()
    {
        using var bed = new Bed();
        Vm vm = bed.Vm;
        const string nic1 = "vfio-pci,host=0005:01:00.1,bus=rp3,id=nic1,iommufd=iommufd0";
        Should.Throw<InvalidOperationException>(() => vm.HotPlug(nic1));
        GuestKernel kernel = bed.Boot();

        VmDevice dev = vm.HotPlug(nic1);
        dev.HotPlugged.ShouldBeTrue();
        dev.Vsmmu!.Name.ShouldBe("smmuv3.1");
        dev.Vsid.ShouldBe(0x0A00u);
        ((AcceleratedVSmmu)dev.Vsmmu.Device).DeviceOf(dev.Vsid).ShouldBe(dev.IommufdDevice);
        // The guest gets it through the same tables and runs the workload on the direct path.
        DmaDevice dma = kernel.AddPciDevice("nic1", dev.RequesterId).ShouldNotBeNull();
        kernel.BypassVcmdq(false);
        DmaWorkloadResult r = DmaWorkload.Run(dma, new VmEngine(dev), bed.Buffers);
        r.Failed.ShouldBeEmpty();

        // Behind smmu1, not smmu3: refused with the binding rule's words; nothing was plugged.
        var other = Should.Throw<QemuConfigException>(() => vm.HotPlug("vfio-pci,host=0008:01:00.0,bus=rp4,id=gpu1,iommufd=iommufd0"));
        other.Message.ShouldContain("gpu1 (host 0008:01:00.0) is behind physical SMMU smmu1, but vSMMU smmuv3.1 is bound to physical SMMU smmu3 (by nic0");
        vm.Device("gpu1").ShouldBeNull();
        bed.Fd.BindDevice("0008:01:00.0"); // still free on the host
        Should.Throw<QemuConfigException>(() => vm.HotPlug("vfio-pci-nohotplug,host=0000:01:00.0,bus=rp4,id=nic2,iommufd=iommufd0"))
            .Message.ShouldEndWith("Device 'vfio-pci-nohotplug' does not support hotplugging");

        // The device that created the CMDQV vIOMMU stays; the hot-plugged one may go.
        Should.Throw<InvalidOperationException>(() => vm.Unplug("nic0")).Message.ShouldBe(CmdqvUnplugPolicy.CreatorMessage);
        vm.Unplug("nic1");
        vm.Device("nic1").ShouldBeNull();
        ((AcceleratedVSmmu)vm.Vsmmu("smmuv3.1")!.Device).DeviceOf(0x0A00).ShouldBeNull();
        vm.Spec.FindDevice("nic1").ShouldBeNull();
    }

    [Fact]
    public void A_vsmmu_with_no_cold_plugged_device_is_bound_by_its_first_hot_plug_unless_that_would_change_what_the_guest_saw()
    {
        // Nothing auto but cmdqv (which needs no cold-plugged device): smmuv3.0 shows no CMDQV until a device
        // could resolve it, so a host with one would change it; smmuv3.1 says cmdqv=off.
        string[] args =
        [
            "-machine", "virt,accel=kvm,gic-version=3", "-bios", "AAVMF_CODE.fd", "-m", "256M", "-object", "iommufd,id=iommufd0",
            "-device", "pxb-pcie,id=pcie.1,bus_nr=1,bus=pcie.0",
            "-device", "arm-smmuv3,primary-bus=pcie.1,id=smmuv3.0,accel=on,ats=off,ril=on,ssidsize=0,oas=48",
            "-device", "pcie-root-port,id=rp1,bus=pcie.1,chassis=1",
            "-device", "pxb-pcie,id=pcie.2,bus_nr=8,bus=pcie.0",
            "-device", "arm-smmuv3,primary-bus=pcie.2,id=smmuv3.1,accel=on,ats=off,ril=on,ssidsize=0,oas=48,cmdqv=off",
            "-device", "pcie-root-port,id=rp2,bus=pcie.2,chassis=2",
        ];
        using var bed = new Bed(args);
        bed.Vm.Vsmmus.ShouldAllBe(v => v.Resolved == null && v.PhysicalSmmu == null && v.Devices.Count == 0);
        GuestKernel kernel = bed.Boot();

        Should.Throw<QemuConfigException>(() => bed.Vm.HotPlug("vfio-pci,host=0009:01:00.0,bus=rp1,id=gpu0,iommufd=iommufd0"))
            .Message.ShouldContain("would change the properties vSMMU smmuv3.0 showed the running guest (cmdqv off -> on)");
        bed.Vm.Device("gpu0").ShouldBeNull();

        VmDevice nic2 = bed.Vm.HotPlug("vfio-pci,host=0000:01:00.0,bus=rp2,id=nic2,iommufd=iommufd0");
        VmVsmmu v1 = bed.Vm.Vsmmu("smmuv3.1")!;
        v1.PhysicalSmmu.ShouldBe("smmu4");
        v1.Resolved.ShouldNotBeNull().Ats.ShouldBeFalse();
        DmaDevice dma = kernel.AddPciDevice("nic2", nic2.RequesterId).ShouldNotBeNull();
        DmaWorkload.Run(dma, new VmEngine(nic2), bed.Buffers).Failed.ShouldBeEmpty();
    }

    [Fact]
    public void Teardown_gives_everything_back_and_a_realize_the_kernel_refuses_unwinds()
    {
        var host = EmulatedHost.FromEmbedded("grace");
        ulong before = host.Diagnostics.HostMemoryAllocated;
        using EmulatedIommufd fd = host.Open();
        MachineCheck check = MachineValidator.Check(Machine, TestHosts.Grace);
        Vm vm = Vm.Realize(check, TestHosts.Grace, fd);
        host.Diagnostics.HostMemoryAllocated.ShouldBeGreaterThan(before);
        vm.Dispose();
        host.Diagnostics.HostMemoryAllocated.ShouldBe(before);
        // Every device was unbound and every vIOMMU freed: the same machine realizes again.
        Vm.Realize(check, TestHosts.Grace, fd).Dispose();

        // Another VMM holds nic0: its bind fails (EINVAL, vfio_df_open opens a cdev once) after gpu0
        // was plugged; realize unwinds all of it.
        using EmulatedIommufd other = host.Open();
        DeviceId held = other.BindDevice("0005:01:00.0");
        Should.Throw<IommufdException>(() => Vm.Realize(check, TestHosts.Grace, fd)).Errno.ShouldBe(Errno.EINVAL);
        host.Diagnostics.HostMemoryAllocated.ShouldBe(before);
        fd.BindDevice("0009:01:00.0"); // gpu0 is free again
        other.UnbindDevice(held);
    }

    [Fact]
    public void The_legacy_smmu_translates_emulated_endpoints_for_a_device_tree_guest()
    {
        using var bed = new Bed(["-machine", "virt,iommu=smmuv3", "-m", "256M", "-device", "e1000,id=nic0"]);
        bed.Vm.Tables.DeviceTreeBoot.ShouldBeTrue();
        VmVsmmu v = bed.Vm.Vsmmus.ShouldHaveSingleItem();
        v.Accel.ShouldBeFalse();
        v.Placed.Base.ShouldBe(0x0905_0000UL);
        VmDevice nic0 = bed.Vm.Device("nic0").ShouldNotBeNull();
        nic0.Kind.ShouldBe(VmDeviceKind.Emulated);
        GuestKernel kernel = bed.Boot();
        DmaDevice dma = kernel.AddPciDevice("nic0", nic0.RequesterId).ShouldNotBeNull();
        dma.StreamId.ShouldBe(nic0.Vsid);
        DmaWorkloadResult r = DmaWorkload.Run(dma, new VmEngine(nic0), bed.Buffers);
        r.Failed.ShouldBeEmpty();
        r.FaultsSeen.ShouldBe(r.FaultsExpected);
        v.CommandQueueTraps.ShouldBeGreaterThan(0);
    }

    [Fact]
    public void A_vfio_device_with_no_viommu_dmas_at_guest_physical_addresses()
    {
        using var bed = new Bed(["-machine", "virt,accel=kvm", "-m", "128M", "-object", "iommufd,id=iommufd0",
            "-device", "vfio-pci,host=0000:01:00.0,id=nic2,iommufd=iommufd0"]);
        bed.Vm.Vsmmus.ShouldBeEmpty();
        VmDevice nic2 = bed.Vm.Device("nic2").ShouldNotBeNull();
        nic2.Kind.ShouldBe(VmDeviceKind.VfioUntranslated);
        ulong gpa = bed.Vm.Ram.Base + 0x12_3000;
        nic2.Dma(gpa, AccessKind.Write, new byte[] { 0xA5, 0x5A }).IsSuccess.ShouldBeTrue();
        var back = new byte[2];
        bed.Vm.Ram.Read(gpa, back);
        back.ShouldBe(new byte[] { 0xA5, 0x5A });
        // Outside guest RAM the IOAS maps nothing.
        nic2.Dma(bed.Vm.Ram.End + 0x1000, AccessKind.Write, new byte[] { 1 }).IsSuccess.ShouldBeFalse();
        VmReport.Build(bed.Vm, "grace", new Dictionary<string, DeviceRunFigures>(), [new RunCheck("x", true)]).Notes
            .ShouldContain("nic2: no vIOMMU above it (vfio-untranslated)");
    }

    [Fact]
    public void The_report_names_failed_checks_and_sums_the_paths_over_devices()
    {
        using var bed = new Bed();
        var figures = new Dictionary<string, DeviceRunFigures>
        {
            ["gpu0"] = new(10, 640, 3, 3, new PathFigures(6, 6, 12), new PathFigures(6, 6, 0)),
            ["nic0"] = new(20, 1280, 3, 2, new PathFigures(4, 5, 9), PathFigures.Zero),
        };
        VmReport report = VmReport.Build(bed.Vm, "grace", figures, [new RunCheck("a", true), new RunCheck("b held", false, "why")]);
        report.Verdict.ShouldBe("fail");
        report.Invalidation.ShouldBe(new InvalidationReport(new PathFigures(10, 11, 21), new PathFigures(6, 6, 0)));
        JsonElement json = VmReport.Parse(report.ToJson());
        json.GetProperty("verdict").GetString().ShouldBe("fail");
        json.GetProperty("failed_checks").EnumerateArray().Select(e => e.GetString()).ShouldBe(["b held"]);
        json.GetProperty("invalidation").GetProperty("trapped").GetProperty("vmm_traps").GetInt64().ShouldBe(21);
        JsonElement v0 = json.GetProperty("vsmmus")[0];
        v0.GetProperty("name").GetString().ShouldBe("smmuv3.0");
        v0.GetProperty("devices")[0].GetProperty("vsid").GetString().ShouldBe("0x200");
        v0.GetProperty("devices")[0].GetProperty("direct").GetProperty("batches").GetInt64().ShouldBe(6);

        VmReport.Build(bed.Vm, "grace", figures, [new RunCheck("a", true)]).Verdict.ShouldBe("pass");
        VmReport.Build(bed.Vm, "grace", figures, []).Verdict.ShouldBe("fail"); // no check, no pass
    }
}
