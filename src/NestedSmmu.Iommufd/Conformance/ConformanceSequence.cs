using System.Globalization;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Conformance;

/// <summary>
/// The calls the VMM makes on an <see cref="IIommufd"/>, in the order it makes them, plus the
/// wrong calls of the kernel's selftests (tools/testing/selftests/iommu/iommufd.c: cmd_fail,
/// cmd_length, cmd_ex_fail, and the bad flags, types, ids and data of the vIOMMU tests), run
/// against one backend. Each call gives one <see cref="ConformanceLine"/>: the real kernel's
/// output (tools/real-kernel) is the vector the emulated host is compared with.
/// </summary>
/// <remarks>
/// A call that fails does not stop the run: later calls use id 0 for what it did not create and
/// record their own errno, so a backend that refuses early (no vIOMMU without CANWBS or S2FWB)
/// still gives a complete, comparable listing. Object ids are printed because both backends
/// hand them out the same way (lowest free id of one xarray per context).
/// </remarks>
public sealed partial class ConformanceSequence
{
    /// <summary>The page size both the guest kernel and the emulated host use.</summary>
    public const ulong PageSize = 0x1000;

    /// <summary>
    /// Where the sequence maps its RAM: below 128 MiB, so it stays clear of the software MSI
    /// window arm-smmu-v3 reserves at 0x8000000 (MSI_IOVA_BASE, arm-smmu-v3.c), and below
    /// 256 MiB, the reach of QEMU's edu device (28-bit DMA mask).
    /// </summary>
    public const ulong RamIova = 0x400000;

    /// <summary>Bytes mapped at <see cref="RamIova"/>.</summary>
    public const ulong RamLength = 0x200000;

    /// <summary>The stage-1 context-descriptor table the nested vSTE points at: zeroed RAM, so its CD 0 is invalid (V = 0).</summary>
    public const ulong CdTableIova = RamIova;

    /// <summary>Bytes the sequence maps at an IOVA the kernel chooses.</summary>
    public const ulong AutoLength = 0x10000;

    /// <summary>An IOVA with nothing mapped.</summary>
    public const ulong EmptyIova = 0x2000000;

    /// <summary>arm-smmu-v3's software MSI window (MSI_IOVA_BASE): reserved once a device is attached.</summary>
    public const ulong MsiIova = 0x8000000;

    /// <summary>The IOVA the device reads to provoke C_BAD_CD through the nested attachment.</summary>
    public const ulong FaultIova = 0x1000;

    /// <summary>The virtual StreamID of the vDEVICE.</summary>
    public const uint VirtualSid = 0x10;

    /// <summary>The vEVENTQ depth.</summary>
    public const uint VeventqDepth = 16;

    /// <summary>An object id no context hands out in this sequence.</summary>
    public const uint MissingId = 0x7FFF;

    /// <summary>How long to wait for the forwarded fault (the real device's DMA runs from a QEMU timer).</summary>
    public static readonly TimeSpan EventWait = TimeSpan.FromSeconds(5);

    private readonly ConformanceTarget _target;
    private readonly List<ConformanceLine> _lines = [];
    private readonly Action<ConformanceLine>? _each;

    private ConformanceSequence(ConformanceTarget target, Action<ConformanceLine>? each)
    {
        _target = target;
        _each = each;
    }

    /// <summary>Runs the whole sequence on <paramref name="target"/>.</summary>
    /// <param name="target">The backend.</param>
    /// <param name="each">Called with every line as it is produced (the real-kernel program prints them at once).</param>
    /// <returns>Every line, in order.</returns>
    public static IReadOnlyList<ConformanceLine> Run(ConformanceTarget target, Action<ConformanceLine>? each = null)
    {
        ArgumentNullException.ThrowIfNull(target);
        var run = new ConformanceSequence(target, each);
        run.RawIoctls();
        run.Main();
        run.UnbindFirst();
        run.CloseWithObjects();
        run.Overflow();
        run.Stage1Translation();
        return run._lines;
    }

    // ------------------------------------------------------------------ the VMM's calls

    private void Main()
    {
        using IIommufd fd = _target.Open();
        using HostMemoryRegion ram = fd.AllocateHostMemory(RamLength + AutoLength, "conformance");

        var ioas = Try("ioas.alloc", fd.AllocIoas, id => Id(id.Value));
        Try("ioas.map.fixed", () => fd.MapIoas(ioas, ram, 0, RamLength, RamIova), Hex("iova"));
        // The kernel picks the IOVA from the user address's alignment, so only success is compared.
        ulong autoIova = Try("ioas.map.auto", () => fd.MapIoas(ioas, ram, RamLength, AutoLength, null), _ => "");
        Try("ioas.map.overlap", () => fd.MapIoas(ioas, ram, 0, PageSize, RamIova), Hex("iova"));
        Try("ioas.map.no_access", () => fd.MapIoas(ioas, ram, 0, PageSize, EmptyIova, IoasMapFlags.None), Hex("iova"));
        Try("ioas.map.unknown_flag", () => fd.MapIoas(ioas, ram, 0, PageSize, EmptyIova, IoasMapFlags.Readable | (IoasMapFlags)(1u << 31)), Hex("iova"));
        // An IOAS without domains has no alignment (iopt_init_table: iova_alignment = 1), so this
        // may map; it must go again before a domain is added (iopt_check_iova_alignment).
        ulong unaligned = Try("ioas.map.unaligned", () => fd.MapIoas(ioas, ram, 0, PageSize, EmptyIova + 1), Hex("iova"));
        Try("ioas.unmap.unaligned", () => fd.UnmapIoas(ioas, unaligned, unaligned == 0 ? 0 : PageSize), Hex("bytes"));
        Try("ioas.map.missing_ioas", () => fd.MapIoas(new IoasId(MissingId), ram, 0, PageSize, EmptyIova), Hex("iova"));
        Try("ioas.iova_ranges", () => fd.GetIovaRanges(ioas), Describe);
        Try("ioas.iova_ranges.missing_ioas", () => fd.GetIovaRanges(new IoasId(MissingId)), Describe);
        Try("ioas.unmap.auto", () => fd.UnmapIoas(ioas, autoIova, AutoLength), Hex("bytes"));
        Try("ioas.unmap.split", () => fd.UnmapIoas(ioas, RamIova, PageSize), Hex("bytes"));
        Try("ioas.unmap.empty", () => fd.UnmapIoas(ioas, EmptyIova, PageSize), Hex("bytes"));

        var device = Try("device.bind", () => fd.BindDevice(_target.Device), id => Id(id.Value));
        Try("device.bind.again", () => fd.BindDevice(_target.Device), id => Id(id.Value));
        Try("hw_info.default", () => fd.GetHwInfo(device), Describe);
        Try("hw_info.arm_smmuv3", () => fd.GetHwInfo(device, HwInfoType.ArmSmmuV3), Describe);
        Try("hw_info.tegra241_cmdqv", () => fd.GetHwInfo(device, HwInfoType.Tegra241Cmdqv), Describe);
        Try("hw_info.intel_vtd", () => fd.GetHwInfo(device, HwInfoType.IntelVtd), Describe);
        Try("hw_info.short_buffer", () => fd.GetHwInfo(device, null, sizeof(ulong)), h => $"data_len={h.DataLength}");
        Try("hw_info.missing_device", () => fd.GetHwInfo(new DeviceId(MissingId)), Describe);

        var autoHwpt = Try("device.attach.ioas", () => fd.AttachDevice(device, ioas), id => Id(id.Value));
        Copy(fd, device, ram, "dma.copy.auto_domain", 1);
        Try("ioas.iova_ranges.attached", () => fd.GetIovaRanges(ioas), Describe);
        Try("ioas.map.msi_window", () => fd.MapIoas(ioas, ram, 0, PageSize, MsiIova), Hex("iova"));

        var paging = Try("hwpt.alloc.paging", () => fd.AllocPagingHwpt(device, ioas), id => Id(id.Value));
        var nestParent = Try("hwpt.alloc.nest_parent", () => fd.AllocPagingHwpt(device, ioas, HwptAllocFlags.NestParent), id => Id(id.Value));
        Try("hwpt.alloc.dirty_tracking", () => fd.AllocPagingHwpt(device, ioas, HwptAllocFlags.DirtyTracking), id => Id(id.Value));
        Try("hwpt.alloc.unknown_flag", () => fd.AllocPagingHwpt(device, ioas, (HwptAllocFlags)(1u << 31)), id => Id(id.Value));
        Try("hwpt.alloc.none_with_data", () => fd.AllocHwpt(device, ioas, HwptAllocFlags.None, HwptDataType.None, new byte[ArmSmmuV3Vste.Size]), id => Id(id.Value));
        Try("hwpt.alloc.missing_pt", () => fd.AllocPagingHwpt(device, new IoasId(MissingId)), id => Id(id.Value));
        Try("hwpt.alloc.missing_device", () => fd.AllocPagingHwpt(new DeviceId(MissingId), ioas), id => Id(id.Value));
        Try("device.attach.paging", () => fd.AttachDevice(device, paging), id => Id(id.Value));
        Copy(fd, device, ram, "dma.copy.paging", 2);
        Try("destroy.auto_hwpt.replaced", () => Destroy(fd, autoHwpt), _ => "");
        Try("device.attach.nest_parent", () => fd.AttachDevice(device, nestParent), id => Id(id.Value));
        Copy(fd, device, ram, "dma.copy.nest_parent", 3);
        Try("device.attach.missing_pt", () => fd.AttachDevice(device, new ObjectId(MissingId)), id => Id(id.Value));
        Try("destroy.ioas.attached", () => Destroy(fd, ioas), _ => "");

        Try("viommu.alloc.flags", () => fd.AllocViommu(device, nestParent, ViommuType.ArmSmmuV3, flags: 1), a => Id(a.Id.Value));
        Try("viommu.alloc.default_type", () => fd.AllocViommu(device, nestParent, ViommuType.Default), a => Id(a.Id.Value));
        Try("viommu.alloc.tegra241_cmdqv", () => fd.AllocViommu(device, nestParent, ViommuType.Tegra241Cmdqv, new byte[Tegra241CmdqvViommuData.Size]), a => Id(a.Id.Value));
        Try("viommu.alloc.not_nest_parent", () => fd.AllocViommu(device, paging, ViommuType.ArmSmmuV3), a => Id(a.Id.Value));
        Try("viommu.alloc.missing_parent", () => fd.AllocViommu(device, new HwptId(MissingId), ViommuType.ArmSmmuV3), a => Id(a.Id.Value));
        Try("viommu.alloc.missing_device", () => fd.AllocViommu(new DeviceId(MissingId), nestParent, ViommuType.ArmSmmuV3), a => Id(a.Id.Value));
        var viommu = Try("viommu.alloc", () => fd.AllocViommu(device, nestParent, ViommuType.ArmSmmuV3), a => Id(a.Id.Value))?.Id ?? default;

        var vdevice = Try("vdevice.alloc", () => fd.AllocVdevice(viommu, device, VirtualSid), id => Id(id.Value));
        Try("vdevice.alloc.again", () => fd.AllocVdevice(viommu, device, VirtualSid + 1), id => Id(id.Value));
        Try("vdevice.alloc.missing_viommu", () => fd.AllocVdevice(new ViommuId(MissingId), device, VirtualSid), id => Id(id.Value));

        Try("veventq.alloc.depth_0", () => fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, 0), Describe);
        Try("veventq.alloc.flags", () => fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, VeventqDepth, 1), Describe);
        Try("veventq.alloc.default_type", () => fd.AllocVeventq(viommu, VeventqType.Default, VeventqDepth), Describe);
        // The core does not match the queue type to the vIOMMU type (iommufd_veventq_alloc), so this one may exist.
        IVeventQueue? foreign = Try("veventq.alloc.tegra241_cmdqv", () => fd.AllocVeventq(viommu, VeventqType.Tegra241Cmdqv, VeventqDepth), Describe);
        IVeventQueue? queue = Try("veventq.alloc", () => fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, VeventqDepth), Describe);
        using IVeventQueue? again = Try("veventq.alloc.again", () => fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, VeventqDepth), Describe);

        var abort = Try("hwpt.alloc.nested.abort", () => fd.AllocNestedHwpt(device, viommu, Vste(SteConfig.Abort)), id => Id(id.Value));
        var bypass = Try("hwpt.alloc.nested.bypass", () => fd.AllocNestedHwpt(device, viommu, Vste(SteConfig.Bypass)), id => Id(id.Value));
        var stage1 = Try("hwpt.alloc.nested.s1", () => fd.AllocNestedHwpt(device, viommu, Vste(SteConfig.Stage1)), id => Id(id.Value));
        // V = 0 is a valid guest STE (it aborts), so this one may exist too
        var notValid = Try("hwpt.alloc.nested.not_valid", () => fd.AllocNestedHwpt(device, viommu, new ArmSmmuV3Vste(0, 0)), id => Id(id.Value));
        Try("hwpt.alloc.nested.reserved_config", () => fd.AllocNestedHwpt(device, viommu, ReservedConfigVste()), id => Id(id.Value));
        Try("hwpt.alloc.nested.s2_config", () => fd.AllocNestedHwpt(device, viommu, Vste(SteConfig.Stage2)), id => Id(id.Value));
        Try("hwpt.alloc.nested.disallowed_bits", () => fd.AllocNestedHwpt(device, viommu, ShcfgVste()), id => Id(id.Value));
        Try("hwpt.alloc.nested.short_data", () => fd.AllocHwpt(device, viommu, HwptAllocFlags.None, HwptDataType.ArmSmmuV3, new byte[sizeof(ulong)]), id => Id(id.Value));
        Try("hwpt.alloc.nested.no_data", () => fd.AllocHwpt(device, viommu, HwptAllocFlags.None, HwptDataType.ArmSmmuV3, ReadOnlySpan<byte>.Empty), id => Id(id.Value));
        Try("hwpt.alloc.nested.nest_parent_flag", () => fd.AllocNestedHwpt(device, viommu, Vste(SteConfig.Bypass), HwptAllocFlags.NestParent), id => Id(id.Value));
        Try("hwpt.alloc.nested.on_nest_parent", () => fd.AllocNestedHwpt(device, nestParent, Vste(SteConfig.Bypass)), id => Id(id.Value));
        Try("device.attach.nested.abort", () => fd.AttachDevice(device, abort), id => Id(id.Value));
        Copy(fd, device, ram, "dma.copy.nested.abort", 4);
        Try("device.attach.nested.bypass", () => fd.AttachDevice(device, bypass), id => Id(id.Value));
        Copy(fd, device, ram, "dma.copy.nested.bypass", 5);
        Try("device.attach.nested.s1", () => fd.AttachDevice(device, stage1), id => Id(id.Value));

        Invalidate(fd, "invalidate.tlbi_nh_all", viommu, Command.TlbiNhAll(0));
        Invalidate(fd, "invalidate.tlbi_nh_asid", viommu, Command.TlbiNhAsid(0, 1));
        Invalidate(fd, "invalidate.tlbi_nh_va", viommu, Command.TlbiNhVa(0, 1, FaultIova, leaf: true));
        Invalidate(fd, "invalidate.tlbi_nsnh_all", viommu, Command.TlbiNsnhAll());
        Invalidate(fd, "invalidate.cfgi_cd", viommu, Command.CfgiCd(VirtualSid, 0));
        Invalidate(fd, "invalidate.cfgi_cd_all", viommu, Command.CfgiCdAll(VirtualSid));
        Invalidate(fd, "invalidate.cfgi_cd.unknown_vsid", viommu, Command.CfgiCd(VirtualSid + 1, 0));
        Invalidate(fd, "invalidate.cmd_sync", viommu, Command.Sync());
        Invalidate(fd, "invalidate.stops_at_refused", viommu, Command.TlbiNhAll(0), Command.PrefetchConfig(VirtualSid), Command.TlbiNhAll(0));
        Invalidate(fd, "invalidate.on_nested_hwpt", stage1, Command.TlbiNhAll(0));
        Invalidate(fd, "invalidate.missing_target", new ObjectId(MissingId), Command.TlbiNhAll(0));
        var one = new byte[IommufdExtensions.ArmSmmuV3CommandSize];
        Record("invalidate.entry_len_short", fd.Invalidate(viommu, HwptInvalidateDataType.ArmSmmuV3, sizeof(ulong), 1, one));
        Record("invalidate.empty", fd.Invalidate(viommu, HwptInvalidateDataType.ArmSmmuV3, IommufdExtensions.ArmSmmuV3CommandSize, 0, one));
        Record("invalidate.vtd_type", fd.Invalidate(viommu, HwptInvalidateDataType.VtdS1, IommufdExtensions.ArmSmmuV3CommandSize, 1, one));

        ProvokeFault(fd, device, queue);

        Try("destroy.nest_parent.in_use", () => Destroy(fd, nestParent), _ => "");
        Try("destroy.viommu.in_use", () => Destroy(fd, viommu), _ => "");
        Try("destroy.nested.attached", () => Destroy(fd, stage1), _ => "");
        Try("destroy.veventq.reader_open", () => Destroy(fd, queue?.Id ?? default), _ => "");
        queue?.Dispose();
        Try("destroy.veventq", () => Destroy(fd, queue?.Id ?? default), _ => "");
        foreign?.Dispose();
        Try("destroy.veventq.tegra241_cmdqv", () => Destroy(fd, foreign?.Id ?? default), _ => "");
        Try("device.attach.ioas.again", () => fd.AttachDevice(device, ioas), id => Id(id.Value));
        Try("destroy.nested.abort", () => Destroy(fd, abort), _ => "");
        Try("destroy.nested.bypass", () => Destroy(fd, bypass), _ => "");
        Try("destroy.nested.s1", () => Destroy(fd, stage1), _ => "");
        Try("destroy.nested.not_valid", () => Destroy(fd, notValid), _ => "");
        Try("destroy.vdevice", () => Destroy(fd, vdevice), _ => "");
        Try("destroy.viommu", () => Destroy(fd, viommu), _ => "");
        Try("destroy.nest_parent", () => Destroy(fd, nestParent), _ => "");
        Try("destroy.paging", () => Destroy(fd, paging), _ => "");
        Try("device.detach", () => Done(() => fd.DetachDevice(device)), _ => "");
        Try("device.detach.again", () => Done(() => fd.DetachDevice(device)), _ => "");
        Try("ioas.iova_ranges.detached", () => fd.GetIovaRanges(ioas), Describe);
        Try("destroy.ioas.mapped", () => Destroy(fd, ioas), _ => "");
        Try("destroy.ioas.again", () => Destroy(fd, ioas), _ => "");
        Try("device.unbind", () => Done(() => fd.UnbindDevice(device)), _ => "");
    }

    /// <summary>
    /// A DMA copy through the current attachment, checked in host memory: the source holds a
    /// pattern made from <paramref name="round"/>, the destination is zeroed first. The answer
    /// says whether the pattern arrived (<c>copied</c>), nothing did (<c>unchanged</c>) or
    /// something else (<c>other</c>).
    /// </summary>
    private void Copy(IIommufd fd, DeviceId device, HostMemoryRegion ram, string name, int round)
    {
        ulong from = CopyOffset + (ulong)(2 * round) * PageSize, to = from + PageSize;
        Copy(fd, device, ram, name, round, RamIova + from, from, RamIova + to, to);
    }

    /// <summary>The copy from <paramref name="fromIova"/> (RAM offset <paramref name="from"/>) to <paramref name="toIova"/> (RAM offset <paramref name="to"/>).</summary>
    private void Copy(IIommufd fd, DeviceId device, HostMemoryRegion ram, string name, int round,
        ulong fromIova, ulong from, ulong toIova, ulong to) =>
        Copy(_target, fd, device, ram, name, round, fromIova, from, toIova, to);

    /// <summary>The copy made by <paramref name="target"/>'s device (the two-SMMU sequence has one target per device).</summary>
    private void Copy(ConformanceTarget target, IIommufd fd, DeviceId device, HostMemoryRegion ram, string name, int round,
        ulong fromIova, ulong from, ulong toIova, ulong to)
    {
        Span<byte> pattern = stackalloc byte[CopyLength];
        for (int i = 0; i < pattern.Length; i++) pattern[i] = (byte)(round * 16 + i + 1);
        Span<byte> zero = stackalloc byte[CopyLength];
        zero.Clear();
        ram.Write(from, pattern);
        ram.Write(to, zero);
        try
        {
            target.DmaCopy(fd, device, fromIova, toIova, CopyLength);
        }
        catch (IommufdException e)
        {
            Emit(name, e.Errno.ToString());
            return;
        }
        Span<byte> seen = stackalloc byte[CopyLength];
        ram.Read(to, seen);
        Emit(name, seen.SequenceEqual(pattern) ? "ok copied" : seen.SequenceEqual(zero) ? "ok unchanged" : "ok other");
    }

    /// <summary>Where the copies' pages start in the RAM region (clear of the CD table at offset 0).</summary>
    private const ulong CopyOffset = 0x10000;

    /// <summary>
    /// Bytes per copy: one 32-bit access, because QEMU's memory core splits a faulting DMA into
    /// 4-byte accesses that fault one by one (a 64-byte write gave 16 events), which is the
    /// device model's business, not the kernel's.
    /// </summary>
    private const int CopyLength = sizeof(uint);

    /// <summary>The device reads through a stage-1 vSTE whose CD is invalid: the SMMU records C_BAD_CD, which arm-smmu-v3 forwards to the vEVENTQ with the vSID.</summary>
    private void ProvokeFault(IIommufd fd, DeviceId device, IVeventQueue? queue)
    {
        try
        {
            _target.DmaRead(fd, device, FaultIova);
            Emit("dma.read", "ok");
        }
        catch (IommufdException e)
        {
            Emit("dma.read", e.Errno.ToString());
        }
        bool pending = queue?.WaitForEvents(EventWait) ?? false;
        Emit("veventq.pending", pending ? "ok" : "none");
        Try("veventq.read", () => queue is null ? throw new IommufdException(Errno.ENOENT, "read vEVENTQ", "no queue") : queue.Read(), Describe);
        Try("veventq.read.empty", () => queue is null ? throw new IommufdException(Errno.ENOENT, "read vEVENTQ", "no queue") : queue.Read(), Describe);
    }

    /// <summary>Unbinding the device first: the kernel destroys its vDEVICE, whose id then gives ENOENT.</summary>
    private void UnbindFirst()
    {
        using IIommufd fd = _target.Open();
        using HostMemoryRegion ram = fd.AllocateHostMemory(RamLength, "conformance");
        var (ioas, device, parent, viommu, vdevice) = Nesting(fd, ram, "unbind_first.", attachToParent: true);
        Try("unbind_first.device.unbind", () => Done(() => fd.UnbindDevice(device)), _ => "");
        Try("unbind_first.destroy.vdevice", () => Destroy(fd, vdevice), _ => "");
        Try("unbind_first.destroy.viommu", () => Destroy(fd, viommu), _ => "");
        Try("unbind_first.destroy.nest_parent", () => Destroy(fd, parent), _ => "");
        Try("unbind_first.destroy.ioas", () => Destroy(fd, ioas), _ => "");
    }

    /// <summary>Closing the context with every kind of object alive (the kernel tears down leaves first), then binding the device again in a new one.</summary>
    private void CloseWithObjects()
    {
        IIommufd fd = _target.Open();
        HostMemoryRegion ram = fd.AllocateHostMemory(RamLength, "conformance");
        var (_, device, _, viommu, _) = Nesting(fd, ram, "close.");
        IVeventQueue? queue = Try("close.veventq.alloc", () => fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, VeventqDepth), Describe);
        var nested = Try("close.hwpt.alloc.nested.s1", () => fd.AllocNestedHwpt(device, viommu, Vste(SteConfig.Stage1)), id => Id(id.Value));
        Try("close.device.attach.nested.s1", () => fd.AttachDevice(device, nested), id => Id(id.Value));
        fd.Dispose();
        queue?.Dispose();
        ram.Dispose();
        Emit("close.context", "ok");

        using IIommufd next = _target.Open();
        var again = Try("close.device.bind.new_context", () => next.BindDevice(_target.Device), id => Id(id.Value));
        Try("close.device.unbind.new_context", () => Done(() => next.UnbindDevice(again)), _ => "");
    }

    /// <summary>
    /// More forwarded faults than the vEVENTQ holds: it keeps <c>depth</c> events, then one
    /// lost-events record (iommufd_viommu_report_event, drivers/iommu/iommufd/driver.c).
    /// </summary>
    private void Overflow()
    {
        using IIommufd fd = _target.Open();
        using HostMemoryRegion ram = fd.AllocateHostMemory(RamLength, "conformance");
        var (_, device, _, viommu, _) = Nesting(fd, ram, "overflow.");
        using IVeventQueue? queue = Try("overflow.veventq.alloc", () => fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, OverflowDepth), Describe);
        var nested = Try("overflow.hwpt.alloc.nested.s1", () => fd.AllocNestedHwpt(device, viommu, Vste(SteConfig.Stage1)), id => Id(id.Value));
        Try("overflow.device.attach.nested.s1", () => fd.AttachDevice(device, nested), id => Id(id.Value));
        for (int i = 0; i < OverflowFaults; i++)
        {
            try
            {
                _target.DmaRead(fd, device, FaultIova);
            }
            catch (IommufdException e)
            {
                Emit("overflow.dma.read", e.Errno.ToString());
                return;
            }
        }
        Emit("overflow.dma.read", $"ok count={OverflowFaults}");
        queue?.WaitForEvents(EventWait);
        if (_target.EventSettle > TimeSpan.Zero) Thread.Sleep(_target.EventSettle);
        Try("overflow.veventq.read", () => queue is null ? throw new IommufdException(Errno.ENOENT, "read vEVENTQ", "no queue") : queue.Read(), Describe);
        Try("overflow.veventq.read.empty", () => queue is null ? throw new IommufdException(Errno.ENOENT, "read vEVENTQ", "no queue") : queue.Read(), Describe);
    }

    /// <summary>
    /// Nested translation through guest stage-1 tables: a CD (Hardware's codec) and tables
    /// (<see cref="ConformanceTarget.Stage1"/>) in guest RAM, a stage-1 vSTE pointing at the CD.
    /// The device copies between two VAs; a remapped source after TLBI_NH_VA, an unmapped
    /// destination after TLBI_NH_ASID (F_TRANSLATION in the vEVENTQ) and an invalidated CD
    /// after CFGI_CD (C_BAD_CD) follow. Every invalidation goes through the vIOMMU, which adds
    /// the VMID and turns the vSID into the physical one.
    /// </summary>
    private void Stage1Translation()
    {
        const string prefix = "stage1.";
        using IIommufd fd = _target.Open();
        using HostMemoryRegion ram = fd.AllocateHostMemory(RamLength, "conformance");
        var (_, device, _, viommu, _) = Nesting(fd, ram, prefix);
        using IVeventQueue? queue = Try(prefix + "veventq.alloc", () => fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, VeventqDepth), Describe);
        if (_target.Stage1 is null)
        {
            Emit(prefix + "tables", "n/a");
            return;
        }

        IStage1Tables tables = _target.Stage1(ram, RamIova, RamIova + Stage1TablesOffset);
        WriteCd(ram, tables, valid: true);
        tables.Map(SourceVa, RamIova + SourcePage);
        tables.Map(DestinationVa, RamIova + DestinationPage);
        var nested = Try(prefix + "hwpt.alloc.nested.s1", () => fd.AllocNestedHwpt(device, viommu, Vste(SteConfig.Stage1)), id => Id(id.Value));
        Try(prefix + "device.attach.nested.s1", () => fd.AttachDevice(device, nested), id => Id(id.Value));
        Copy(fd, device, ram, prefix + "dma.copy", 6, SourceVa, SourcePage, DestinationVa, DestinationPage);

        tables.Map(SourceVa, RamIova + OtherSourcePage);
        Invalidate(fd, prefix + "invalidate.tlbi_nh_va", viommu, Command.TlbiNhVa(0, Asid, SourceVa, leaf: true));
        Copy(fd, device, ram, prefix + "dma.copy.remapped_source", 7, SourceVa, OtherSourcePage, DestinationVa, DestinationPage);

        tables.Unmap(DestinationVa);
        Invalidate(fd, prefix + "invalidate.tlbi_nh_asid", viommu, Command.TlbiNhAsid(0, Asid));
        Copy(fd, device, ram, prefix + "dma.copy.unmapped_destination", 8, SourceVa, OtherSourcePage, DestinationVa, DestinationPage);
        if (queue is not null) queue.WaitForEvents(EventWait);
        if (_target.EventSettle > TimeSpan.Zero) Thread.Sleep(_target.EventSettle);
        Try(prefix + "veventq.read.translation_fault", () => queue is null ? throw new IommufdException(Errno.ENOENT, "read vEVENTQ", "no queue") : queue.Read(), Describe);

        WriteCd(ram, tables, valid: false);
        Invalidate(fd, prefix + "invalidate.cfgi_cd", viommu, Command.CfgiCd(VirtualSid, 0));
        _target.DmaRead(fd, device, SourceVa);
        if (queue is not null) queue.WaitForEvents(EventWait);
        if (_target.EventSettle > TimeSpan.Zero) Thread.Sleep(_target.EventSettle);
        Try(prefix + "veventq.read.bad_cd", () => queue is null ? throw new IommufdException(Errno.ENOENT, "read vEVENTQ", "no queue") : queue.Read(), Describe);
    }

    /// <summary>CD 0 of the stage-1 vSTE's table, at <see cref="CdTableIova"/>: 4 KiB granule, the tables' VA size, ASID <see cref="Asid"/>.</summary>
    private static void WriteCd(HostMemoryRegion ram, IStage1Tables tables, bool valid)
    {
        ContextDescriptor cd = ContextDescriptor.Create(tables.Root, Asid, (uint)(64 - tables.InputBits), valid: valid);
        Span<byte> bytes = stackalloc byte[ContextDescriptor.Size];
        ReadOnlySpan<ulong> words = [cd.W0, cd.W1, cd.W2, cd.W3, cd.W4, cd.W5, cd.W6, cd.W7];
        for (int i = 0; i < words.Length; i++)
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(bytes[(i * sizeof(ulong))..], words[i]);
        ram.Write(CdTableIova - RamIova, bytes);
    }

    /// <summary>The stage-1 steps' ASID.</summary>
    public const ushort Asid = 1;

    /// <summary>Where in the RAM region the stage-1 tables start.</summary>
    private const ulong Stage1TablesOffset = 0x100000;

    /// <summary>The VAs the device copies between, and the RAM pages (offsets) behind them.</summary>
    private const ulong SourceVa = 0x10000, DestinationVa = 0x11000;
    private const ulong SourcePage = 0x40000, DestinationPage = 0x41000, OtherSourcePage = 0x42000;

    /// <summary>The depth of the queue that overflows.</summary>
    public const uint OverflowDepth = 2;

    /// <summary>Faults provoked into it: more than it holds.</summary>
    public const int OverflowFaults = 4;

    // ------------------------------------------------------------------ raw ioctls (selftest cmd_fail, cmd_length, cmd_ex_fail)

    /// <summary>
    /// The selftests' size rules on every ioctl the VMM uses, with a zeroed struct: a size one
    /// short of the command's minimum (EINVAL), one byte longer with that byte set (E2BIG), the
    /// exact size, and one byte longer with a zero byte (the same answer as the exact size).
    /// The minimum is offsetofend of the field the selftest names (drivers/iommu/iommufd/main.c
    /// keeps the same min_size in iommufd_ioctl_ops).
    /// </summary>
    private void RawIoctls()
    {
        using IIommufd fd = _target.Open();
        Span<byte> argument = stackalloc byte[RawBufferLength];

        argument.Clear();
        Size(argument, SizeOf<IommuDestroy>());
        Emit("raw.destroy.id_0", Answer(_target.RawIoctl(fd, (uint)IommufdIoctl.Destroy, argument)));
        Emit("raw.unknown_command", Answer(_target.RawIoctl(fd, IommufdIoctls.Base | (IommufdIoctl.Destroy.CommandNumber() - 1u), argument)));

        // cmd_ex_fail: a longer struct with a zero tail works, a non-zero tail is E2BIG
        argument.Clear();
        Size(argument, SizeOf<IommuDestroy>() + sizeof(ulong));
        Emit("raw.destroy.longer_zero_tail", Answer(_target.RawIoctl(fd, (uint)IommufdIoctl.Destroy, argument)));
        argument[SizeOf<IommuDestroy>()] = 1;
        Emit("raw.destroy.longer_nonzero_tail", Answer(_target.RawIoctl(fd, (uint)IommufdIoctl.Destroy, argument)));

        Length<IommuDestroy>(fd, argument, IommufdIoctl.Destroy, nameof(IommuDestroy.Id));
        Length<IommuHwInfo>(fd, argument, IommufdIoctl.GetHwInfo, nameof(IommuHwInfo.Reserved));
        Length<IommuHwptAlloc>(fd, argument, IommufdIoctl.HwptAlloc, nameof(IommuHwptAlloc.Reserved));
        Length<IommuHwptInvalidate>(fd, argument, IommufdIoctl.HwptInvalidate, nameof(IommuHwptInvalidate.Reserved));
        Length<IommuIoasAlloc>(fd, argument, IommufdIoctl.IoasAlloc, nameof(IommuIoasAlloc.OutIoasId));
        Length<IommuIoasIovaRanges>(fd, argument, IommufdIoctl.IoasIovaRanges, nameof(IommuIoasIovaRanges.OutIovaAlignment));
        Length<IommuIoasMap>(fd, argument, IommufdIoctl.IoasMap, nameof(IommuIoasMap.Iova));
        Length<IommuIoasUnmap>(fd, argument, IommufdIoctl.IoasUnmap, nameof(IommuIoasUnmap.Length));
        Length<IommuViommuAlloc>(fd, argument, IommufdIoctl.ViommuAlloc, nameof(IommuViommuAlloc.OutViommuId));
        Length<IommuVdeviceAlloc>(fd, argument, IommufdIoctl.VdeviceAlloc, nameof(IommuVdeviceAlloc.VirtId));

        // Unknown flags and non-zero reserved fields, one at a time, on an otherwise zeroed struct
        // (the IOAS steps name IOAS 1, which the IOAS_ALLOC size steps above made): which check
        // comes first is the kernel's to say.
        Field<IommuIoasAlloc>(fd, argument, IommufdIoctl.IoasAlloc, nameof(IommuIoasAlloc.Flags), "flags_unknown", null);
        Field<IommuIoasIovaRanges>(fd, argument, IommufdIoctl.IoasIovaRanges, nameof(IommuIoasIovaRanges.Reserved), "reserved_nonzero", nameof(IommuIoasIovaRanges.IoasId));
        Field<IommuIoasMap>(fd, argument, IommufdIoctl.IoasMap, nameof(IommuIoasMap.Reserved), "reserved_nonzero", nameof(IommuIoasMap.IoasId));
        Field<IommuIoasMap>(fd, argument, IommufdIoctl.IoasMap, nameof(IommuIoasMap.Flags), "flags_unknown_bit_3", nameof(IommuIoasMap.IoasId), 1 << 3);
        Field<IommuHwInfo>(fd, argument, IommufdIoctl.GetHwInfo, nameof(IommuHwInfo.Reserved), "reserved_nonzero", null);
        Field<IommuHwInfo>(fd, argument, IommufdIoctl.GetHwInfo, nameof(IommuHwInfo.Flags), "flags_unknown_bit_1", null, 1 << 1);
        Field<IommuHwptAlloc>(fd, argument, IommufdIoctl.HwptAlloc, nameof(IommuHwptAlloc.Reserved), "reserved_nonzero", null);
        Field<IommuHwptAlloc>(fd, argument, IommufdIoctl.HwptAlloc, nameof(IommuHwptAlloc.Reserved2), "reserved2_nonzero", null);
        Field<IommuHwptInvalidate>(fd, argument, IommufdIoctl.HwptInvalidate, nameof(IommuHwptInvalidate.Reserved), "reserved_nonzero", null);
        Field<IommuViommuAlloc>(fd, argument, IommufdIoctl.ViommuAlloc, nameof(IommuViommuAlloc.Reserved), "reserved_nonzero", null);
        Field<IommuVeventqAlloc>(fd, argument, IommufdIoctl.VeventqAlloc, nameof(IommuVeventqAlloc.Reserved), "reserved_nonzero", null);
    }

    /// <summary>One raw call with the struct zeroed but <paramref name="field"/> (its low byte) set to <paramref name="value"/>, and <paramref name="ioasField"/> naming IOAS 1.</summary>
    private void Field<T>(IIommufd fd, Span<byte> argument, IommufdIoctl ioctl, string field, string step, string? ioasField, byte value = 1)
        where T : unmanaged
    {
        argument.Clear();
        Size(argument, SizeOf<T>());
        argument[(int)System.Runtime.InteropServices.Marshal.OffsetOf<T>(field)] = value;
        if (ioasField is not null)
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(argument[(int)System.Runtime.InteropServices.Marshal.OffsetOf<T>(ioasField)..], RawIoasId);
        Emit("raw." + ioctl.CName().ToLowerInvariant() + "." + step, Answer(_target.RawIoctl(fd, (uint)ioctl, argument)));
    }

    /// <summary>The IOAS the raw size steps' successful IOMMU_IOAS_ALLOC made first.</summary>
    private const uint RawIoasId = 1;

    /// <summary>Large enough for every struct above plus the selftest's trailing bytes.</summary>
    private const int RawBufferLength = 128;

    private void Length<T>(IIommufd fd, Span<byte> argument, IommufdIoctl ioctl, string lastField) where T : unmanaged
    {
        int size = SizeOf<T>();
        int minSize = OffsetOfEnd<T>(lastField);
        string name = "raw." + ioctl.CName().ToLowerInvariant();
        argument.Clear();
        Size(argument, minSize - 1);
        argument[size] = byte.MaxValue;
        Emit(name + ".size_short", Answer(_target.RawIoctl(fd, (uint)ioctl, argument)));
        Size(argument, size + 1);
        Emit(name + ".size_long_nonzero", Answer(_target.RawIoctl(fd, (uint)ioctl, argument)));
        argument.Clear();
        Size(argument, size);
        Emit(name + ".size_exact", Answer(_target.RawIoctl(fd, (uint)ioctl, argument)));
        argument.Clear();
        Size(argument, size + 1);
        Emit(name + ".size_long_zero", Answer(_target.RawIoctl(fd, (uint)ioctl, argument)));
    }

    private static int SizeOf<T>() where T : unmanaged => System.Runtime.CompilerServices.Unsafe.SizeOf<T>();

    /// <summary>offsetofend(T, field) from the struct's explicit layout.</summary>
    private static int OffsetOfEnd<T>(string field) where T : unmanaged
    {
        System.Reflection.FieldInfo info = typeof(T).GetField(field)
            ?? throw new ArgumentException($"{typeof(T).Name} has no field {field}.", nameof(field));
        int offset = (int)System.Runtime.InteropServices.Marshal.OffsetOf<T>(field);
        return offset + System.Runtime.InteropServices.Marshal.SizeOf(info.FieldType);
    }

    private static void Size(Span<byte> argument, int size) =>
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(argument, (uint)size);

    private static string Answer(int rc) => rc >= 0 ? "ok" : ((Errno)(-rc)).ToString();

    // ------------------------------------------------------------------ helpers

    /// <summary>
    /// What every nesting scenario starts from, each call emitted under <paramref name="prefix"/>:
    /// an IOAS with the RAM mapped, the device bound, a nest parent (the device attached to it when
    /// <paramref name="attachToParent"/>), an ARM_SMMUV3 vIOMMU over it and the device's vDEVICE.
    /// </summary>
    private (IoasId Ioas, DeviceId Device, HwptId Parent, ViommuId Viommu, VdeviceId Vdevice) Nesting(
        IIommufd fd, HostMemoryRegion ram, string prefix, bool attachToParent = false)
    {
        var ioas = Try(prefix + "ioas.alloc", fd.AllocIoas, id => Id(id.Value));
        Try(prefix + "ioas.map", () => fd.MapIoas(ioas, ram, 0, RamLength, RamIova), Hex("iova"));
        var device = Try(prefix + "device.bind", () => fd.BindDevice(_target.Device), id => Id(id.Value));
        var parent = Try(prefix + "hwpt.alloc.nest_parent", () => fd.AllocPagingHwpt(device, ioas, HwptAllocFlags.NestParent), id => Id(id.Value));
        if (attachToParent) Try(prefix + "device.attach.nest_parent", () => fd.AttachDevice(device, parent), id => Id(id.Value));
        var viommu = Try(prefix + "viommu.alloc", () => fd.AllocViommu(device, parent, ViommuType.ArmSmmuV3), a => Id(a.Id.Value))?.Id ?? default;
        var vdevice = Try(prefix + "vdevice.alloc", () => fd.AllocVdevice(viommu, device, VirtualSid), id => Id(id.Value));
        return (ioas, device, parent, viommu, vdevice);
    }

    private T Try<T>(string name, Func<T> call, Func<T, string> describe)
    {
        try
        {
            T value = call();
            string detail = describe(value);
            Emit(name, detail.Length == 0 ? "ok" : "ok " + detail);
            return value;
        }
        catch (IommufdException e)
        {
            Emit(name, e.Errno.ToString());
            return default!;
        }
    }

    private void Invalidate(IIommufd fd, string name, ObjectId target, params ReadOnlySpan<Command> commands) =>
        Record(name, fd.InvalidateArmSmmuV3(target, commands));

    private void Record(string name, InvalidateResult result) =>
        Emit(name, (result.Succeeded ? "ok" : result.Error.ToString()) + $" handled={result.EntriesHandled}");

    private void Emit(string name, string result)
    {
        var line = new ConformanceLine(name, result);
        _lines.Add(line);
        _each?.Invoke(line);
    }

    private static bool Destroy(IIommufd fd, ObjectId id)
    {
        fd.Destroy(id);
        return true;
    }

    private static bool Destroy(IIommufd fd, IoasId id) => Destroy(fd, (ObjectId)id);
    private static bool Destroy(IIommufd fd, HwptId id) => Destroy(fd, (ObjectId)id);
    private static bool Destroy(IIommufd fd, ViommuId id) => Destroy(fd, (ObjectId)id);
    private static bool Destroy(IIommufd fd, VdeviceId id) => Destroy(fd, (ObjectId)id);
    private static bool Destroy(IIommufd fd, VeventqId id) => Destroy(fd, (ObjectId)id);

    private static bool Done(Action action)
    {
        action();
        return true;
    }

    private static string Id(uint id) => "id=" + id.ToString(CultureInfo.InvariantCulture);

    private static Func<ulong, string> Hex(string label) => value => $"{label}=0x{value:X}";

    /// <summary>A vSTE as a guest writes it, reduced to the fields the kernel accepts (arm_smmu_validate_vste): V, CONFIG, and for stage 1 the CD table pointer and its cacheability.</summary>
    private static ArmSmmuV3Vste Vste(SteConfig config)
    {
        StreamTableEntry ste = config == SteConfig.Stage1
            ? StreamTableEntry.Create(config, s1ContextPtr: CdTableIova, shcfg: 0)
            : StreamTableEntry.Create(config, shcfg: 0);
        return new ArmSmmuV3Vste(ste.W0, config == SteConfig.Stage1 ? ste.W1 : 0);
    }

    /// <summary>CONFIG = 0b001, a reserved encoding (IHI 0070 5.2, STE.Config).</summary>
    private static ArmSmmuV3Vste ReservedConfigVste() =>
        new(StreamTableEntry.Create(SteConfig.Abort, shcfg: 0).W0 | (1UL << 1), 0);

    /// <summary>A stage-1 vSTE that also sets SHCFG, which the kernel does not let a guest choose.</summary>
    private static ArmSmmuV3Vste ShcfgVste()
    {
        StreamTableEntry ste = StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: CdTableIova, shcfg: 1);
        return new ArmSmmuV3Vste(ste.W0, ste.W1);
    }

    private static string Describe(IovaRanges r) =>
        $"alignment=0x{r.Alignment:X} ranges={string.Join(",", r.Ranges)}";

    private static string Describe(HwInfo h)
    {
        string head = $"type={(uint)h.Type} data_len={h.DataLength} caps=0x{(ulong)h.Capabilities:X} max_pasid_log2={h.MaxPasidLog2}";
        if (h.Type != HwInfoType.ArmSmmuV3 || h.Data.Length < ArmSmmuV3HwInfo.Size) return head;
        ArmSmmuV3HwInfo a = h.AsArmSmmuV3();
        return head + $" idr0=0x{a.Idr0:X8} idr1=0x{a.Idr1:X8} idr2=0x{a.Idr2:X8} idr3=0x{a.Idr3:X8} idr4=0x{a.Idr4:X8} idr5=0x{a.Idr5:X8} iidr=0x{a.Iidr:X8} aidr=0x{a.Aidr:X8}";
    }

    private static string Describe(IVeventQueue q) => $"id={q.Id.Value.ToString(CultureInfo.InvariantCulture)} type={(uint)q.Type} depth={q.Depth}";

    private static string Describe(IReadOnlyList<Vevent> events)
    {
        var parts = new List<string> { $"events={events.Count}" };
        foreach (Vevent e in events)
        {
            if (e.LostEvents)
            {
                parts.Add($"lost seq={e.Sequence}");
                continue;
            }
            ArmSmmuV3Vevent a = e.AsArmSmmuV3();
            parts.Add($"{(EventType)a.EventId} sid=0x{a.Sid:X} seq={e.Sequence}");
        }
        return string.Join(" ", parts);
    }
}
