using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Hardware.Cmdqv;

public sealed partial class Tegra241Cmdqv
{
    // ---- Field table. Names as Linux's tegra241-cmdqv.c; fields only QEMU describes are marked. ----

    // CONFIG (config page 0x000)
    public const uint CMDQV_EN = 1u << 0;
    /// <summary>Tagged (QEMU): kept, no effect in this model.</summary>
    public static readonly RegisterField CMDQV_PER_CMD_OFFSET = new(3, 1);
    /// <summary>Tagged (QEMU): kept, no effect in this model.</summary>
    public static readonly RegisterField CMDQV_MAX_CLK_BATCH = new(11, 4);
    /// <summary>Tagged (QEMU): kept, no effect in this model.</summary>
    public static readonly RegisterField CMDQV_MAX_CMD_BATCH = new(19, 12);
    /// <summary>Tagged (QEMU): kept; the DRAM copy of CONS it enables is not modelled.</summary>
    public const uint CMDQV_CONS_DRAM_EN = 1u << 20;
    /// <summary>
    /// CONFIG after reset: enabled, PER_CMD_OFFSET 1, MAX_CLK_BATCH 8, MAX_CMD_BATCH 32 (QEMU's reset value;
    /// Linux's disable_cmdqv option clears CMDQV_EN, so firmware leaves the block enabled).
    /// </summary>
    public const uint CONFIG_ResetValue = 0x0002_0083;
    private static readonly uint CONFIG_WritableMask = CMDQV_EN | (uint)CMDQV_PER_CMD_OFFSET.Mask | (uint)CMDQV_MAX_CLK_BATCH.Mask
        | (uint)CMDQV_MAX_CMD_BATCH.Mask | CMDQV_CONS_DRAM_EN;

    // PARAM (0x004), read-only
    public static readonly RegisterField CMDQV_VER = new(3, 0);
    public static readonly RegisterField CMDQV_NUM_VCMDQ_LOG2 = new(7, 4);
    public static readonly RegisterField CMDQV_NUM_VINTF_LOG2 = new(11, 8);
    public static readonly RegisterField CMDQV_NUM_SID_PER_VM_LOG2 = new(15, 12);

    // STATUS (0x008)
    public const uint CMDQV_ENABLED = 1u << 0;

    // CMDQ_ALLOC(q) (0x200 + 4q)
    public const uint CMDQV_CMDQ_ALLOCATED = 1u << 0;
    public static readonly RegisterField CMDQV_CMDQ_ALLOC_LVCMDQ = new(7, 1);
    public static readonly RegisterField CMDQV_CMDQ_ALLOC_VINTF = new(20, 15);
    private static readonly uint CMDQ_ALLOC_WritableMask =
        CMDQV_CMDQ_ALLOCATED | (uint)CMDQV_CMDQ_ALLOC_LVCMDQ.Mask | (uint)CMDQV_CMDQ_ALLOC_VINTF.Mask;
    /// <summary>Logical indexes CMDQ_ALLOC.LVCMDQ can name (and LVCMDQ_ERR_MAP can report).</summary>
    private static readonly int MaxLvcmdqs = (int)CMDQV_CMDQ_ALLOC_LVCMDQ.Max + 1;

    // VINTF(v) CONFIG (+0x00)
    public const uint VINTF_EN = 1u << 0;
    public static readonly RegisterField VINTF_VMID = new(16, 1);
    public const uint VINTF_HYP_OWN = 1u << 17;
    private static readonly uint VINTF_CONFIG_WritableMask = VINTF_EN | (uint)VINTF_VMID.Mask | VINTF_HYP_OWN;

    // VINTF(v) STATUS (+0x04), read-only
    public const uint VINTF_ENABLED = 1u << 0;
    /// <summary>Tagged: an error status Linux declares but does not decode; reads 0.</summary>
    public static readonly RegisterField VINTF_STATUS = new(3, 1);
    /// <summary>QEMU's VI_NUM_LVCMDQ: how many VCMDQs CMDQ_ALLOC gives this VINTF.</summary>
    public static readonly RegisterField VINTF_NUM_LVCMDQ = new(23, 16);

    // VINTF(v) SID_MATCH(s) (+0x40 + 4s) and SID_REPLACE(s) (+0x80 + 4s); field widths from QEMU.
    public const uint SID_MATCH_ENABLE = 1u << 0;
    public static readonly RegisterField SID_MATCH_VIRT_SID = new(20, 1);
    public static readonly RegisterField SID_REPLACE_PHYS_SID = new(19, 0);
    private static readonly uint SID_MATCH_WritableMask = SID_MATCH_ENABLE | (uint)SID_MATCH_VIRT_SID.Mask;

    // VCMDQ page 0
    /// <summary>CONS and PROD hold the queue pointer (index and wrap) in [19:0].</summary>
    public static readonly RegisterField VCMDQ_CONS_RD = new(19, 0);
    public static readonly RegisterField VCMDQ_CONS_ERR = new(30, 24);
    public static readonly RegisterField VCMDQ_PROD_WR = new(19, 0);
    /// <summary>CONS.ERR value QEMU lists after the SMMU's three (CERROR_ILL 1, CERROR_ABT 2, CERROR_ATC_INV_SYNC 3); never generated here.</summary>
    public const uint CERROR_ILL_ACCESS = 4;
    public const uint VCMDQ_EN = 1u << 0;
    public const uint VCMDQ_ENABLED = 1u << 0;
    public const uint VCMDQ_GERROR_CMDQ_ERR = 1u << 0;
    /// <summary>Tagged (QEMU): the DRAM copy of CONS is not modelled, so this is never raised.</summary>
    public const uint VCMDQ_GERROR_CONS_DRAM_WR_ABT_ERR = 1u << 1;
    /// <summary>Tagged (QEMU): raised by the VMM's emulation when it cannot set a queue up, never by this model.</summary>
    public const uint VCMDQ_GERROR_CMDQ_INIT_ERR = 1u << 2;
    private const uint VCMDQ_GERROR_Mask = VCMDQ_GERROR_CMDQ_ERR | VCMDQ_GERROR_CONS_DRAM_WR_ABT_ERR | VCMDQ_GERROR_CMDQ_INIT_ERR;

    // VCMDQ page 1
    public static readonly RegisterField VCMDQ_ADDR = new(47, 5);
    public static readonly RegisterField VCMDQ_LOG2SIZE = new(4, 0);
    /// <summary>Largest VCMDQ: 2^19 entries (Linux's VCMDQ_LOG2SIZE_MAX).</summary>
    public const int VCMDQ_LOG2SIZE_MAX = 19;
    /// <summary>CONS_INDX_BASE is kept as a 48-bit address; it has no effect here.</summary>
    public static readonly RegisterField VCMDQ_CONS_INDX_ADDR = new(47, 0);

    // ---- Encoders for drivers (host kernel emulation, guest) and tests. ----

    public static uint EncodeCmdqAlloc(int vintf, int lvcmdq, bool allocated = true) =>
        (uint)(CMDQV_CMDQ_ALLOC_VINTF.Encode((ulong)vintf) | CMDQV_CMDQ_ALLOC_LVCMDQ.Encode((ulong)lvcmdq)) | (allocated ? CMDQV_CMDQ_ALLOCATED : 0);

    public static uint EncodeVintfConfig(bool enable, ushort vmid, bool hypOwn) =>
        (enable ? VINTF_EN : 0) | (uint)VINTF_VMID.Encode(vmid) | (hypOwn ? VINTF_HYP_OWN : 0);

    /// <summary>SID_MATCH holding (vSID &lt;&lt; 1) | ENABLE, as Linux writes it.</summary>
    public static uint EncodeSidMatch(uint vsid, bool enable = true) => (uint)SID_MATCH_VIRT_SID.Encode(vsid) | (enable ? SID_MATCH_ENABLE : 0);

    public static uint EncodeSidReplace(uint psid) => (uint)SID_REPLACE_PHYS_SID.Encode(psid);

    /// <summary>VCMDQ BASE: the buffer's physical address (aligned to its size) and log2 of its entries.</summary>
    public static ulong EncodeVcmdqBase(ulong address, int log2Entries) =>
        (address & VCMDQ_ADDR.Mask) | VCMDQ_LOG2SIZE.Encode((ulong)log2Entries);

    /// <summary>PARAM as the hardware reports it.</summary>
    public uint Param => (uint)(CMDQV_VER.Encode((ulong)Options.Version) | CMDQV_NUM_VCMDQ_LOG2.Encode((ulong)Options.NumVcmdqLog2)
        | CMDQV_NUM_VINTF_LOG2.Encode((ulong)Options.NumVintfLog2) | CMDQV_NUM_SID_PER_VM_LOG2.Encode((ulong)Options.NumSidPerVmLog2));

    // ---- Register state of the config page (VINTF and VCMDQ state live in their classes). ----

    private uint _config;
    private ulong _vintfIntMask;

    /// <summary>CONFIG.CMDQV_EN, which STATUS.ENABLED follows at once.</summary>
    public bool Enabled => (_config & CMDQV_EN) != 0;

    private ulong VintfMaskBits => _vintfs.Length >= 1 << L.MaxVintfLog2 ? ulong.MaxValue : (1UL << _vintfs.Length) - 1;

    // ---- MMIO. Every register is 32 bits; an 8-byte access is the pair at [offset, offset + 8). ----

    private const int RegisterBits = 32;
    private const ulong LowWord = (1UL << RegisterBits) - 1;

    /// <summary>Reads 4 or 8 bytes at a 4-byte aligned offset. Anything else, and undefined registers, read as zero; reads have no side effects.</summary>
    public ulong Read(ulong offset, int width)
    {
        if (!IsValidAccess(offset, width)) return 0;
        ulong value = Read32(offset);
        if (width == sizeof(ulong)) value |= (ulong)Read32(offset + sizeof(uint)) << RegisterBits;
        return value;
    }

    /// <summary>Writes 4 or 8 bytes (low word first). Read-only, undefined or malformed accesses are ignored; never throws.</summary>
    public void Write(ulong offset, int width, ulong value)
    {
        if (!IsValidAccess(offset, width)) return;
        Write32(offset, (uint)value);
        if (width == sizeof(ulong)) Write32(offset + sizeof(uint), (uint)(value >> RegisterBits));
    }

    private bool IsValidAccess(ulong offset, int width) =>
        width is sizeof(uint) or sizeof(ulong) && offset % sizeof(uint) == 0 && offset < Size && Size - offset >= (ulong)width;

    /// <summary>Which register bank an offset falls in, and the VCMDQ it names (global index, -1 for none).</summary>
    private enum Bank { Config, Page0, Page1, None }

    private Bank Decode(ulong offset, out int queue, out ulong register)
    {
        queue = -1;
        register = offset;
        if (offset < L.VcmdqPage0Base) return Bank.Config;
        if (offset < L.VintfPageBase)
        {
            bool page1 = offset >= L.VcmdqPage1Base;
            ulong inPage = offset - (page1 ? L.VcmdqPage1Base : L.VcmdqPage0Base);
            ulong q = inPage / L.VcmdqStride;
            register = inPage % L.VcmdqStride;
            if (q >= (ulong)_queues.Length) return Bank.None;
            queue = (int)q;
            return page1 ? Bank.Page1 : Bank.Page0;
        }
        // VINTF logical pages: the logical queue reaches whichever global VCMDQ CMDQ_ALLOC maps there.
        ulong rel = offset - L.VintfPageBase;
        int v = (int)(rel / L.VintfPagesStride);
        ulong inPair = rel % L.VintfPagesStride;
        bool logicalPage1 = inPair >= L.PageSize;
        ulong inLogicalPage = inPair % L.PageSize;
        ulong l = inLogicalPage / L.VcmdqStride;
        register = inLogicalPage % L.VcmdqStride;
        if (v >= _vintfs.Length || l >= (ulong)MaxLvcmdqs) return Bank.None;
        queue = _logicalToGlobal[v * MaxLvcmdqs + (int)l];
        if (queue < 0) return Bank.None;
        return logicalPage1 ? Bank.Page1 : Bank.Page0;
    }

    private uint Read32(ulong offset) => Decode(offset, out int q, out ulong reg) switch
    {
        Bank.Config => ReadConfigPage(reg),
        Bank.Page0 => ReadPage0(_queues[q], reg),
        Bank.Page1 => ReadPage1(_queues[q], reg),
        _ => 0,
    };

    private void Write32(ulong offset, uint value)
    {
        switch (Decode(offset, out int q, out ulong reg))
        {
            case Bank.Config: WriteConfigPage(reg, value); break;
            case Bank.Page0: WritePage0(_queues[q], reg, value); break;
            case Bank.Page1: WritePage1(_queues[q], reg, value); break;
        }
    }

    private uint ReadConfigPage(ulong offset)
    {
        switch ((CmdqvRegister)offset)
        {
            case CmdqvRegister.CONFIG: return _config;
            case CmdqvRegister.PARAM: return Param;
            case CmdqvRegister.STATUS: return Enabled ? CMDQV_ENABLED : 0;
            case CmdqvRegister.VINTF_ERR_MAP: return (uint)VintfErrorMap();
            case CmdqvRegister.VINTF_ERR_MAP_H: return (uint)(VintfErrorMap() >> RegisterBits);
            case CmdqvRegister.VINTF_INT_MASK: return (uint)_vintfIntMask;
            case CmdqvRegister.VINTF_INT_MASK_H: return (uint)(_vintfIntMask >> RegisterBits);
        }
        if (TryIndex(offset, (ulong)CmdqvRegister.CMDQ_ERR_MAP, L.CmdqErrMapStride, L.CmdqErrMapWords, out int m))
            return CmdqErrorMapWord(m);
        if (TryIndex(offset, (ulong)CmdqvRegister.CMDQ_ALLOC, L.CmdqAllocStride, _queues.Length, out int q))
            return _queues[q].Alloc;
        if (TryIndex(offset, (ulong)CmdqvRegister.VINTF, L.VintfStride, _vintfs.Length, out int v))
            return ReadVintf(_vintfs[v], (offset - (ulong)CmdqvRegister.VINTF) % L.VintfStride);
        return 0;
    }

    private void WriteConfigPage(ulong offset, uint value)
    {
        switch ((CmdqvRegister)offset)
        {
            case CmdqvRegister.CONFIG: WriteConfig(value); return;
            case CmdqvRegister.VINTF_INT_MASK:
                _vintfIntMask = ((_vintfIntMask & ~LowWord) | value) & VintfMaskBits;
                return;
            case CmdqvRegister.VINTF_INT_MASK_H:
                _vintfIntMask = ((_vintfIntMask & LowWord) | ((ulong)value << RegisterBits)) & VintfMaskBits;
                return;
        }
        if (TryIndex(offset, (ulong)CmdqvRegister.CMDQ_ALLOC, L.CmdqAllocStride, _queues.Length, out int q))
        {
            WriteCmdqAlloc(_queues[q], value);
            return;
        }
        if (TryIndex(offset, (ulong)CmdqvRegister.VINTF, L.VintfStride, _vintfs.Length, out int v))
            WriteVintf(_vintfs[v], (offset - (ulong)CmdqvRegister.VINTF) % L.VintfStride, value);
    }

    private void WriteConfig(uint value)
    {
        bool wasEnabled = Enabled;
        _config = value & CONFIG_WritableMask;
        // Turning the block on can make every allocated, enabled queue with pending commands runnable.
        if (Enabled && !wasEnabled) ConsumeAll();
    }

    /// <summary>True when <paramref name="offset"/> falls in element i (of <paramref name="count"/>) of a register array at <paramref name="start"/>.</summary>
    private static bool TryIndex(ulong offset, ulong start, ulong stride, int count, out int index)
    {
        index = -1;
        if (offset < start) return false;
        ulong i = (offset - start) / stride;
        if (i >= (ulong)count) return false;
        index = (int)i;
        return true;
    }

    /// <summary>Bit v: some VCMDQ allocated to VINTF v has an unacknowledged error.</summary>
    private ulong VintfErrorMap()
    {
        ulong map = 0;
        foreach (var q in _queues)
        {
            if (q.ErrorActive && TryGetVintf(q, out var vintf)) map |= 1UL << vintf.Index;
        }
        return map;
    }

    /// <summary>Word <paramref name="m"/> of CMDQ_ERR_MAP: bit q % 32 = global VCMDQ q has an unacknowledged error.</summary>
    private uint CmdqErrorMapWord(int m)
    {
        uint word = 0;
        for (int bit = 0; bit < RegisterBits; bit++)
        {
            int q = m * RegisterBits + bit;
            if (q < _queues.Length && _queues[q].ErrorActive) word |= 1u << bit;
        }
        return word;
    }
}
