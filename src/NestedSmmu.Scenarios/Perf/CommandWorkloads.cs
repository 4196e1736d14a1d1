using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Scenarios.SelfChecks;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Scenarios.Perf;

/// <summary>
/// A driver's mix of invalidations, repeated every eight commands: four range TLBI_NH_VA (leaf),
/// TLBI_NH_ASID, ATC_INV, a single-address TLBI_NH_VA (non-leaf) and a CMD_SYNC. Only commands a
/// guest VCMDQ admits (Linux's tegra241-cmdqv guest filter), so the same stream runs on the SMMU's
/// own queue, a guest-owned VCMDQ and (without the syncs, which the kernel adds per batch) the
/// emulated kernel's vIOMMU invalidate.
/// </summary>
public static class InvalidationStream
{
    /// <summary>The StreamID ATC_INV names (a vSID where one is rewritten, mapped to itself).</summary>
    public const uint Sid = 0x10;

    public static Command At(int i, ushort vmid, bool syncs = true) => (i % 8) switch
    {
        7 when syncs => Command.Sync(),
        7 => Command.TlbiNhAsid(vmid, (ushort)(i & 0xFF)),
        4 => Command.TlbiNhAsid(vmid, (ushort)(i & 0xFF)),
        5 => Command.AtcInv(Sid, null, 0x1000UL * (ulong)i, 0),
        6 => Command.TlbiNhVa(vmid, (ushort)(i & 0xFF), 0x1000UL * (ulong)i),
        _ => Command.TlbiNhVa(vmid, (ushort)(i & 0xFF), 0x1000UL * (ulong)i, leaf: true, tg: 1, num: 3),
    };

    /// <summary>The SMMU the hardware workloads run on: QEMU's virt SMMUv3 features with ATS (for ATC_INV).</summary>
    public static SmmuFeatures Features => SmmuFeatures.QemuVirtNested with { Ats = true };
}

/// <summary>
/// The stream through the SMMU's command queue: a ring of 2^<see cref="Log2"/> commands written
/// once, consumed whole by each CMDQ_PROD write (advancing PROD by the ring size wraps it).
/// </summary>
public sealed class CmdqWorkload
{
    public const int Log2 = 12;
    public const int Batch = 1 << Log2;
    private const ulong CmdqBase = 0x5000_0000;
    private readonly SmmuV3 _smmu;
    private uint _prod;

    public CmdqWorkload()
    {
        var mem = new SparseMemory();
        _smmu = new SmmuV3(mem, InvalidationStream.Features);
        for (int i = 0; i < Batch; i++)
        {
            var c = InvalidationStream.At(i, 1);
            mem.WriteUInt64s(CmdqBase + (ulong)i * Command.Size, [c.W0, c.W1]);
        }
        _smmu.WriteRegister(SmmuRegister.CMDQ_BASE, CmdqBase | Log2);
        _smmu.WriteRegister(SmmuRegister.CR0, SmmuV3.CR0_CMDQEN);
    }

    public SmmuV3 Smmu => _smmu;

    /// <summary>Runs <see cref="Batch"/> commands.</summary>
    public long ConsumeBatch()
    {
        _prod = (_prod + Batch) & ((2u << Log2) - 1);
        _smmu.WriteRegister(SmmuRegister.CMDQ_PROD, _prod);
        return _smmu.Counters.CommandsExecuted;
    }
}

/// <summary>
/// The stream through a guest-owned Tegra241 VCMDQ: VINTF 1 (VMID 1, not HYP_OWN) with one
/// logical queue, vSID <see cref="InvalidationStream.Sid"/> matched to itself, PROD written through
/// the VINTF's logical page (the page a VMM maps into the guest). The CMDQV filters each command,
/// inserts the VMID and replaces the SID, then the SMMU runs it.
/// </summary>
public sealed class VcmdqWorkload
{
    public const int Log2 = 12;
    public const int Batch = 1 << Log2;
    private const int Vintf = 1, Queue = 0, Lvcmdq = 0;
    private const ulong Buffer = 0x6000_0000;
    private readonly Tegra241Cmdqv _cmdqv;
    private uint _prod;

    public VcmdqWorkload()
    {
        var mem = new SparseMemory();
        Smmu = new SmmuV3(mem, InvalidationStream.Features);
        _cmdqv = new Tegra241Cmdqv(Smmu, mem);
        void W(ulong offset, uint value) => _cmdqv.Write(offset, sizeof(uint), value);
        W((ulong)CmdqvRegister.CONFIG, Tegra241Cmdqv.CONFIG_ResetValue);
        W(L.Vintf(Vintf, VintfRegister.CONFIG), Tegra241Cmdqv.EncodeVintfConfig(true, 1, hypOwn: false));
        W(L.SidReplace(Vintf, 0), Tegra241Cmdqv.EncodeSidReplace(InvalidationStream.Sid));
        W(L.SidMatch(Vintf, 0), Tegra241Cmdqv.EncodeSidMatch(InvalidationStream.Sid));
        W(L.CmdqAlloc(Queue), Tegra241Cmdqv.EncodeCmdqAlloc(Vintf, Lvcmdq));
        _cmdqv.Write(L.Lvcmdq(Vintf, Lvcmdq, VcmdqPage1Register.BASE), sizeof(ulong), Tegra241Cmdqv.EncodeVcmdqBase(Buffer, Log2));
        W(L.Lvcmdq(Vintf, Lvcmdq, VcmdqPage0Register.CONFIG), Tegra241Cmdqv.VCMDQ_EN);
        for (int i = 0; i < Batch; i++)
        {
            // The guest writes VMID 0; the CMDQV inserts the VINTF's.
            var c = InvalidationStream.At(i, 0);
            mem.WriteUInt64s(Buffer + (ulong)i * Command.Size, [c.W0, c.W1]);
        }
    }

    public SmmuV3 Smmu { get; }

    /// <summary>Runs <see cref="Batch"/> commands; throws if the CMDQV refused one (the stream is legal).</summary>
    public long ConsumeBatch()
    {
        _prod = (_prod + Batch) & ((2u << Log2) - 1);
        _cmdqv.Write(L.Lvcmdq(Vintf, Lvcmdq, VcmdqPage0Register.PROD), sizeof(uint), _prod);
        return Smmu.Counters.CommandsExecuted;
    }

    /// <summary>Whether the queue stopped on an error (CONS.ERR set).</summary>
    public bool Errored => Tegra241Cmdqv.VCMDQ_CONS_ERR.Get(_cmdqv.Read(L.Lvcmdq(Vintf, Lvcmdq, VcmdqPage0Register.CONS), sizeof(uint))) != 0;
}

/// <summary>
/// The stream, without CMD_SYNC, through the emulated kernel's IOMMU_HWPT_INVALIDATE on a vIOMMU
/// (the trapped path's host half): the kernel checks each command, rewrites the vSID and VMID, and
/// runs them on the physical SMMU in batches each ended by its own CMD_SYNC.
/// </summary>
public sealed class ViommuInvalidateWorkload
{
    public const int Batch = 64;
    private readonly ulong[] _words;

    public ViommuInvalidateWorkload()
    {
        var host = new EmulatedHost(HostProfile.LoadEmbedded("small"), new EmulatedHostOptions());
        Iommufd = host.Open();
        var vm = GuestVm.Create(Iommufd, 0x100_0000);
        var (dev, _, viommu) = vm.NestedSetup("gpu0");
        Iommufd.AllocVdevice(viommu, dev, InvalidationStream.Sid);
        Viommu = viommu;
        _words = new ulong[Batch * 2];
        for (int i = 0; i < Batch; i++)
        {
            var c = InvalidationStream.At(i, 0, syncs: false);
            (_words[2 * i], _words[2 * i + 1]) = (c.W0, c.W1);
        }
    }

    public IIommufd Iommufd { get; }
    public ViommuId Viommu { get; }

    /// <summary>One ioctl of <see cref="Batch"/> commands; returns the entries handled.</summary>
    public uint InvalidateBatch()
    {
        var r = Iommufd.InvalidateArmSmmuV3(Viommu, _words);
        if (!r.Succeeded) throw new InvalidOperationException($"vIOMMU invalidate failed after {r.EntriesHandled} entries: {r}");
        return r.EntriesHandled;
    }
}
