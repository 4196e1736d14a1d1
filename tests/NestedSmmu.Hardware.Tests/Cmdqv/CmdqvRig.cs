using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Hardware.Tests.Cmdqv;

/// <summary>Which MMIO window a test drives a VCMDQ through.</summary>
public enum QueueAlias
{
    /// <summary>The global VCMDQ pages at 64K/128K + 0x80 q (the host's view).</summary>
    Global,
    /// <summary>The VINTF's logical pages at 0x30000 + 128K v + 0x80 l (the page mapped into a guest).</summary>
    Logical,
}

/// <summary>
/// A host with one SMMU (stage 1 and 2, ATS), its CMDQV and host memory, plus helpers that program
/// them the way Linux's drivers do: stage-1 streams with an S2VMID so the IOTLB holds VMID-tagged
/// entries, VINTFs, VCMDQ allocation, and command submission through either MMIO alias.
/// </summary>
public sealed class CmdqvRig
{
    public const ulong StreamTable = 0x0010_0000;
    public const int StreamTableLog2 = 8;
    public const ulong ContextDescriptors = 0x0020_0000;
    public const ulong TablePool = 0x0030_0000;
    public const ulong DataPages = 0x0100_0000;
    public const ulong QueueBuffers = 0x0800_0000;
    public const ulong QueueBufferStride = 0x0010_0000;
    public const uint StreamTableLinear = 0;
    public const int T0sz39BitVa = 25;

    // VMSAv8-64 descriptor bits (Arm ARM D8.3): valid/table, AF, AP[1] (EL0 access), nG.
    private const ulong DescValid = 1UL << 0, DescTableOrPage = 1UL << 1, DescAf = 1UL << 10, DescApUnpriv = 1UL << 6, DescNg = 1UL << 11;
    private const ulong PageSize = 0x1000;

    private readonly Dictionary<int, (int Vintf, int Lvcmdq)> _logical = new();
    private ulong _nextTable = TablePool;
    private readonly ulong _l1;

    public CmdqvRig(Tegra241CmdqvOptions? options = null, SmmuFeatures? features = null)
    {
        Memory = new SparseMemory();
        Smmu = new SmmuV3(Memory, features ?? new SmmuFeatures { Ats = true });
        Cmdqv = new Tegra241Cmdqv(Smmu, Memory, options);
        Smmu.WriteRegister(SmmuRegister.STRTAB_BASE, StreamTable);
        Smmu.WriteRegister(SmmuRegister.STRTAB_BASE_CFG, StreamTableLog2 | (StreamTableLinear << 16));
        Smmu.WriteRegister(SmmuRegister.CR0, SmmuV3.CR0_SMMUEN);
        _l1 = AllocateTable();
        Cmdqv.ErrorRaised += e => Errors.Add(e);
    }

    public SparseMemory Memory { get; }
    public SmmuV3 Smmu { get; }
    public Tegra241Cmdqv Cmdqv { get; }
    public List<VcmdqError> Errors { get; } = new();

    // ---- SMMU side: streams and translations that fill the IOTLB ----

    /// <summary>A stage-1 stream whose TLB entries carry <paramref name="vmid"/> (STE.S2VMID) and <paramref name="asid"/>, sharing one set of page tables.</summary>
    public void AddStage1Stream(uint sid, ushort vmid, ushort asid)
    {
        ulong cd = ContextDescriptors + sid * (ulong)ContextDescriptor.Size;
        var desc = ContextDescriptor.Create(_l1, asid, T0sz39BitVa);
        Memory.WriteUInt64s(cd, [desc.W0, desc.W1, desc.W2, desc.W3, desc.W4, desc.W5, desc.W6, desc.W7]);
        // StreamTableEntry.Create fills word 2 only for stage-2 configs; a stage-1 STE still tags its TLB entries with S2VMID [143:128].
        var ste = StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: cd) with { W2 = vmid };
        Span<ulong> words = stackalloc ulong[StreamTableEntry.Words];
        ste.CopyTo(words);
        Memory.WriteUInt64s(StreamTable + sid * (ulong)StreamTableEntry.Size, words);
    }

    /// <summary>Maps 4 KiB at <paramref name="va"/> to <paramref name="pa"/> (non-global, EL0 read/write).</summary>
    public void MapPage(ulong va, ulong pa)
    {
        ulong table = _l1;
        for (int level = 1; level < 3; level++)
        {
            ulong slot = table + ((va >> (39 - 9 * level)) & 0x1FF) * sizeof(ulong);
            ulong desc = Memory.ReadUInt64(slot);
            if ((desc & DescValid) == 0)
            {
                desc = AllocateTable() | DescValid | DescTableOrPage;
                Memory.WriteUInt64(slot, desc);
            }
            table = desc & 0x0000_FFFF_FFFF_F000;
        }
        Memory.WriteUInt64(table + ((va >> 12) & 0x1FF) * sizeof(ulong), pa | DescValid | DescTableOrPage | DescAf | DescApUnpriv | DescNg);
    }

    public TranslationResult Translate(uint sid, ulong va) => Smmu.Translate(sid, null, va, AccessKind.Read);

    public bool TlbHas(ushort vmid, ushort asid, ulong va) =>
        Smmu.Tlb.Entries.Any(e => e.Vmid == vmid && e.Asid == asid && e.Covers(va));

    private ulong AllocateTable()
    {
        ulong t = _nextTable;
        _nextTable += PageSize;
        return t;
    }

    // ---- CMDQV side, as the host kernel programs it ----

    public uint Read32(ulong offset) => (uint)Cmdqv.Read(offset, sizeof(uint));
    public void Write32(ulong offset, uint value) => Cmdqv.Write(offset, sizeof(uint), value);

    public void EnableCmdqv(bool on = true) => Write32((ulong)CmdqvRegister.CONFIG, on ? Tegra241Cmdqv.CONFIG_ResetValue : Tegra241Cmdqv.CONFIG_ResetValue & ~Tegra241Cmdqv.CMDQV_EN);

    public void ConfigureVintf(int vintf, ushort vmid, bool hypOwn, bool enable = true) =>
        Write32(L.Vintf(vintf, VintfRegister.CONFIG), Tegra241Cmdqv.EncodeVintfConfig(enable, vmid, hypOwn));

    /// <summary>Slot <paramref name="slot"/> of <paramref name="vintf"/>: vSID to pSID, as the kernel's vDEVICE allocation writes it.</summary>
    public void MapSid(int vintf, int slot, uint vsid, uint psid)
    {
        Write32(L.SidReplace(vintf, slot), Tegra241Cmdqv.EncodeSidReplace(psid));
        Write32(L.SidMatch(vintf, slot), Tegra241Cmdqv.EncodeSidMatch(vsid));
    }

    public void Allocate(int queue, int vintf, int lvcmdq)
    {
        Write32(L.CmdqAlloc(queue), Tegra241Cmdqv.EncodeCmdqAlloc(vintf, lvcmdq));
        _logical[queue] = (vintf, lvcmdq);
    }

    public static ulong BufferOf(int queue) => QueueBuffers + (ulong)queue * QueueBufferStride;

    /// <summary>Writes BASE (the kernel's HW_QUEUE step) and CONFIG.EN (the guest's), returning the buffer's address.</summary>
    public ulong SetUpQueue(int queue, int log2Entries, QueueAlias alias = QueueAlias.Global, bool enable = true)
    {
        ulong buffer = BufferOf(queue);
        Cmdqv.Write(Page1(queue, VcmdqPage1Register.BASE, alias), sizeof(ulong), Tegra241Cmdqv.EncodeVcmdqBase(buffer, log2Entries));
        if (enable) Write32(Page0(queue, VcmdqPage0Register.CONFIG, alias), Tegra241Cmdqv.VCMDQ_EN);
        return buffer;
    }

    /// <summary>The usual host bring-up: CMDQV on, VINTF0 the host's (HYP_OWN), queue 0 as its logical queue 0.</summary>
    public void BringUpHost(int log2Entries = 8)
    {
        EnableCmdqv();
        Allocate(0, 0, 0);
        ConfigureVintf(0, 0, hypOwn: true);
        SetUpQueue(0, log2Entries);
    }

    /// <summary>A guest VINTF with one queue: what VIOMMU_ALLOC plus HW_QUEUE_ALLOC plus the guest's enable amount to.</summary>
    public void BringUpGuest(int vintf, ushort vmid, int queue, int lvcmdq = 0, int log2Entries = 8)
    {
        EnableCmdqv();
        ConfigureVintf(vintf, vmid, hypOwn: false);
        Allocate(queue, vintf, lvcmdq);
        SetUpQueue(queue, log2Entries, QueueAlias.Logical);
    }

    public ulong Page0(int queue, VcmdqPage0Register register, QueueAlias alias) => alias == QueueAlias.Global
        ? L.Vcmdq(queue, register)
        : L.Lvcmdq(_logical[queue].Vintf, _logical[queue].Lvcmdq, register);

    public ulong Page1(int queue, VcmdqPage1Register register, QueueAlias alias) => alias == QueueAlias.Global
        ? L.Vcmdq(queue, register)
        : L.Lvcmdq(_logical[queue].Vintf, _logical[queue].Lvcmdq, register);

    public uint Cons(int queue, QueueAlias alias = QueueAlias.Global) => Read32(Page0(queue, VcmdqPage0Register.CONS, alias));
    public uint Prod(int queue, QueueAlias alias = QueueAlias.Global) => Read32(Page0(queue, VcmdqPage0Register.PROD, alias));
    public uint ConsErr(int queue) => (uint)Tegra241Cmdqv.VCMDQ_CONS_ERR.Get(Cons(queue));
    public uint Gerror(int queue) => Read32(L.Vcmdq(queue, VcmdqPage0Register.GERROR));
    public uint Gerrorn(int queue) => Read32(L.Vcmdq(queue, VcmdqPage0Register.GERRORN));

    /// <summary>Queue geometry as the driver sees it, from BASE: the same wrap arithmetic the hardware uses.</summary>
    public SmmuQueue View(int queue)
    {
        ulong b = Cmdqv.Read(L.Vcmdq(queue, VcmdqPage1Register.BASE), sizeof(ulong));
        var q = new SmmuQueue(Command.Size);
        q.Configure(b & Tegra241Cmdqv.VCMDQ_ADDR.Mask, (int)Tegra241Cmdqv.VCMDQ_LOG2SIZE.Get(b), Tegra241Cmdqv.VCMDQ_LOG2SIZE_MAX);
        q.Prod = Prod(queue);
        q.Cons = (uint)Tegra241Cmdqv.VCMDQ_CONS_RD.Get(Cons(queue));
        return q;
    }

    /// <summary>Writes <paramref name="commands"/> at PROD and then publishes them with one PROD write through <paramref name="alias"/>.</summary>
    public void Submit(int queue, QueueAlias alias, params Command[] commands)
    {
        var q = View(queue);
        uint prod = q.Prod;
        foreach (var c in commands)
        {
            Memory.WriteUInt64s(q.EntryAddress(prod), [c.W0, c.W1]);
            prod = q.Next(prod);
        }
        Write32(Page0(queue, VcmdqPage0Register.PROD, alias), prod);
    }

    public void Submit(int queue, params Command[] commands) => Submit(queue, QueueAlias.Logical, commands);

    /// <summary>Overwrites the entry at <paramref name="pointer"/> (what Linux's error handler does with a bad command).</summary>
    public void Replace(int queue, uint pointer, Command command) =>
        Memory.WriteUInt64s(View(queue).EntryAddress(pointer), [command.W0, command.W1]);

    /// <summary>Acknowledges the queue's errors the Linux way: GERRORN = GERROR.</summary>
    public void Acknowledge(int queue, QueueAlias alias = QueueAlias.Global) =>
        Write32(Page0(queue, VcmdqPage0Register.GERRORN, alias), Read32(Page0(queue, VcmdqPage0Register.GERROR, alias)));

    public ulong VintfErrMap() => Cmdqv.Read((ulong)CmdqvRegister.VINTF_ERR_MAP, sizeof(uint)) | ((ulong)Read32((ulong)CmdqvRegister.VINTF_ERR_MAP_H) << 32);
    public uint CmdqErrMap(int m) => Read32(L.CmdqErrMap(m));
    public ulong LvcmdqErrMap(int vintf, int m) => Cmdqv.Read(L.LvcmdqErrMap64(vintf, m), sizeof(ulong));

    /// <summary>An ATS-capable endpoint's ATC at <paramref name="psid"/>, holding one translation.</summary>
    public AddressTranslationCache AddAtc(uint psid, ulong iova)
    {
        var atc = new AddressTranslationCache();
        atc.Insert(null, iova, DataPages, Permissions.ReadWrite);
        Smmu.RegisterAtc(psid, atc);
        return atc;
    }
}
