using System.Numerics;
using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Uapi;
using Hw = NestedSmmu.Hardware.Cmdqv.Tegra241Cmdqv;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// The emulated kernel's tegra241-cmdqv driver for one CMDQV (drivers/iommu/arm/arm-smmu-v3/tegra241-cmdqv.c), plugged into the
/// SMMU driver through <see cref="SmmuImplementation"/> (arm_smmu_impl_ops). It owns the
/// <see cref="Tegra241Cmdqv"/> hardware, placed on the host MMIO bus at
/// <see cref="CmdqvProfile.MmioBase"/> beside its SMMU, and programs it only through MMIO:
/// <list type="bullet">
/// <item>Probe reads PARAM for the VINTF, VCMDQ and SID-slot counts; VINTF0 is the host's, with
/// one host-memory command queue per logical VCMDQ.</item>
/// <item>Reset (tegra241_cmdqv_hw_reset): CMDQV_EN off then on, every CMDQ_ALLOC preloaded with
/// its VINTF and logical index but not ALLOCATED, then VINTF0 set up with HYP_OWN = 1 and its
/// logical queues mapped in ascending order, given BASE and enabled.</item>
/// <item>iommufd: IOMMU_GET_HW_INFO of type TEGRA241_CMDQV, and vIOMMUs of type TEGRA241_CMDQV
/// (<see cref="Tegra241CmdqvVintf"/>): a guest VINTF each, with SID slots per vDEVICE, VCMDQs per
/// HW queue and its logical page 0 exported for mmap.</item>
/// <item>The interrupt (<see cref="Tegra241Cmdqv.ErrorRaised"/>, tegra241_cmdqv_isr): VINTF_ERR_MAP
/// says which VINTFs have a queue in error; VINTF0's are skipped and acknowledged as the SMMU
/// driver does for its own queue, a guest VINTF's LVCMDQ_ERR_MAP becomes a TEGRA241_CMDQV vEVENT
/// that the guest acknowledges itself.</item>
/// </list>
/// </summary>
/// <remarks>
/// Deviations from Linux: the host keeps issuing its own commands through the SMMU's main
/// command queue (Linux sends them through VINTF0's queues once they are enabled), so VINTF0's
/// queues are set up exactly as Linux sets them up but stay idle; and they hold 2^8 entries
/// (capped by IDR1.CMDQS) instead of Linux's largest queue size, to keep host memory small.
/// The interrupt is delivered synchronously from inside the register write that stopped the queue.
/// </remarks>
internal sealed class Tegra241CmdqvHostDriver : SmmuImplementation
{
    /// <summary>The VINTF the host kernel keeps for itself (HYP_OWN = 1).</summary>
    public const int HostVintf = 0;
    /// <summary>The size of each VINTF0 logical queue: 2^8 entries (4 KiB), as the SMMU driver's own command queue here.</summary>
    private const int HostLvcmdqLog2 = 8;
    /// <summary>VINTF0's VMID field: the host's commands carry their own VMIDs.</summary>
    private const ushort HostVmid = 0;
    /// <summary>The STATUS bit every CONFIG enable is polled on (CMDQV_ENABLED, VINTF_ENABLED, VCMDQ_ENABLED: bit 0).</summary>
    private const uint StatusEnabled = 1u << 0;
    /// <summary>CMDQ_CONS.ERR of the SMMU command format: [30:24].</summary>
    private static readonly RegisterField ConsErr = Hw.VCMDQ_CONS_ERR;
    private const int RegisterBits = 32;
    /// <summary>Bits per LVCMDQ_ERR_MAP_64 word.</summary>
    private const int ErrMapWordBits = 64;
    private const int Width32 = sizeof(uint);
    private const int Width64 = sizeof(ulong);

    private readonly EmulatedHost _host;
    /// <summary>VINTF index allocator (struct ida vintf_ids): the owner of each index, null when free.</summary>
    private readonly object?[] _vintfOwners;
    /// <summary>Host PA of each VINTF0 logical queue's buffer.</summary>
    private readonly ulong[] _hostQueues;
    private readonly int _hostQueueLog2;

    public Tegra241CmdqvHostDriver(ArmSmmuDevice smmu, CmdqvProfile profile) : base(smmu)
    {
        Profile = profile;
        _host = smmu.Host;
        MmioBase = profile.MmioBase;
        var options = new Tegra241CmdqvOptions
        {
            NumVintfLog2 = profile.NumVintfLog2,
            NumVcmdqLog2 = profile.NumVcmdqLog2,
            NumSidPerVmLog2 = profile.NumSidPerVmLog2,
            Version = profile.Version,
        };
        Hardware = new Tegra241Cmdqv(smmu.Hardware, _host.Memory, options, $"{smmu.Name} cmdqv");
        _host.Bus.Map(MmioBase, Hardware, Hardware.Name);
        Hardware.ErrorRaised += OnInterrupt;

        // Probe: the counts come from PARAM, as __tegra241_cmdqv_probe reads them.
        uint param = Read32((ulong)CmdqvRegister.PARAM);
        NumVintfs = 1 << (int)Hw.CMDQV_NUM_VINTF_LOG2.Get(param);
        NumVcmdqs = 1 << (int)Hw.CMDQV_NUM_VCMDQ_LOG2.Get(param);
        LvcmdqsPerVintf = NumVcmdqs / NumVintfs;
        SidsPerVintf = 1 << (int)Hw.CMDQV_NUM_SID_PER_VM_LOG2.Get(param);
        _vintfOwners = new object?[NumVintfs];

        // tegra241_cmdqv_init_structures: VINTF0 for the kernel, with every logical queue preallocated.
        _vintfOwners[HostVintf] = this;
        _hostQueueLog2 = Math.Min(HostLvcmdqLog2, smmu.Features.CmdqLog2Max);
        ulong bytes = (ulong)Command.Size << _hostQueueLog2;
        _hostQueues = new ulong[LvcmdqsPerVintf];
        for (int l = 0; l < _hostQueues.Length; l++)
        {
            _hostQueues[l] = _host.Allocator.TryAllocate(bytes, bytes, $"{smmu.Name} cmdqv vintf0 lvcmdq{l}")
                ?? throw new InvalidOperationException($"Host memory is too small for the VINTF0 queues of SMMU '{smmu.Name}'.");
        }
        Reset();
    }

    public CmdqvProfile Profile { get; }
    public ulong MmioBase { get; }
    /// <summary>The hardware this driver programs (diagnostics read its counters).</summary>
    public Tegra241Cmdqv Hardware { get; }

    public int NumVintfs { get; }
    public int NumVcmdqs { get; }
    public int LvcmdqsPerVintf { get; }
    public int SidsPerVintf { get; }

    /// <summary>Interrupts taken (tegra241_cmdqv_isr runs).</summary>
    public long Interrupts { get; private set; }
    /// <summary>Errors of VINTF0's own queues, skipped and acknowledged by the kernel.</summary>
    public long HostErrorsHandled { get; private set; }

    /// <summary>Bytes of a CMDQV register frame with the profile's VINTF count.</summary>
    public static ulong FrameSize(CmdqvProfile profile) => L.FrameSize(profile.NumVintfLog2);

    /// <summary>The guest VINTF at <paramref name="index"/>, or null (free, or VINTF0).</summary>
    public Tegra241CmdqvVintf? UserVintf(int index) => (uint)index < (uint)_vintfOwners.Length ? _vintfOwners[index] as Tegra241CmdqvVintf : null;

    /// <summary>The global VCMDQ preassigned to logical queue <paramref name="lidx"/> of VINTF <paramref name="vintf"/>.</summary>
    public int GlobalQueue(int vintf, int lidx) => vintf * LvcmdqsPerVintf + lidx;

    // ------------------------------------------------------------------ MMIO

    public uint Read32(ulong offset) => (uint)_host.Bus.Read(MmioBase + offset, Width32);
    public ulong Read64(ulong offset) => _host.Bus.Read(MmioBase + offset, Width64);
    public void Write32(ulong offset, uint value) => _host.Bus.Write(MmioBase + offset, Width32, value);
    public void Write64(ulong offset, ulong value) => _host.Bus.Write(MmioBase + offset, Width64, value);

    internal void Log(string message) => _host.Log($"tegra241-cmdqv {Smmu.Name}: {message}");

    /// <summary>
    /// tegra241_cmdqv_write_config: writes a CONFIG register and checks that STATUS.ENABLED
    /// follows its EN bit (the hardware answers at once; Linux polls with a timeout).
    /// </summary>
    private Errno WriteConfig(ulong config, ulong status, uint value, string header)
    {
        bool enable = (value & StatusEnabled) != 0;
        Write32(config, value);
        uint now = Read32(status);
        if (((now & StatusEnabled) != 0) == enable) return Errno.None;
        Log($"{header}failed to {(enable ? "en" : "dis")}able, STATUS=0x{now:X8}");
        return Errno.ETIMEDOUT;
    }

    // ------------------------------------------------------------------ reset

    /// <summary>tegra241_cmdqv_hw_reset, run at the end of the SMMU's device reset.</summary>
    private void Reset()
    {
        uint config = Read32((ulong)CmdqvRegister.CONFIG);
        if (WriteConfig((ulong)CmdqvRegister.CONFIG, (ulong)CmdqvRegister.STATUS, config & ~Hw.CMDQV_EN, "CMDQV: ") != Errno.None) return;
        if (WriteConfig((ulong)CmdqvRegister.CONFIG, (ulong)CmdqvRegister.STATUS, config | Hw.CMDQV_EN, "CMDQV: ") != Errno.None) return;

        // Every global VCMDQ is preassigned to (VINTF, logical index); mapping one later only sets ALLOCATED.
        for (int v = 0, q = 0; v < NumVintfs; v++)
        {
            for (int l = 0; l < LvcmdqsPerVintf; l++) Write32(L.CmdqAlloc(q++), Hw.EncodeCmdqAlloc(v, l, allocated: false));
        }

        Errno e = VintfHwInit(HostVintf, HostVmid, hypOwn: true, out bool hypOwn);
        Log(e == Errno.None
            ? $"enabled at 0x{MmioBase:X}: {NumVintfs} VINTFs, {NumVcmdqs} VCMDQs ({LvcmdqsPerVintf} per VINTF), {SidsPerVintf} SID slots per VINTF; VINTF0 {(hypOwn ? "hypervisor-owned" : "guest-owned")}"
            : $"VINTF0 init failed: {e.Name()}");
    }

    /// <summary>
    /// tegra241_vintf_hw_init: resets the VINTF, programs CONFIG with HYP_OWN and VMID, enables
    /// it, reads HYP_OWN back, then maps and initialises the logical queues the kernel owns (VINTF0
    /// only: a guest VINTF starts without any, its queues come from IOMMU_HW_QUEUE_ALLOC).
    /// </summary>
    public Errno VintfHwInit(int vintf, ushort vmid, bool hypOwn, out bool hypOwnReadBack)
    {
        hypOwnReadBack = false;
        VintfHwDeinit(vintf);
        ulong config = L.Vintf(vintf, VintfRegister.CONFIG);
        uint value = Hw.EncodeVintfConfig(enable: false, vmid, hypOwn);
        Write32(config, value);
        Errno e = WriteConfig(config, L.Vintf(vintf, VintfRegister.STATUS), value | Hw.VINTF_EN, $"VINTF{vintf}: ");
        if (e != Errno.None) return e;
        hypOwnReadBack = (Read32(config) & Hw.VINTF_HYP_OWN) != 0;
        if (vintf != HostVintf) return Errno.None;
        // The hardware wants logical queues mapped in ascending order.
        for (int l = 0; l < LvcmdqsPerVintf; l++)
        {
            MapLvcmdq(vintf, l);
            e = VcmdqHwInit(vintf, l, Hw.EncodeVcmdqBase(_hostQueues[l], _hostQueueLog2));
            if (e != Errno.None)
            {
                VintfHwDeinit(vintf);
                return e;
            }
        }
        return Errno.None;
    }

    /// <summary>
    /// tegra241_vintf_hw_deinit: the mapped logical queues are reset and unmapped in descending
    /// order, the VINTF disabled, and every SID_MATCH/SID_REPLACE slot cleared.
    /// </summary>
    public void VintfHwDeinit(int vintf)
    {
        for (int l = LvcmdqsPerVintf - 1; l >= 0; l--)
        {
            if (!IsMapped(vintf, l)) continue;
            VcmdqHwDeinit(vintf, l);
            UnmapLvcmdq(vintf, l);
        }
        WriteConfig(L.Vintf(vintf, VintfRegister.CONFIG), L.Vintf(vintf, VintfRegister.STATUS), 0, $"VINTF{vintf}: ");
        for (int s = 0; s < SidsPerVintf; s++)
        {
            Write32(L.SidMatch(vintf, s), 0);
            Write32(L.SidReplace(vintf, s), 0);
        }
    }

    /// <summary>tegra241_vcmdq_hw_init for a kernel-owned queue: reset, BASE, then enable.</summary>
    private Errno VcmdqHwInit(int vintf, int lidx, ulong qBase)
    {
        VcmdqHwDeinit(vintf, lidx);
        Write64(L.Lvcmdq(vintf, lidx, VcmdqPage1Register.BASE), qBase);
        return WriteConfig(L.Lvcmdq(vintf, lidx, VcmdqPage0Register.CONFIG), L.Lvcmdq(vintf, lidx, VcmdqPage0Register.STATUS),
            Hw.VCMDQ_EN, QueueHeader(vintf, lidx));
    }

    /// <summary>
    /// tegra241_vcmdq_hw_deinit, through the logical page (the queue must still be mapped):
    /// disable, flush a pending ATC_INV timeout with a CMD_SYNC on the SMMU's own queue, zero
    /// PROD, CONS, BASE and CONS_INDX_BASE, and acknowledge a leftover error (GERRORN = GERROR).
    /// </summary>
    public void VcmdqHwDeinit(int vintf, int lidx)
    {
        string header = QueueHeader(vintf, lidx);
        if (WriteConfig(L.Lvcmdq(vintf, lidx, VcmdqPage0Register.CONFIG), L.Lvcmdq(vintf, lidx, VcmdqPage0Register.STATUS), 0, header) != Errno.None)
        {
            Log($"{header}GERRORN=0x{Read32(L.Lvcmdq(vintf, lidx, VcmdqPage0Register.GERRORN)):X}, " +
                $"GERROR=0x{Read32(L.Lvcmdq(vintf, lidx, VcmdqPage0Register.GERROR)):X}, CONS=0x{Read32(L.Lvcmdq(vintf, lidx, VcmdqPage0Register.CONS)):X}");
        }
        Smmu.Submit(ReadOnlySpan<Command>.Empty, sync: true);
        Write32(L.Lvcmdq(vintf, lidx, VcmdqPage0Register.PROD), 0);
        Write32(L.Lvcmdq(vintf, lidx, VcmdqPage0Register.CONS), 0);
        Write64(L.Lvcmdq(vintf, lidx, VcmdqPage1Register.BASE), 0);
        Write64(L.Lvcmdq(vintf, lidx, VcmdqPage1Register.CONS_INDX_BASE), 0);
        uint gerrorn = Read32(L.Lvcmdq(vintf, lidx, VcmdqPage0Register.GERRORN));
        uint gerror = Read32(L.Lvcmdq(vintf, lidx, VcmdqPage0Register.GERROR));
        if (gerror != gerrorn)
        {
            Log($"{header}uncleared error detected, resetting");
            Write32(L.Lvcmdq(vintf, lidx, VcmdqPage0Register.GERRORN), gerror);
        }
    }

    /// <summary>tegra241_vcmdq_map_lvcmdq: sets ALLOCATED in the preassigned CMDQ_ALLOC.</summary>
    public void MapLvcmdq(int vintf, int lidx)
    {
        ulong alloc = L.CmdqAlloc(GlobalQueue(vintf, lidx));
        Write32(alloc, Read32(alloc) | Hw.CMDQV_CMDQ_ALLOCATED);
    }

    /// <summary>tegra241_vcmdq_unmap_lvcmdq: clears ALLOCATED.</summary>
    public void UnmapLvcmdq(int vintf, int lidx)
    {
        ulong alloc = L.CmdqAlloc(GlobalQueue(vintf, lidx));
        Write32(alloc, Read32(alloc) & ~Hw.CMDQV_CMDQ_ALLOCATED);
    }

    private bool IsMapped(int vintf, int lidx) => (Read32(L.CmdqAlloc(GlobalQueue(vintf, lidx))) & Hw.CMDQV_CMDQ_ALLOCATED) != 0;

    private string QueueHeader(int vintf, int lidx) => $"VINTF{vintf}: VCMDQ{GlobalQueue(vintf, lidx)}/LVCMDQ{lidx}: ";

    // ------------------------------------------------------------------ VINTF allocation

    /// <summary>ida_alloc_max(vintf_ids, num_vintfs - 1): the lowest free VINTF, or null (ENOSPC).</summary>
    public int? AllocVintf(Tegra241CmdqvVintf owner)
    {
        for (int v = 0; v < _vintfOwners.Length; v++)
        {
            if (_vintfOwners[v] is not null) continue;
            _vintfOwners[v] = owner;
            return v;
        }
        return null;
    }

    /// <summary>tegra241_cmdqv_deinit_vintf: the index goes back to the allocator.</summary>
    public void FreeVintf(int vintf)
    {
        if (vintf != HostVintf && (uint)vintf < (uint)_vintfOwners.Length) _vintfOwners[vintf] = null;
    }

    /// <summary>The host physical address of VINTF <paramref name="vintf"/>'s logical page 0 (what a guest gets mapped).</summary>
    public ulong VintfPage0PhysicalAddress(int vintf) => MmioBase + L.VintfPage0(vintf);

    /// <summary>Writes SID_REPLACE then SID_MATCH of one slot: pSID, and (vSID &lt;&lt; 1) | 1.</summary>
    public void WriteSidSlot(int vintf, int slot, uint vsid, uint psid)
    {
        Write32(L.SidReplace(vintf, slot), Hw.EncodeSidReplace(psid));
        Write32(L.SidMatch(vintf, slot), Hw.EncodeSidMatch(vsid));
    }

    /// <summary>Clears one SID slot (tegra241_vintf_destroy_vsid).</summary>
    public void ClearSidSlot(int vintf, int slot)
    {
        Write32(L.SidMatch(vintf, slot), 0);
        Write32(L.SidReplace(vintf, slot), 0);
    }

    // ------------------------------------------------------------------ diagnostics

    /// <summary>A snapshot of VINTF <paramref name="vintf"/>: its registers, owner and counters.</summary>
    public VintfDiagnostics Snapshot(int vintf)
    {
        uint config = Read32(L.Vintf(vintf, VintfRegister.CONFIG));
        uint status = Read32(L.Vintf(vintf, VintfRegister.STATUS));
        var slots = new List<CmdqvSidSlot>();
        for (int s = 0; s < SidsPerVintf; s++)
        {
            uint match = Read32(L.SidMatch(vintf, s));
            if ((match & Hw.SID_MATCH_ENABLE) == 0) continue;
            slots.Add(new CmdqvSidSlot(s, (uint)Hw.SID_MATCH_VIRT_SID.Get(match),
                (uint)Hw.SID_REPLACE_PHYS_SID.Get(Read32(L.SidReplace(vintf, s)))));
        }
        var queues = new int?[LvcmdqsPerVintf];
        for (int l = 0; l < queues.Length; l++) queues[l] = IsMapped(vintf, l) ? GlobalQueue(vintf, l) : null;
        Tegra241CmdqvVintf? owner = UserVintf(vintf);
        return new VintfDiagnostics(Smmu.Name, vintf, (status & Hw.VINTF_ENABLED) != 0, (config & Hw.VINTF_HYP_OWN) != 0,
            (ushort)Hw.VINTF_VMID.Get(config), owner?.Core.Id, owner?.MmapOffset, slots, queues, Hardware.VintfCounters(vintf),
            owner?.ErrorEventsReported ?? 0, owner?.ErrorEventsDropped ?? 0);
    }

    /// <summary>A snapshot of the whole CMDQV.</summary>
    public CmdqvDiagnostics Snapshot() => new(Smmu.Name, MmioBase,
        (Read32((ulong)CmdqvRegister.STATUS) & Hw.CMDQV_ENABLED) != 0, NumVintfs, NumVcmdqs, LvcmdqsPerVintf, SidsPerVintf,
        Hardware.Counters, Interrupts, HostErrorsHandled, [.. Enumerable.Range(0, NumVintfs).Select(Snapshot)]);

    // ------------------------------------------------------------------ iommufd hooks

    /// <summary>
    /// tegra241_cmdqv_hw_info: version = PARAM.VER, log2vcmdqs = log2 of the logical queues per
    /// VINTF, log2vsids = log2 of the SID slots per VINTF. EOPNOTSUPP for any other type.
    /// </summary>
    public override Errno GetHwInfo(HwInfoType type, out byte[] data)
    {
        data = [];
        if (type != HwInfoType.Tegra241Cmdqv) return Errno.EOPNOTSUPP;
        uint param = Read32((ulong)CmdqvRegister.PARAM);
        data = new Tegra241CmdqvHwInfo(0, (byte)Hw.CMDQV_VER.Get(param),
            (byte)BitOperations.Log2((uint)LvcmdqsPerVintf), (byte)BitOperations.Log2((uint)SidsPerVintf)).ToBytes();
        return Errno.None;
    }

    /// <summary>tegra241_cmdqv_get_vintf_size: TEGRA241_CMDQV only.</summary>
    public override bool SupportsViommuType(uint type) => type == (uint)ViommuType.Tegra241Cmdqv;

    /// <summary>arm_vsmmu_init's half for this type: the SMMUv3 vIOMMU (VMID) that will own a VINTF.</summary>
    public override Errno InitViommu(uint type, PagingDomain parent, out ArmVsmmu? driver)
    {
        driver = null;
        if (type != (uint)ViommuType.Tegra241Cmdqv) return Errno.EOPNOTSUPP;
        Errno e = Tegra241CmdqvVintf.TryCreate(this, parent, out Tegra241CmdqvVintf? vintf);
        driver = vintf;
        return e;
    }

    /// <summary>tegra241_cmdqv_init_vintf_user: the driver data, a VINTF, its mmap region.</summary>
    public override Errno InitViommuData(ArmVsmmu driver, in UserData? data) =>
        driver is Tegra241CmdqvVintf vintf ? vintf.Init(data) : Errno.EOPNOTSUPP;

    // ------------------------------------------------------------------ interrupt

    /// <summary>
    /// tegra241_cmdqv_isr: reads VINTF_ERR_MAP (two 32-bit reads: the register is not 8-byte
    /// aligned) and the CMDQ_ERR_MAPs for the log; VINTF0's queues are handled by the kernel, every
    /// other VINTF in the map reports its LVCMDQ_ERR_MAP to its vIOMMU. The record the hardware
    /// passes is not used: the registers are the interface.
    /// </summary>
    private void OnInterrupt(VcmdqError _)
    {
        Interrupts++;
        ulong vintfMap = Read32((ulong)CmdqvRegister.VINTF_ERR_MAP) | ((ulong)Read32((ulong)CmdqvRegister.VINTF_ERR_MAP_H) << RegisterBits);
        var vcmdqMap = new List<string>(L.CmdqErrMapWords);
        for (int m = L.CmdqErrMapWords - 1; m >= 0; m--) vcmdqMap.Add($"{Read32(L.CmdqErrMap(m)):x8}");
        Log($"unexpected error reported. vintf_map: {vintfMap:x16}, vcmdq_map {string.Join(":", vcmdqMap)}");

        if ((vintfMap & (1UL << HostVintf)) != 0)
        {
            HandleHostVintfError();
            vintfMap &= ~(1UL << HostVintf);
        }
        while (vintfMap != 0)
        {
            int v = BitOperations.TrailingZeroCount(vintfMap);
            vintfMap &= vintfMap - 1;
            if (UserVintf(v) is { } vintf)
                vintf.ReportError(Read64(L.LvcmdqErrMap64(v, 0)), Read64(L.LvcmdqErrMap64(v, 1)));
            else
                Log($"VINTF{v}: error on a VINTF no vIOMMU owns");
        }
    }

    /// <summary>tegra241_vintf0_handle_error: skip the failing command of each queue in error, then acknowledge.</summary>
    private void HandleHostVintfError()
    {
        for (int m = 0; m < L.LvcmdqErrMapWords; m++)
        {
            ulong map = Read64(L.LvcmdqErrMap64(HostVintf, m));
            while (map != 0)
            {
                int lidx = m * ErrMapWordBits + BitOperations.TrailingZeroCount(map);
                map &= map - 1;
                if (lidx >= LvcmdqsPerVintf) continue;
                uint gerror = Read32(L.Lvcmdq(HostVintf, lidx, VcmdqPage0Register.GERROR));
                SkipHostQueueError(lidx);
                Write32(L.Lvcmdq(HostVintf, lidx, VcmdqPage0Register.GERRORN), gerror);
                HostErrorsHandled++;
            }
        }
    }

    /// <summary>__arm_smmu_cmdq_skip_err on a VINTF0 queue: an illegal command is replaced by a CMD_SYNC.</summary>
    private void SkipHostQueueError(int lidx)
    {
        uint cons = Read32(L.Lvcmdq(HostVintf, lidx, VcmdqPage0Register.CONS));
        var error = (CommandError)ConsErr.Get(cons);
        if (error != CommandError.CERROR_ILL)
        {
            Log($"{QueueHeader(HostVintf, lidx)}CMDQ error {error} at CONS 0x{cons & Hw.VCMDQ_CONS_RD.Mask:X}");
            return;
        }
        uint index = (uint)(Hw.VCMDQ_CONS_RD.Get(cons) & ((1UL << _hostQueueLog2) - 1));
        ulong address = _hostQueues[lidx] + index * (ulong)Command.Size;
        Command sync = Command.Sync();
        Log($"{QueueHeader(HostVintf, lidx)}illegal command at CONS 0x{cons & Hw.VCMDQ_CONS_RD.Mask:X}, skipped");
        _host.Memory.WriteUInt64(address, sync.W0);
        _host.Memory.WriteUInt64(address + sizeof(ulong), sync.W1);
    }
}
