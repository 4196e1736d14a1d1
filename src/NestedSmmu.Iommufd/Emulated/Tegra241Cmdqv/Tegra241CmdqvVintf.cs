using System.Buffers.Binary;
using System.Numerics;
using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Uapi;
using Hw = NestedSmmu.Hardware.Cmdqv.Tegra241Cmdqv;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// A vIOMMU of type TEGRA241_CMDQV (struct tegra241_vintf, tegra241-cmdqv.c's user-space half):
/// an SMMUv3 vIOMMU (<see cref="ArmVsmmu"/>: VMID, nested domains, HWPT_INVALIDATE, ARM_SMMUV3
/// vEVENTs) that also owns one guest VINTF of its SMMU's CMDQV. The VINTF runs with HYP_OWN = 0
/// and the vIOMMU's VMID; each vDEVICE takes a SID_MATCH/SID_REPLACE slot (vSID to pSID); each
/// HW queue maps one logical VCMDQ whose buffer is pinned guest RAM; the VINTF's logical page 0
/// is exported for mmap so the guest drives its queues without the VMM; and queue errors come
/// back as TEGRA241_CMDQV vEVENTs carrying the VINTF's LVCMDQ_ERR_MAP.
/// </summary>
internal sealed class Tegra241CmdqvVintf : ArmVsmmu
{
    /// <summary>The mmap region: the VINTF's logical page 0 (SZ_64K).</summary>
    public const ulong MmapLength = L.PageSize;
    /// <summary>offsetofend(struct iommu_viommu_tegra241_cmdqv, out_vintf_mmap_length): the whole struct is required.</summary>
    private const int DataMinSize = Tegra241CmdqvViommuData.Size;
    /// <summary>The smallest VCMDQ: 32 bytes (two commands).</summary>
    private const ulong MinQueueBytes = 32;
    /// <summary>CMDQ_ENT_SZ_SHIFT: log2 of the 16-byte command size.</summary>
    private static readonly int CommandSizeShift = BitOperations.Log2((uint)Command.Size);

    private readonly Tegra241CmdqvHostDriver _cmdqv;
    private readonly HwQueueObject?[] _lvcmdqs;
    /// <summary>vDEVICE in each SID slot (struct ida sids), null when free.</summary>
    private readonly VdeviceObject?[] _sidSlots;

    private Tegra241CmdqvVintf(Tegra241CmdqvHostDriver cmdqv, PagingDomain parent, ushort vmid) : base(cmdqv.Smmu, parent, vmid)
    {
        _cmdqv = cmdqv;
        _lvcmdqs = new HwQueueObject?[cmdqv.LvcmdqsPerVintf];
        _sidSlots = new VdeviceObject?[cmdqv.SidsPerVintf];
    }

    /// <summary>The VINTF this vIOMMU owns, -1 before <see cref="Init"/> succeeded or after destroy.</summary>
    public int Index { get; private set; } = -1;

    /// <summary>The mmap offset of the VINTF page returned to user space (0 before init).</summary>
    public ulong MmapOffset { get; private set; }

    /// <summary>The CMDQV driver this VINTF belongs to.</summary>
    public Tegra241CmdqvHostDriver Cmdqv => _cmdqv;

    /// <summary>TEGRA241_CMDQV vEVENTs queued (LVCMDQ error maps).</summary>
    public long ErrorEventsReported { get; private set; }

    /// <summary>Error maps dropped because the vIOMMU has no TEGRA241_CMDQV vEVENTQ.</summary>
    public long ErrorEventsDropped { get; private set; }

    /// <summary>The HW queue in each logical slot (diagnostics).</summary>
    public IReadOnlyList<HwQueueObject?> LogicalQueues => _lvcmdqs;

    /// <summary>The vSID in each SID slot, or null (diagnostics).</summary>
    public IEnumerable<(int Slot, ulong Vsid, uint Psid)> SidSlots =>
        _sidSlots.Select((v, s) => (s, v)).Where(t => t.v is not null).Select(t => (t.s, t.v!.VirtId, t.v.Device.Device.Profile.StreamId));

    /// <summary>arm_vsmmu_init's common half for this type: compatibility and a VMID.</summary>
    public static Errno TryCreate(Tegra241CmdqvHostDriver cmdqv, PagingDomain parent, out Tegra241CmdqvVintf? vintf)
    {
        vintf = null;
        if (!Reserve(cmdqv.Smmu, parent, out ushort vmid, out Errno e)) return e;
        vintf = new Tegra241CmdqvVintf(cmdqv, parent, vmid);
        vintf.Register();
        return Errno.None;
    }

    /// <summary>
    /// tegra241_cmdqv_init_vintf_user: the driver data is required (EINVAL without; the copy's
    /// type and length checks give EINVAL, a bad pointer EFAULT); a free VINTF (ENOSPC) is reset
    /// and enabled with HYP_OWN = 0 and this vIOMMU's VMID, its logical page 0 exported for mmap,
    /// and the offset and length written back. Every failure undoes what was done.
    /// </summary>
    public Errno Init(in UserData? data)
    {
        if (data is not { } d) return Errno.EINVAL;
        Span<byte> arg = stackalloc byte[Tegra241CmdqvViommuData.Size];
        Errno e = Core.Context.Copy.StructFromUser(d, (uint)ViommuType.Tegra241Cmdqv, arg, DataMinSize);
        if (e != Errno.None) return e;

        if (_cmdqv.AllocVintf(this) is not { } index)
        {
            _cmdqv.Log("no more available vintf");
            return Errno.ENOSPC;
        }
        Index = index;
        e = _cmdqv.VintfHwInit(index, Vmid, hypOwn: false, out _);
        if (e != Errno.None)
        {
            Release();
            return e;
        }
        var window = new HostMmioWindow(Smmu.Host, _cmdqv.VintfPage0PhysicalAddress(index), MmapLength);
        MmapOffset = Core.Context.AllocMmap(Core, window, MmapLength);
        new Tegra241CmdqvViommuData(MmapOffset, MmapLength).WriteTo(arg);
        e = Core.Context.Copy.StructToUser(d, (uint)ViommuType.Tegra241Cmdqv, arg, DataMinSize);
        if (e != Errno.None)
        {
            Release();
            return e;
        }
        _cmdqv.Log($"VINTF{index}: allocated with vmid ({Vmid}) for vIOMMU {Core.Id}, page 0 at mmap offset 0x{MmapOffset:X}");
        return Errno.None;
    }

    /// <summary>
    /// tegra241_cmdqv_destroy_vintf_user: the mmap region goes, the VINTF is reset (queues unmapped,
    /// disabled, SID slots cleared) and freed; then the SMMUv3 half (VMID) goes.
    /// </summary>
    public override void Destroy()
    {
        Release();
        base.Destroy();
    }

    private void Release()
    {
        if (Index < 0) return;
        if (MmapOffset != 0) Core.Context.DestroyMmapsOf(Core);
        MmapOffset = 0;
        _cmdqv.VintfHwDeinit(Index);
        _cmdqv.FreeVintf(Index);
        _cmdqv.Log($"VINTF{Index}: deallocated");
        Index = -1;
    }

    // ------------------------------------------------------------------ vDEVICEs: SID slots

    /// <summary>
    /// tegra241_vintf_init_vsid: a virt_id above 32 bits is EINVAL; the lowest free slot (ENOSPC
    /// when all are taken) gets SID_REPLACE = the device's StreamID and SID_MATCH = (vSID &lt;&lt; 1) | 1.
    /// </summary>
    public override Errno VdeviceInit(VdeviceObject vdevice)
    {
        if (vdevice.VirtId > uint.MaxValue) return Errno.EINVAL;
        int slot = Array.IndexOf(_sidSlots, null);
        if (slot < 0) return Errno.ENOSPC;
        _sidSlots[slot] = vdevice;
        uint psid = vdevice.Device.Device.Profile.StreamId;
        _cmdqv.WriteSidSlot(Index, slot, (uint)vdevice.VirtId, psid);
        _cmdqv.Log($"VINTF{Index}: allocated SID_REPLACE{slot} for pSID={psid:x}, vSID={vdevice.VirtId:x}");
        return Errno.None;
    }

    /// <summary>tegra241_vintf_destroy_vsid: the slot is cleared and freed.</summary>
    public override void VdeviceDestroy(VdeviceObject vdevice)
    {
        int slot = Array.IndexOf(_sidSlots, vdevice);
        if (slot < 0) return;
        _cmdqv.ClearSidSlot(Index, slot);
        _sidSlots[slot] = null;
        _cmdqv.Log($"VINTF{Index}: deallocated SID_REPLACE{slot} for pSID={vdevice.Device.Device.Profile.StreamId:x}");
    }

    // ------------------------------------------------------------------ HW queues: logical VCMDQs

    /// <summary>tegra241_vintf_get_vcmdq_size: TEGRA241_CMDQV queues only.</summary>
    public override ulong GetHwQueueSize(uint type) => type == (uint)HwQueueType.Tegra241Cmdqv ? 1UL : 0UL;

    /// <summary>
    /// tegra241_vintf_alloc_lvcmdq_user: the logical index must be below the per-VINTF count
    /// (EINVAL), free (EEXIST) and follow an allocated one (EIO: the hardware maps in ascending
    /// order); the length a power of two from 32 bytes to 2^(IDR1.CMDQS + 4) (EINVAL); the host PA
    /// within VCMDQ ADDR [47:5] and aligned to the length (EINVAL). The queue then depends on the
    /// previous index (destroyed in descending order), its preassigned global VCMDQ is mapped
    /// (ALLOCATED) and BASE written; the guest enables it through its page 0.
    /// </summary>
    public override Errno HwQueueInitPhys(HwQueueObject queue, uint index, ulong basePhysicalAddress)
    {
        if (queue.QueueType != (uint)HwQueueType.Tegra241Cmdqv) return Errno.EOPNOTSUPP;
        if (index >= (uint)_lvcmdqs.Length) return Errno.EINVAL;
        int lidx = (int)index;
        if (_lvcmdqs[lidx] is not null) return Errno.EEXIST;
        HwQueueObject? previous = null;
        if (lidx > 0)
        {
            previous = _lvcmdqs[lidx - 1];
            if (previous is null) return Errno.EIO;
        }

        int maxShift = Smmu.Features.CmdqLog2Max;
        ulong length = queue.Length;
        if (!BitOperations.IsPow2(length) || length < MinQueueBytes || length > 1UL << (maxShift + CommandSizeShift)) return Errno.EINVAL;
        int log2Entries = BitOperations.Log2(length) - CommandSizeShift;
        if ((basePhysicalAddress & ~Hw.VCMDQ_ADDR.Mask) != 0 || (basePhysicalAddress & (length - 1)) != 0) return Errno.EINVAL;

        if (previous is not null)
        {
            // iommufd_hw_queue_depend: the lower index stays busy while this one exists.
            queue.Previous = previous;
            previous.Users++;
        }
        _lvcmdqs[lidx] = queue;
        _cmdqv.MapLvcmdq(Index, lidx);
        _cmdqv.Write64(L.Lvcmdq(Index, lidx, VcmdqPage1Register.BASE), Hw.EncodeVcmdqBase(basePhysicalAddress, log2Entries));
        _cmdqv.Log($"VINTF{Index}: VCMDQ{_cmdqv.GlobalQueue(Index, lidx)}/LVCMDQ{lidx}: inited at host PA 0x{basePhysicalAddress:x} size 0x{length:x}");
        return Errno.None;
    }

    /// <summary>
    /// tegra241_vintf_destroy_lvcmdq_user: the queue is reset through its logical page (disabled,
    /// pointers and BASE zeroed, a pending error acknowledged), then unmapped. The core drops the
    /// dependency on the previous index.
    /// </summary>
    public override void HwQueueDestroy(HwQueueObject queue)
    {
        int lidx = (int)queue.Index;
        if (Index < 0 || lidx >= _lvcmdqs.Length || _lvcmdqs[lidx] != queue) return;
        _cmdqv.VcmdqHwDeinit(Index, lidx);
        _cmdqv.UnmapLvcmdq(Index, lidx);
        _lvcmdqs[lidx] = null;
        _cmdqv.Log($"VINTF{Index}: VCMDQ{_cmdqv.GlobalQueue(Index, lidx)}/LVCMDQ{lidx}: deallocated");
    }

    // ------------------------------------------------------------------ errors

    /// <summary>
    /// tegra241_vintf_user_handle_error: the 128-bit LVCMDQ_ERR_MAP as one TEGRA241_CMDQV vEVENT
    /// (le64[2]); the guest acknowledges through its queues' GERRORN.
    /// </summary>
    public void ReportError(ulong map0, ulong map1)
    {
        Span<byte> data = stackalloc byte[Tegra241CmdqvVevent.Size];
        BinaryPrimitives.WriteUInt64LittleEndian(data, map0);
        BinaryPrimitives.WriteUInt64LittleEndian(data[sizeof(ulong)..], map1);
        if (Core.ReportEvent(VeventqType.Tegra241Cmdqv, data) == Errno.None) ErrorEventsReported++;
        else ErrorEventsDropped++;
    }
}
