using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Conformance;

public sealed partial class ConformanceSequence
{
    /// <summary>The virtual StreamID of device B's vDEVICE (device A's is <see cref="VirtualSid"/>).</summary>
    public const uint SecondVirtualSid = 0x20;

    /// <summary>
    /// The calls only a host with two physical SMMUs can answer, on one context: device A behind
    /// one SMMU, device B behind the other (QEMU: pcie.0 and a pxb-pcie expander bus). Both
    /// share one IOAS; the steps ask which objects made through one device the other device may
    /// use (paging and nest-parent HWPTs, vIOMMUs, nested HWPTs), give each SMMU its own nest
    /// parent, vIOMMU, vDEVICE and vEVENTQ, copy through both, invalidate on each vIOMMU, read
    /// one forwarded fault from each vEVENTQ, copy through guest stage-1 tables on both, and
    /// tear everything down. Every line is named
    /// <c>two.</c>, then <c>a.</c> or <c>b.</c> for the device that makes the call.
    /// </summary>
    /// <param name="a">Device A's target; its <see cref="ConformanceTarget.Open"/> opens the one context.</param>
    /// <param name="b">Device B's target, on the same host (its device and DMA engine are used, not its Open).</param>
    /// <param name="each">Called with every line as it is produced.</param>
    /// <returns>Every line, in order.</returns>
    public static IReadOnlyList<ConformanceLine> RunTwoSmmus(ConformanceTarget a, ConformanceTarget b, Action<ConformanceLine>? each = null)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var run = new ConformanceSequence(a, each);
        run.TwoSmmus(b);
        return run._lines;
    }

    /// <summary>A copy by <paramref name="target"/>'s device between the pages of <paramref name="round"/>.</summary>
    private void Copy(ConformanceTarget target, IIommufd fd, DeviceId device, HostMemoryRegion ram, string name, int round)
    {
        ulong from = CopyOffset + (ulong)(2 * round) * PageSize, to = from + PageSize;
        Copy(target, fd, device, ram, name, round, RamIova + from, from, RamIova + to, to);
    }

    private void TwoSmmus(ConformanceTarget second)
    {
        const string p = "two.";
        ConformanceTarget first = _target;
        using IIommufd fd = first.Open();
        using HostMemoryRegion ram = fd.AllocateHostMemory(RamLength, "conformance");

        var ioas = Try(p + "ioas.alloc", fd.AllocIoas, id => Id(id.Value));
        Try(p + "ioas.map", () => fd.MapIoas(ioas, ram, 0, RamLength, RamIova), Hex("iova"));
        var a = Try(p + "a.device.bind", () => fd.BindDevice(first.Device), id => Id(id.Value));
        var b = Try(p + "b.device.bind", () => fd.BindDevice(second.Device), id => Id(id.Value));
        Try(p + "a.hw_info", () => fd.GetHwInfo(a, HwInfoType.ArmSmmuV3), Describe);
        Try(p + "b.hw_info", () => fd.GetHwInfo(b, HwInfoType.ArmSmmuV3), Describe);

        // iommufd_device_auto_get_domain tries the IOAS's existing domains first and, when the
        // driver answers EINVAL (another SMMU), allocates a new one: the ids say which happened.
        // (each auto domain goes with its last device: no destroy steps for them)
        Try(p + "a.device.attach.ioas", () => fd.AttachDevice(a, ioas), id => Id(id.Value));
        Try(p + "b.device.attach.ioas", () => fd.AttachDevice(b, ioas), id => Id(id.Value));
        Copy(first, fd, a, ram, p + "a.dma.copy.auto_domain", 10);
        Copy(second, fd, b, ram, p + "b.dma.copy.auto_domain", 11);

        var pagingA = Try(p + "a.hwpt.alloc.paging", () => fd.AllocPagingHwpt(a, ioas), id => Id(id.Value));
        Try(p + "b.device.attach.a_paging", () => fd.AttachDevice(b, pagingA), id => Id(id.Value));
        var parentA = Try(p + "a.hwpt.alloc.nest_parent", () => fd.AllocPagingHwpt(a, ioas, HwptAllocFlags.NestParent), id => Id(id.Value));
        Try(p + "b.device.attach.a_nest_parent", () => fd.AttachDevice(b, parentA), id => Id(id.Value));
        Try(p + "a.device.attach.nest_parent", () => fd.AttachDevice(a, parentA), id => Id(id.Value));
        Copy(first, fd, a, ram, p + "a.dma.copy.nest_parent", 12);
        Copy(second, fd, b, ram, p + "b.dma.copy.auto_domain.still", 13);

        var viommuA = Try(p + "a.viommu.alloc", () => fd.AllocViommu(a, parentA, ViommuType.ArmSmmuV3), v => Id(v.Id.Value))?.Id ?? default;
        // one nest parent for both vIOMMUs: the S2 domain belongs to the SMMU it was made on
        Try(p + "b.viommu.alloc.a_nest_parent", () => fd.AllocViommu(b, parentA, ViommuType.ArmSmmuV3), v => Id(v.Id.Value));
        var parentB = Try(p + "b.hwpt.alloc.nest_parent", () => fd.AllocPagingHwpt(b, ioas, HwptAllocFlags.NestParent), id => Id(id.Value));
        Try(p + "b.device.attach.nest_parent", () => fd.AttachDevice(b, parentB), id => Id(id.Value));
        Copy(second, fd, b, ram, p + "b.dma.copy.nest_parent", 14);
        Try(p + "a.viommu.alloc.b_nest_parent", () => fd.AllocViommu(a, parentB, ViommuType.ArmSmmuV3), v => Id(v.Id.Value));
        var viommuB = Try(p + "b.viommu.alloc", () => fd.AllocViommu(b, parentB, ViommuType.ArmSmmuV3), v => Id(v.Id.Value))?.Id ?? default;

        var vdeviceA = Try(p + "a.vdevice.alloc", () => fd.AllocVdevice(viommuA, a, VirtualSid), id => Id(id.Value));
        Try(p + "b.vdevice.alloc.on_a_viommu", () => fd.AllocVdevice(viommuA, b, SecondVirtualSid), id => Id(id.Value));
        var vdeviceB = Try(p + "b.vdevice.alloc", () => fd.AllocVdevice(viommuB, b, SecondVirtualSid), id => Id(id.Value));
        IVeventQueue? queueA = Try(p + "a.veventq.alloc", () => fd.AllocVeventq(viommuA, VeventqType.ArmSmmuV3, VeventqDepth), Describe);
        IVeventQueue? queueB = Try(p + "b.veventq.alloc", () => fd.AllocVeventq(viommuB, VeventqType.ArmSmmuV3, VeventqDepth), Describe);

        Try(p + "b.hwpt.alloc.nested.on_a_viommu", () => fd.AllocNestedHwpt(b, viommuA, Vste(SteConfig.Bypass)), id => Id(id.Value));
        var bypassA = Try(p + "a.hwpt.alloc.nested.bypass", () => fd.AllocNestedHwpt(a, viommuA, Vste(SteConfig.Bypass)), id => Id(id.Value));
        var bypassB = Try(p + "b.hwpt.alloc.nested.bypass", () => fd.AllocNestedHwpt(b, viommuB, Vste(SteConfig.Bypass)), id => Id(id.Value));
        Try(p + "b.device.attach.a_nested", () => fd.AttachDevice(b, bypassA), id => Id(id.Value));
        Try(p + "a.device.attach.nested.bypass", () => fd.AttachDevice(a, bypassA), id => Id(id.Value));
        Try(p + "b.device.attach.nested.bypass", () => fd.AttachDevice(b, bypassB), id => Id(id.Value));
        Copy(first, fd, a, ram, p + "a.dma.copy.nested.bypass", 15);
        Copy(second, fd, b, ram, p + "b.dma.copy.nested.bypass", 16);

        var stage1A = Try(p + "a.hwpt.alloc.nested.s1", () => fd.AllocNestedHwpt(a, viommuA, Vste(SteConfig.Stage1)), id => Id(id.Value));
        var stage1B = Try(p + "b.hwpt.alloc.nested.s1", () => fd.AllocNestedHwpt(b, viommuB, Vste(SteConfig.Stage1)), id => Id(id.Value));
        Try(p + "a.device.attach.nested.s1", () => fd.AttachDevice(a, stage1A), id => Id(id.Value));
        Try(p + "b.device.attach.nested.s1", () => fd.AttachDevice(b, stage1B), id => Id(id.Value));

        foreach (var (who, viommu, own, other) in new[] { ("a.", viommuA, VirtualSid, SecondVirtualSid), ("b.", viommuB, SecondVirtualSid, VirtualSid) })
        {
            Invalidate(fd, p + who + "invalidate.tlbi_nh_all", viommu, Command.TlbiNhAll(0));
            Invalidate(fd, p + who + "invalidate.tlbi_nh_asid", viommu, Command.TlbiNhAsid(0, Asid));
            Invalidate(fd, p + who + "invalidate.cfgi_cd", viommu, Command.CfgiCd(own, 0));
            // a vSID is a vDEVICE of one vIOMMU: the other vIOMMU's does not resolve here
            Invalidate(fd, p + who + "invalidate.cfgi_cd.other_vsid", viommu, Command.CfgiCd(other, 0));
            Invalidate(fd, p + who + "invalidate.cmd_sync", viommu, Command.Sync());
        }

        // C_BAD_CD from each device (its CD table is zeroed RAM): each vEVENTQ gets its own vSID
        foreach (var (who, target, device) in new[] { ("a.", first, a), ("b.", second, b) })
        {
            try
            {
                target.DmaRead(fd, device, FaultIova);
                Emit(p + who + "dma.read", "ok");
            }
            catch (IommufdException e)
            {
                Emit(p + who + "dma.read", e.Errno.ToString());
            }
        }
        foreach (var (who, queue) in new[] { ("a.", queueA), ("b.", queueB) })
        {
            queue?.WaitForEvents(EventWait);
            if (_target.EventSettle > TimeSpan.Zero) Thread.Sleep(_target.EventSettle);
            Try(p + who + "veventq.read", () => queue is null ? throw new IommufdException(Errno.ENOENT, "read vEVENTQ", "no queue") : queue.Read(), Describe);
        }

        // Nested stage 1 + stage 2 through both SMMUs: one valid CD and one set of guest tables,
        // read by both devices (each vIOMMU's CFGI_CD makes its SMMU read the CD again).
        if (first.Stage1 is null)
        {
            Emit(p + "stage1.tables", "n/a");
        }
        else
        {
            IStage1Tables tables = first.Stage1(ram, RamIova, RamIova + Stage1TablesOffset);
            WriteCd(ram, tables, valid: true);
            tables.Map(SourceVa, RamIova + SourcePage);
            tables.Map(DestinationVa, RamIova + DestinationPage);
            Invalidate(fd, p + "a.stage1.invalidate.cfgi_cd", viommuA, Command.CfgiCd(VirtualSid, 0));
            Invalidate(fd, p + "b.stage1.invalidate.cfgi_cd", viommuB, Command.CfgiCd(SecondVirtualSid, 0));
            Copy(first, fd, a, ram, p + "a.stage1.dma.copy", 17, SourceVa, SourcePage, DestinationVa, DestinationPage);
            Copy(second, fd, b, ram, p + "b.stage1.dma.copy", 18, SourceVa, SourcePage, DestinationVa, DestinationPage);
        }

        Try(p + "destroy.a_nest_parent.in_use", () => Destroy(fd, parentA), _ => "");
        Try(p + "destroy.b_viommu.in_use", () => Destroy(fd, viommuB), _ => "");
        queueA?.Dispose();
        queueB?.Dispose();
        Try(p + "destroy.a_veventq", () => Destroy(fd, queueA?.Id ?? default), _ => "");
        Try(p + "destroy.b_veventq", () => Destroy(fd, queueB?.Id ?? default), _ => "");
        Try(p + "a.device.attach.ioas.again", () => fd.AttachDevice(a, ioas), id => Id(id.Value));
        Try(p + "b.device.attach.ioas.again", () => fd.AttachDevice(b, ioas), id => Id(id.Value));
        Try(p + "destroy.nested", () => Destroy(fd, stage1A) && Destroy(fd, stage1B) && Destroy(fd, bypassA) && Destroy(fd, bypassB), _ => "");
        Try(p + "destroy.a_vdevice", () => Destroy(fd, vdeviceA), _ => "");
        Try(p + "destroy.b_vdevice", () => Destroy(fd, vdeviceB), _ => "");
        Try(p + "destroy.a_viommu", () => Destroy(fd, viommuA), _ => "");
        Try(p + "destroy.b_viommu", () => Destroy(fd, viommuB), _ => "");
        Try(p + "destroy.a_nest_parent", () => Destroy(fd, parentA), _ => "");
        Try(p + "destroy.b_nest_parent", () => Destroy(fd, parentB), _ => "");
        Try(p + "destroy.a_paging", () => Destroy(fd, pagingA), _ => "");
        Try(p + "a.device.detach", () => Done(() => fd.DetachDevice(a)), _ => "");
        Try(p + "b.device.detach", () => Done(() => fd.DetachDevice(b)), _ => "");
        Try(p + "destroy.ioas", () => Destroy(fd, ioas), _ => "");
        Try(p + "a.device.unbind", () => Done(() => fd.UnbindDevice(a)), _ => "");
        Try(p + "b.device.unbind", () => Done(() => fd.UnbindDevice(b)), _ => "");
    }
}
