using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// Which SMMU events reach a vEVENTQ (arm_smmu_handle_event, arm-smmu-v3.c): stage-1 and configuration events of a
/// master attached to a nested domain with a vSID, with the SID replaced; stage-2 faults and
/// everything else stay with the host.
/// </summary>
public sealed class EventForwardingTests
{
    private const ulong Vsid = 0x31;
    private const ushort Asid = 5;
    private const ulong Va = 0x40_0000;

    private static (TestBed Bed, Vm Vm, DeviceId Dev, ViommuId Viommu, IVeventQueue Queue) Setup(bool vdevice = true)
    {
        var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (dev, _, viommu) = bed.NestedSetup(vm, "gpu0");
        if (vdevice) bed.Fd.AllocVdevice(viommu, dev, Vsid);
        IVeventQueue q = bed.Fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, 8);
        return (bed, vm, dev, viommu, q);
    }

    [Fact]
    public void A_bad_CD_is_forwarded_as_C_BAD_CD_with_the_vSID()
    {
        var (bed, vm, dev, viommu, q) = Setup();
        using (bed)
        {
            // The guest points the STE at a CD table whose CD 0 is not valid.
            ulong emptyCdTable = vm.AllocTablePage();
            bed.Fd.AttachDevice(dev, bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.TranslateVste(emptyCdTable)));
            bed.DmaRead("gpu0", Va).Result.Translation.FaultType.ShouldBe(EventType.C_BAD_CD);
            ArmSmmuV3Vevent e = q.Read().Single().AsArmSmmuV3();
            (e.EventId, e.Sid).ShouldBe(((byte)EventType.C_BAD_CD, (uint)Vsid));
            bed.Diag.Smmu("smmu0").EventsForwarded.ShouldBe(1);
        }
    }

    [Fact]
    public void Stage_2_faults_stay_with_the_host()
    {
        var (bed, vm, dev, viommu, q) = Setup();
        using (bed)
        {
            // The guest maps VA to an IPA outside its RAM: the nested walk faults at stage 2.
            GuestAddressSpace s1 = vm.CreateAddressSpace(Asid);
            s1.Map(Va, 0x8000_0000);
            bed.Fd.AttachDevice(dev, bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.TranslateVste(vm.WriteCdTable(s1.Cd))));
            var (r, _) = bed.DmaRead("gpu0", Va);
            (r.Translation.FaultType, r.Translation.Event.S2).ShouldBe((EventType.F_TRANSLATION, true));
            q.HasEvents.ShouldBeFalse();
            bed.Diag.Smmu("smmu0").EventsForwarded.ShouldBe(0);
            bed.Diag.KernelLog.ShouldContain(l => l.Contains("event for gpu0: F_TRANSLATION", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void A_master_attached_without_a_vDEVICE_has_no_vSID_to_report_with()
    {
        var (bed, vm, dev, viommu, q) = Setup(vdevice: false);
        using (bed)
        {
            bed.Fd.AttachDevice(dev, bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.BypassVste));
            bed.DmaRead("gpu0", TestBed.GuestRamBase + TestBed.GuestRamSize).Result.IsSuccess.ShouldBeFalse();
            q.HasEvents.ShouldBeFalse();

            // A vDEVICE made later takes effect at the next attach (the vmaster is set on attach).
            bed.Fd.AllocVdevice(viommu, dev, Vsid);
            ulong emptyCdTable = vm.AllocTablePage();
            bed.Fd.AttachDevice(dev, bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.TranslateVste(emptyCdTable)));
            bed.DmaRead("gpu0", Va);
            q.Read().Single().AsArmSmmuV3().Sid.ShouldBe((uint)Vsid);
        }
    }

    [Fact]
    public void Without_a_vEVENTQ_events_are_dropped_and_a_later_queue_starts_empty()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (dev, _, viommu) = bed.NestedSetup(vm, "gpu0");
        bed.Fd.AllocVdevice(viommu, dev, Vsid);
        bed.Fd.AttachDevice(dev, bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.TranslateVste(vm.AllocTablePage())));
        bed.DmaRead("gpu0", Va);
        bed.Diag.Smmu("smmu0").EventsSeen.ShouldBe(1);
        bed.Diag.Smmu("smmu0").EventsForwarded.ShouldBe(0);

        using IVeventQueue q = bed.Fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, 4);
        q.HasEvents.ShouldBeFalse();
        q.WaitForEvents(TimeSpan.FromSeconds(1)).ShouldBeFalse("the emulated host never waits");
    }

    [Fact]
    public void A_vEVENTQ_with_its_fd_open_is_busy()
    {
        var (bed, _, _, viommu, q) = Setup();
        using (bed)
        {
            TestBed.ShouldFail(() => bed.Fd.Destroy(q.Id), Errno.EBUSY);
            TestBed.ShouldFail(() => bed.Fd.Destroy(viommu), Errno.EBUSY);
            q.Dispose();
            bed.Fd.Destroy(q.Id);
            Should.Throw<ObjectDisposedException>(() => q.Read());
        }
    }

    [Fact]
    public void The_hardware_event_queue_is_consumed_so_it_never_overflows()
    {
        var (bed, vm, dev, viommu, q) = Setup();
        using (bed)
        {
            bed.Fd.AttachDevice(dev, bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.TranslateVste(vm.AllocTablePage())));
            for (int i = 0; i < 300; i++) bed.DmaRead("gpu0", Va);
            SmmuDiagnostics s = bed.Diag.Smmu("smmu0");
            (s.Hardware.EventsWritten, s.Hardware.EventsLost).ShouldBe((300L, 0L), "the host's event queue has 128 entries");
            q.ReadAll().Select(e => e.LostEvents).ShouldBe([.. Enumerable.Repeat(false, 8), true]);
        }
    }
    /// <summary>
    /// Regression (found by `nestedsmmu fuzz`, the fault accounting invariant): an event for a vmaster whose
    /// vIOMMU has no vEVENTQ was dropped without a trace. Linux's event thread dumps every event its
    /// handler could not hand on (arm_smmu_evtq_thread, arm-smmu-v3.c), so the host logs it.
    /// </summary>
    [Fact]
    public void An_event_for_a_vIOMMU_without_a_vEVENTQ_is_logged_not_dropped_silently()
    {
        var (bed, vm, dev, viommu, q) = Setup();
        using (bed)
        {
            VeventqId id = q.Id;
            q.Dispose();
            bed.Fd.Destroy(new ObjectId(id.Value));
            bed.Fd.AttachDevice(dev, bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.TranslateVste(vm.AllocTablePage())));
            long lines = bed.Diag.KernelLogLinesWritten;
            bed.DmaRead("gpu0", Va).Result.Translation.FaultType.ShouldBe(EventType.C_BAD_CD);
            bed.Diag.Smmu("smmu0").EventsForwarded.ShouldBe(0);
            bed.Diag.KernelLogLinesWritten.ShouldBe(lines + 1);
            bed.Diag.KernelLog[^1].ShouldContain("event for gpu0 not reported to its vIOMMU (EOPNOTSUPP): C_BAD_CD");
        }
    }
}
