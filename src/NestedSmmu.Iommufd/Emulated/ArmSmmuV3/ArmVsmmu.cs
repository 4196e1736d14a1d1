using System.Buffers;
using System.Buffers.Binary;
using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// The SMMUv3 vIOMMU (arm_vsmmu, drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3-iommufd.c): a VMID of its own on its
/// SMMU over a shared nest-parent stage 2, nested domains from validated vSTEs, invalidation
/// commands rewritten for the physical SMMU (VMID inserted, vSID to pSID), and events forwarded
/// with the vSID.
/// </summary>
internal class ArmVsmmu : ViommuDriver
{
    /// <summary>vSTE word 0 bits a guest may set: V [0], Config [3:1], S1Fmt [5:4], S1ContextPtr [51:6], S1CDMax [63:59].</summary>
    public static readonly ulong SteNestingAllowedWord0 = Bits.Mask(0, 0) | Bits.Mask(3, 1) | Bits.Mask(5, 4) | Bits.Mask(51, 6) | Bits.Mask(63, 59);
    /// <summary>vSTE word 1 bits a guest may set: S1DSS [1:0], S1CIR [3:2], S1COR [5:4], S1CSH [7:6], S1STALLD [27], EATS [29:28].</summary>
    public static readonly ulong SteNestingAllowedWord1 = Bits.Mask(1, 0) | Bits.Mask(3, 2) | Bits.Mask(5, 4) | Bits.Mask(7, 6) | Bits.Mask(27, 27) | Bits.Mask(29, 28);
    private static readonly ulong SteEatsMask = Bits.Mask(29, 28);
    private const int SteEatsLo = 28;
    private const uint SteEatsAbort = 0;

    /// <summary>KMALLOC_MAX_SIZE with 4 KiB pages (order-10 blocks): the largest array the driver copies in one go.</summary>
    private const ulong KmallocMaxSize = 4UL << 20;

    /// <summary>Bytes per command entry (struct iommu_viommu_arm_smmuv3_invalidate).</summary>
    public const int InvalidateEntrySize = IommufdExtensions.ArmSmmuV3CommandSize;

    protected ArmVsmmu(ArmSmmuDevice smmu, PagingDomain s2Parent, ushort vmid)
    {
        Smmu = smmu;
        S2Parent = s2Parent;
        Vmid = vmid;
    }

    public ArmSmmuDevice Smmu { get; }
    public PagingDomain S2Parent { get; }
    /// <summary>This vIOMMU's VMID on <see cref="SmmuV3"/>: its nested and bypass STEs and its guest's TLBIs carry it.</summary>
    public ushort Vmid { get; }
    public List<NestedDomain> NestedDomains { get; } = [];

    /// <summary>
    /// arm_vsmmu_init for type ARM_SMMUV3: EINVAL when the parent belongs to another SMMU,
    /// ENOSPC when the SMMU has no VMID left.
    /// </summary>
    public static Errno TryCreate(ArmSmmuDevice smmu, PagingDomain parent, out ArmVsmmu? vsmmu)
    {
        vsmmu = null;
        if (!Reserve(smmu, parent, out ushort vmid, out Errno e)) return e;
        vsmmu = new ArmVsmmu(smmu, parent, vmid);
        parent.Vsmmus.Add(vsmmu);
        return Errno.None;
    }

    /// <summary>The shared part of every SMMUv3-based vIOMMU's init: compatibility and a VMID.</summary>
    protected static bool Reserve(ArmSmmuDevice smmu, PagingDomain parent, out ushort vmid, out Errno error)
    {
        vmid = 0;
        if (!parent.IsCompatible(smmu))
        {
            error = Errno.EINVAL;
            return false;
        }
        if (smmu.AllocVmid() is not { } v)
        {
            error = Errno.ENOSPC;
            return false;
        }
        vmid = v;
        error = Errno.None;
        return true;
    }

    /// <summary>Registers a derived vIOMMU with its parent (the derived constructor has run).</summary>
    protected void Register() => S2Parent.Vsmmus.Add(this);

    public override void Destroy()
    {
        S2Parent.Vsmmus.Remove(this);
        Smmu.FreeVmid(Vmid);
    }

    // ------------------------------------------------------------------ nested domains

    public override bool HasAllocDomainNested => true;

    /// <summary>
    /// arm_vsmmu_alloc_domain_nested: flags must be 0 (EOPNOTSUPP); the data must be exactly an
    /// iommu_hwpt_arm_smmuv3 (EINVAL / EFAULT); the vSTE is validated (EIO).
    /// </summary>
    public override Errno AllocDomainNested(uint flags, in UserData data, out NestedDomain? domain)
    {
        domain = null;
        if (flags != 0) return Errno.EOPNOTSUPP;
        Span<byte> arg = stackalloc byte[ArmSmmuV3Vste.Size];
        Errno e = Core.Context.Copy.StructFromUser(data, (uint)HwptDataType.ArmSmmuV3, arg, ArmSmmuV3Vste.Size);
        if (e != Errno.None) return e;
        var vste = ArmSmmuV3Vste.Parse(arg);
        e = ValidateVste(ref vste, out bool enableAts);
        if (e != Errno.None) return e;
        domain = new NestedDomain(this, vste.Word0, vste.Word1 & ~SteEatsMask, enableAts);
        NestedDomains.Add(domain);
        return Errno.None;
    }

    /// <summary>
    /// arm_smmu_validate_vste: V = 0 becomes an all-zero (abort) vSTE; any bit outside the
    /// allowed masks, a Config other than abort, bypass or S1 translate, or EATS other than 0 or
    /// 1 is EIO (reserved for invalid STE data). EATS = 1 with S1 translate enables ATS.
    /// </summary>
    public static Errno ValidateVste(ref ArmSmmuV3Vste vste, out bool enableAts)
    {
        enableAts = false;
        var ste = new StreamTableEntry(vste.Word0, vste.Word1, 0, 0);
        if (!ste.V)
        {
            vste = new ArmSmmuV3Vste(0, 0);
            return Errno.None;
        }
        if ((vste.Word0 & ~SteNestingAllowedWord0) != 0 || (vste.Word1 & ~SteNestingAllowedWord1) != 0) return Errno.EIO;
        if (ste.ConfigRaw is not ((uint)SteConfig.Abort or (uint)SteConfig.Bypass or (uint)SteConfig.Stage1)) return Errno.EIO;
        uint eats = ste.EATS;
        vste = vste with { Word1 = vste.Word1 & ~SteEatsMask };
        if (eats is not (SteEatsAbort or ArmSmmuDevice.SteEatsTrans)) return Errno.EIO;
        if (ste.Config == SteConfig.Stage1) enableAts = eats == ArmSmmuDevice.SteEatsTrans;
        return Errno.None;
    }

    /// <summary>The vSID of <paramref name="device"/> in this vIOMMU, or null when it has no vDEVICE here.</summary>
    public uint? VsidOf(HostPciDevice device)
    {
        foreach (VdeviceObject v in Core.Vdevs.Values)
        {
            if (v.Device.Device == device) return (uint)v.VirtId;
        }
        return null;
    }

    // ------------------------------------------------------------------ invalidation

    public override bool HasCacheInvalidate => true;

    /// <summary>
    /// arm_vsmmu_cache_invalidate: copies the whole array (EINVAL for a wrong type or no entries,
    /// E2BIG / EFAULT from the copy), converts each command in order and issues them in batches
    /// of 63 with a CMD_SYNC. A command it refuses (EIO) stops the run; <paramref name="handled"/>
    /// counts the commands before it.
    /// </summary>
    /// <remarks>
    /// Linux (6.18) drops the converted commands of the unfinished batch when a later command
    /// fails, yet counts them in entry_num. The emulation issues them before returning, so that
    /// entry_num always means "executed" and a VMM that resumes after it loses nothing.
    /// </remarks>
    public override Errno CacheInvalidate(in UserDataArray array, out uint handled)
    {
        handled = 0;
        // kcalloc of the whole array: beyond KMALLOC_MAX_SIZE it fails.
        if ((ulong)array.EntryCount * InvalidateEntrySize > KmallocMaxSize) return Errno.ENOMEM;
        // The kernel's buffer from a pool and the batch on the stack: steady-state invalidation allocates nothing.
        int rawLength = (int)array.EntryCount * InvalidateEntrySize;
        byte[] pooled = ArrayPool<byte>.Shared.Rent(rawLength);
        try
        {
            return ConvertAndIssue(array, pooled.AsSpan(0, rawLength), out handled);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(pooled);
        }
    }

    private Errno ConvertAndIssue(in UserDataArray array, Span<byte> raw, out uint handled)
    {
        handled = 0;
        Errno e = Core.Context.Copy.FullArrayFromUser(array, (uint)HwptInvalidateDataType.ArmSmmuV3, raw, InvalidateEntrySize);
        if (e != Errno.None) return e;

        const int perBatch = ArmSmmuDevice.CmdqBatchEntries - 1;
        Span<Command> batch = stackalloc Command[perBatch];
        int pending = 0;
        for (uint i = 0; i < array.EntryCount; i++)
        {
            ReadOnlySpan<byte> entry = raw.Slice((int)i * InvalidateEntrySize, InvalidateEntrySize);
            var cmd = new Command(BinaryPrimitives.ReadUInt64LittleEndian(entry), BinaryPrimitives.ReadUInt64LittleEndian(entry[sizeof(ulong)..]));
            e = ConvertUserCommand(ref cmd);
            if (e != Errno.None)
            {
                if (pending > 0) Smmu.Submit(batch[..pending], sync: true);
                handled = i;
                return e;
            }
            batch[pending++] = cmd;
            if (pending == perBatch)
            {
                Smmu.Submit(batch, sync: true);
                pending = 0;
            }
        }
        if (pending > 0) Smmu.Submit(batch[..pending], sync: true);
        handled = array.EntryCount;
        return Errno.None;
    }

    /// <summary>
    /// arm_vsmmu_convert_user_cmd (arm-smmu-v3-iommufd.c): TLBI_NSNH_ALL becomes TLBI_NH_ALL with the VMID;
    /// TLBI_NH_ALL/ASID/VA/VAA get the VMID; ATC_INV and CFGI_CD(_ALL) get vSID → pSID (EIO for an
    /// unknown vSID); any other opcode is EIO.
    /// </summary>
    public Errno ConvertUserCommand(ref Command cmd)
    {
        switch (cmd.Opcode)
        {
            case CommandOpcode.TLBI_NSNH_ALL:
                cmd = Command.TlbiNhAll(Vmid);
                return Errno.None;
            case CommandOpcode.TLBI_NH_VA:
            case CommandOpcode.TLBI_NH_VAA:
            case CommandOpcode.TLBI_NH_ALL:
            case CommandOpcode.TLBI_NH_ASID:
                cmd = cmd.WithVMID(Vmid);
                return Errno.None;
            case CommandOpcode.ATC_INV:
            case CommandOpcode.CFGI_CD:
            case CommandOpcode.CFGI_CD_ALL:
                if (!Core.Vdevs.TryGetValue(cmd.SID, out VdeviceObject? vdev)) return Errno.EIO;
                cmd = cmd.WithSID(vdev.Device.Device.Profile.StreamId);
                return Errno.None;
            default:
                return Errno.EIO;
        }
    }

    // ------------------------------------------------------------------ events

    /// <summary>arm_vmaster_report_event: the record (SID already the vSID) as an ARM_SMMUV3 vEVENT.</summary>
    public Errno ReportEvent(in EventRecord evt)
    {
        Span<byte> data = stackalloc byte[ArmSmmuV3Vevent.Size];
        new ArmSmmuV3Vevent(evt.W0, evt.W1, evt.W2, evt.W3).WriteTo(data);
        return Core.ReportEvent(VeventqType.ArmSmmuV3, data);
    }
}
