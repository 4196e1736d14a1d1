using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd;

/// <summary>
/// The one seam between the VMM and the host kernel: an open iommufd context (one open of
/// /dev/iommu) plus the VFIO device binding and the memory the VMM maps. Two implementations:
/// the real kernel (<c>Linux.LinuxIommufd</c>, ioctl(2) on /dev/iommu) and the in-process
/// emulated kernel (<c>Emulated/</c>) that drives the hardware models.
/// </summary>
/// <remarks>
/// <para>
/// Errors are the kernel's: every call that fails throws <see cref="IommufdException"/> with
/// the Linux errno the real kernel returns for that case (listed per member below; they follow
/// drivers/iommu/iommufd and arm-smmu-v3), except
/// <see cref="Invalidate"/>, which reports partial progress as a value. Misuse of the .NET API
/// itself (a null argument, a disposed object) throws the usual .NET exceptions.
/// </para>
/// <para>
/// Object ids come from one space per context, starting at 1. Dependent objects keep their
/// parents busy: destroy in reverse order of creation (children first), or dispose the
/// context, which tears everything down (leaves first).
/// </para>
/// <para>Not thread-safe except where a member says so: one VMM thread drives a context.</para>
/// </remarks>
public interface IIommufd : IDisposable
{
    /// <summary>What this context is, for messages: e.g. <c>/dev/iommu</c> or <c>emulated host 'grace'</c>.</summary>
    string Description { get; }

    // ---------------------------------------------------------------- memory and IOAS

    /// <summary>
    /// Allocates host memory the VMM can use as guest RAM (or any DMA buffer) and map into an
    /// IOAS. Real host: anonymous private mmap, length rounded up to the page size. Emulated
    /// host: a physically contiguous run of host memory.
    /// </summary>
    /// <param name="length">Bytes; non-zero.</param>
    /// <param name="name">A label for messages and diagnostics.</param>
    /// <exception cref="IommufdException">ENOMEM when the host cannot provide it.</exception>
    HostMemoryRegion AllocateHostMemory(ulong length, string name);

    /// <summary>IOMMU_IOAS_ALLOC: a new, empty IO address space.</summary>
    /// <exception cref="IommufdException">ENOMEM.</exception>
    IoasId AllocIoas();

    /// <summary>
    /// IOMMU_IOAS_MAP: maps <c>[memoryOffset, memoryOffset + length)</c> of
    /// <paramref name="memory"/> into <paramref name="ioas"/>; the kernel pins it. The VMM maps
    /// guest RAM at IOVA = guest physical address, so a nested guest's stage-2 is this IOAS.
    /// </summary>
    /// <param name="ioas">The IOAS.</param>
    /// <param name="memory">A region from <see cref="AllocateHostMemory"/> (or, on a real host, any native region).</param>
    /// <param name="memoryOffset">Start inside the region.</param>
    /// <param name="length">Bytes to map.</param>
    /// <param name="iova">The IOVA to map at (adds <see cref="IoasMapFlags.FixedIova"/>), or null to let the kernel choose.</param>
    /// <param name="flags">Access: <see cref="IoasMapFlags.Readable"/> and/or <see cref="IoasMapFlags.Writeable"/>. Passed through, so unknown bits reach the kernel.</param>
    /// <returns>The IOVA of the mapping.</returns>
    /// <exception cref="IommufdException">
    /// EOPNOTSUPP unknown flags; EOVERFLOW iova/length overflow; EINVAL neither READABLE nor
    /// WRITEABLE, not aligned to the IOAS's alignment (1 until a domain uses the IOAS, then the
    /// page size), or the IOVA range touches a reserved range (an attached device's software MSI
    /// window, or beyond an attached domain's aperture); EEXIST the IOVA range is in use;
    /// ENOENT unknown IOAS; EFAULT the range leaves the region, or the region belongs to another
    /// backend; ENOMEM pinning failed (RLIMIT_MEMLOCK).
    /// </exception>
    ulong MapIoas(IoasId ioas, HostMemoryRegion memory, ulong memoryOffset, ulong length, ulong? iova,
        IoasMapFlags flags = IoasMapFlags.Readable | IoasMapFlags.Writeable);

    /// <summary>
    /// IOMMU_IOAS_UNMAP: removes every mapping inside <c>[iova, iova + length)</c>; the range
    /// must cover whole mappings. <c>(0, ulong.MaxValue)</c> unmaps everything.
    /// </summary>
    /// <returns>Bytes unmapped.</returns>
    /// <exception cref="IommufdException">
    /// ENOENT nothing mapped there, or the range would split a mapping; EBUSY a HW queue pins
    /// part of it; ENOENT unknown IOAS.
    /// </exception>
    ulong UnmapIoas(IoasId ioas, ulong iova, ulong length);

    /// <summary>IOMMU_IOAS_IOVA_RANGES: the IOVA ranges usable for mapping, narrowed by attached devices.</summary>
    /// <exception cref="IommufdException">ENOENT unknown IOAS.</exception>
    IovaRanges GetIovaRanges(IoasId ioas);

    // ---------------------------------------------------------------- devices

    /// <summary>
    /// Opens the device's VFIO cdev and binds it to this context (VFIO_DEVICE_BIND_IOMMUFD).
    /// The device is named by PCI address (<c>0000:01:00.0</c>, or <c>01:00.0</c> in domain 0)
    /// or by cdev path (<c>/dev/vfio/devices/vfio0</c>); the emulated host uses its endpoints'
    /// names. Binding again the same device fails.
    /// </summary>
    /// <returns>The <c>dev_id</c> the other calls take.</returns>
    /// <exception cref="IommufdException">
    /// ENOENT no such device; ENODEV the device is not bound to vfio-pci (no vfio-dev cdev);
    /// EACCES/EPERM no permission on the cdev; EINVAL already bound (a VFIO cdev is opened
    /// once, vfio_df_open); EBUSY opened elsewhere;
    /// EINVAL the name is neither a PCI address nor a cdev path.
    /// </exception>
    DeviceId BindDevice(string device);

    /// <summary>
    /// Unbinds the device (closes its VFIO cdev). The kernel forces its vDEVICE down; a later
    /// DESTROY of that vDEVICE gives ENOENT.
    /// </summary>
    /// <exception cref="IommufdException">ENOENT not a bound device.</exception>
    void UnbindDevice(DeviceId device);

    /// <summary>
    /// VFIO_DEVICE_ATTACH_IOMMUFD_PT: attaches the device to an IOAS (the kernel picks or makes
    /// a paging HWPT), a paging HWPT or a nested HWPT; attaching again replaces the attachment.
    /// </summary>
    /// <param name="device">A bound device.</param>
    /// <param name="pt">An IOAS or HWPT id.</param>
    /// <returns>The id attached: the HWPT itself, or the HWPT used for an IOAS.</returns>
    /// <exception cref="IommufdException">
    /// ENOENT unknown pt, or (SMMUv3) a nested HWPT with CFG = S1 translate and no vDEVICE for
    /// the device; EINVAL pt of the wrong kind or another SMMU instance's HWPT; EBUSY the device
    /// has SSIDs in use or is resetting; EADDRINUSE the IOAS has a mapping where the device's
    /// reserved regions go (arm-smmu-v3: the software MSI window 0x8000000-0x80FFFFF), or, for
    /// its first domain, a mapping that is not page aligned.
    /// </exception>
    ObjectId AttachDevice(DeviceId device, ObjectId pt);

    /// <summary>VFIO_DEVICE_DETACH_IOMMUFD_PT: the device blocks DMA afterwards.</summary>
    /// <remarks>Detaching a device that is not attached succeeds and does nothing (VFIO returns 0).</remarks>
    /// <exception cref="IommufdException">ENOENT not a bound device.</exception>
    void DetachDevice(DeviceId device);

    /// <summary>
    /// IOMMU_GET_HW_INFO: what the device's IOMMU offers. Without <paramref name="type"/> the
    /// driver reports its default type (ARM_SMMUV3 for an SMMUv3, even with CMDQV); pass
    /// TEGRA241_CMDQV to get the CMDQV info.
    /// </summary>
    /// <param name="device">A bound device.</param>
    /// <param name="type">The type to request (sets IOMMU_HW_INFO_FLAG_INPUT_TYPE), or null for the default.</param>
    /// <param name="dataLength">
    /// The buffer length to offer, or null for "all of it". The kernel copies
    /// min(offered, its length), zero-fills the rest and reports its own length.
    /// </param>
    /// <exception cref="IommufdException">ENOENT not a bound device; EOPNOTSUPP the driver does not report that type.</exception>
    HwInfo GetHwInfo(DeviceId device, HwInfoType? type = null, uint? dataLength = null);

    // ---------------------------------------------------------------- HWPT

    /// <summary>
    /// IOMMU_HWPT_ALLOC. With <paramref name="pt"/> an IOAS and no data: a paging HWPT
    /// (<see cref="HwptAllocFlags.NestParent"/> makes it a stage-2 parent). With
    /// <paramref name="pt"/> a nest-parent HWPT or a vIOMMU and driver data: a nested HWPT
    /// (for SMMUv3, <see cref="HwptDataType.ArmSmmuV3"/> with the vSTE, see <see cref="ArmSmmuV3Vste"/>).
    /// </summary>
    /// <param name="device">The device whose IOMMU the HWPT is for.</param>
    /// <param name="pt">An IOAS, a nest-parent paging HWPT or a vIOMMU.</param>
    /// <param name="flags">Allocation flags (passed through).</param>
    /// <param name="dataType">The driver data's type; <see cref="HwptDataType.None"/> for paging.</param>
    /// <param name="data">The driver data (copied by the kernel), empty for none.</param>
    /// <param name="faultId">A fault queue id; when set, <see cref="HwptAllocFlags.FaultIdValid"/> is added.</param>
    /// <exception cref="IommufdException">
    /// ENOENT unknown device or fault queue; EINVAL pt missing or of the wrong kind, DATA_NONE
    /// with data, a driver type without data or with a wrong length, a parent that is not a
    /// nest parent or belongs to another IOMMU; EOPNOTSUPP unsupported flags for the kind of
    /// HWPT (paging: unknown, FAULT_ID_VALID with NEST_PARENT, DIRTY_TRACKING without the
    /// capability; nested: anything but FAULT_ID_VALID|PASID) or a non-zero reserved field;
    /// EIO (SMMUv3) an invalid vSTE.
    /// </exception>
    HwptId AllocHwpt(DeviceId device, ObjectId pt, HwptAllocFlags flags, HwptDataType dataType,
        ReadOnlySpan<byte> data, uint? faultId = null);

    /// <summary>
    /// IOMMU_HWPT_INVALIDATE on a vIOMMU or a nested HWPT: runs <paramref name="entryCount"/>
    /// entries of <paramref name="entryLength"/> bytes in order and stops at the first failure.
    /// For SMMUv3 each entry is a 16-byte command (<see cref="HwptInvalidateDataType.ArmSmmuV3"/>):
    /// TLBI_NH_ALL/ASID/VA/VAA and TLBI_NSNH_ALL get the VMID, ATC_INV and CFGI_CD(_ALL) get
    /// vSID → pSID; anything else fails with EIO. Never throws for an errno: see
    /// <see cref="InvalidateResult"/>.
    /// </summary>
    /// <param name="target">A vIOMMU or a nested HWPT.</param>
    /// <param name="dataType">The entry format.</param>
    /// <param name="entryLength">Bytes per entry as the caller lays them out (<c>entry_len</c>).</param>
    /// <param name="entryCount">
    /// Entries to run (<c>entry_num</c>). The SMMUv3 driver copies the whole array and refuses an
    /// empty one (EINVAL, 0 handled); other drivers may accept 0 as a no-op.
    /// </param>
    /// <param name="entries">At least <c>entryLength * entryCount</c> bytes (else EFAULT without a call).</param>
    /// <returns>
    /// Entries handled and the errno: EINVAL target of the wrong kind, data_type mismatch,
    /// entry_len not the entry size, or entries missing; ENOENT unknown target; EOPNOTSUPP
    /// no driver support; EIO a refused command or unknown vSID (EntriesHandled says which).
    /// </returns>
    InvalidateResult Invalidate(ObjectId target, HwptInvalidateDataType dataType, uint entryLength, uint entryCount,
        ReadOnlySpan<byte> entries);

    // ---------------------------------------------------------------- vIOMMU

    /// <summary>
    /// IOMMU_VIOMMU_ALLOC: a vIOMMU for the device's physical IOMMU on a nest-parent HWPT,
    /// whose S2 VMID it uses. TEGRA241_CMDQV also takes a free VINTF and returns where to mmap
    /// its page (<see cref="ViommuAllocation.AsTegra241Cmdqv"/>); pass its 16-byte data.
    /// </summary>
    /// <param name="device">A bound device behind the physical IOMMU.</param>
    /// <param name="nestParent">A paging HWPT allocated with NEST_PARENT.</param>
    /// <param name="type">The vIOMMU type.</param>
    /// <param name="data">Driver data in (copied in and back out), empty for none.</param>
    /// <param name="flags">Must be 0 (passed through).</param>
    /// <exception cref="IommufdException">
    /// Checked in this order: EOPNOTSUPP flags or type 0; ENOENT unknown device; EOPNOTSUPP
    /// type not supported by the driver; ENOENT nestParent not a paging HWPT; EINVAL not a
    /// nest parent; then EINVAL TEGRA241_CMDQV without its data, ENOSPC no free VINTF.
    /// </exception>
    ViommuAllocation AllocViommu(DeviceId device, HwptId nestParent, ViommuType type, ReadOnlySpan<byte> data = default,
        uint flags = 0);

    /// <summary>
    /// IOMMU_VDEVICE_ALLOC: gives the device a virtual id in the vIOMMU; for SMMUv3 the virt_id
    /// is the vSID the guest uses (CMDQV also programs a SID match/replace slot).
    /// </summary>
    /// <exception cref="IommufdException">
    /// EINVAL virt_id too large for the driver (Tegra241 CMDQV: over 32 bits; plain SMMUv3 takes
    /// any value, though only 32-bit vSIDs can match commands and events) or the device is behind
    /// another IOMMU; ENOENT
    /// unknown vIOMMU or device; EEXIST the device already has a vDEVICE or the virt_id is
    /// taken; ENOSPC (CMDQV) no free SID slot.
    /// </exception>
    VdeviceId AllocVdevice(ViommuId viommu, DeviceId device, ulong virtId);

    /// <summary>
    /// IOMMU_VEVENTQ_ALLOC: an event queue of one type on the vIOMMU (ARM_SMMUV3: forwarded
    /// stage-1 faults and bad STE/CD events with the vSID; TEGRA241_CMDQV: VCMDQ error maps).
    /// </summary>
    /// <param name="viommu">The vIOMMU.</param>
    /// <param name="type">The event type.</param>
    /// <param name="depth">Events kept before the queue reports lost events; non-zero.</param>
    /// <param name="flags">Must be 0 (passed through).</param>
    /// <exception cref="IommufdException">
    /// EOPNOTSUPP flags, type 0 or unsupported type; EINVAL depth 0; ENOENT unknown vIOMMU;
    /// EEXIST the vIOMMU already has a queue of this type.
    /// </exception>
    IVeventQueue AllocVeventq(ViommuId viommu, VeventqType type, uint depth, uint flags = 0);

    /// <summary>
    /// IOMMU_HW_QUEUE_ALLOC: a hardware queue whose memory is guest RAM at
    /// <paramref name="nestingParentIova"/> (an IOVA of the parent HWPT's IOAS, i.e. a guest PA);
    /// the kernel pins it and programs the hardware with its host PA (Tegra241: a VCMDQ's BASE).
    /// Indexes must be allocated in ascending order and destroyed in descending order.
    /// </summary>
    /// <exception cref="IommufdException">
    /// EOPNOTSUPP flags, type 0 or unsupported; EINVAL length 0, index out of range, or length
    /// not a power of two within limits / base not aligned to it; EOVERFLOW iova + length - 1
    /// overflows; ENOENT unknown vIOMMU or range not mapped; EFAULT range not physically
    /// contiguous; EEXIST index in use; EIO the previous index is not allocated.
    /// </exception>
    HwQueueId AllocHwQueue(ViommuId viommu, HwQueueType type, uint index, ulong nestingParentIova, ulong length,
        uint flags = 0);

    /// <summary>
    /// mmap(2) of the iommufd: maps a region a vIOMMU exported, such as the Tegra241 VINTF page
    /// (offset and length from <see cref="Tegra241CmdqvViommuData"/>), shared and read/write.
    /// The mapping keeps the vIOMMU busy until disposed.
    /// </summary>
    /// <exception cref="IommufdException">
    /// EINVAL offset not page aligned or length 0 (mmap(2) rounds the length up to whole pages
    /// before iommufd sees it); ENXIO offset and length do not exactly match an exported region.
    /// </exception>
    IMmioMapping Mmap(ulong offset, ulong length);

    // ---------------------------------------------------------------- all objects

    /// <summary>IOMMU_DESTROY: frees an object that nothing else uses.</summary>
    /// <exception cref="IommufdException">
    /// ENOENT no such object (or a vDEVICE whose device was unbound); EBUSY still in use: a
    /// parent HWPT under a vIOMMU or nested HWPT, a vIOMMU with vDEVICEs, nested HWPTs, queues
    /// or a mapped page, an attached HWPT, an IOAS with devices attached, a HW queue below a
    /// higher index, a vEVENTQ whose reader is open.
    /// </exception>
    void Destroy(ObjectId id);
}
