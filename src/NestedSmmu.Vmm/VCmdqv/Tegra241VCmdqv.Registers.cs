using NestedSmmu.Hardware.Cmdqv;
using G = NestedSmmu.Vmm.VCmdqv.GuestCmdqvLayout;
using Hw = NestedSmmu.Hardware.Cmdqv.Tegra241Cmdqv;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Vmm.VCmdqv;

public sealed partial class Tegra241VCmdqv
{
    // ---- The trapped register file (QEMU's Tegra241CMDQV register cache). Values are kept as the
    // guest wrote them, as QEMU keeps them; only VINTF0_CONFIG.HYP_OWN is forced to 0. ----

    private uint _config, _status;
    private readonly uint[] _viErrMap = new uint[G.ViMapWords];
    private readonly uint[] _viIntMask = new uint[G.ViMapWords];
    private readonly uint[] _cmdqErrMap = new uint[G.ErrMapWords];
    private readonly uint[] _cmdqAllocMap = new uint[G.NumVcmdqs];
    private uint _vintfConfig, _vintfStatus;
    private readonly uint[] _sidMatch = new uint[G.NumSids];
    private readonly uint[] _sidReplace = new uint[G.NumSids];
    private readonly uint[] _lvcmdqErrMap = new uint[G.ErrMapWords];

    /// <summary>tegra241_cmdqv_init_regs: every register to its reset value, every queue's cache cleared.</summary>
    private void InitRegisters()
    {
        _config = G.ConfigReset;
        _status = G.StatusReset;
        Array.Clear(_viErrMap);
        Array.Clear(_viIntMask);
        Array.Clear(_cmdqErrMap);
        Array.Clear(_lvcmdqErrMap);
        Array.Clear(_cmdqAllocMap);
        Array.Clear(_sidMatch);
        Array.Clear(_sidReplace);
        _vintfConfig = _vintfStatus = 0;
        foreach (VcmdqState q in _queues)
        {
            q.ResetCache();
            q.Base = q.ConsIndxBase = 0;
        }
    }

    private bool CmdqvEnabled => (_config & Hw.CMDQV_EN) != 0;
    private bool VintfEnabled => (_vintfConfig & Hw.VINTF_EN) != 0;

    /// <summary>
    /// The region takes 4- and 8-byte accesses at their natural alignment (QEMU's mmio_cmdqv_ops:
    /// valid sizes 4..8, no unaligned access); anything else is not decoded.
    /// </summary>
    private static bool IsValidAccess(ulong offset, int width) =>
        width is sizeof(uint) or sizeof(ulong) && offset % (ulong)width == 0 && offset <= G.PageSize - (ulong)width;

    private ulong TrapRead(CmdqvPage page, ulong offset, int width)
    {
        if (!IsValidAccess(offset, width)) return 0;
        switch (page)
        {
            case CmdqvPage.Config:
                // An 8-byte read returns the one register at the offset, as QEMU's read handler does.
                return ReadConfigPage(offset);
            case CmdqvPage.VcmdqPage0:
            case CmdqvPage.VintfPage0:
                // VINTF page 0 is a hardware alias of the VCMDQ page 0 registers (until the host page overlays it).
                return TrySplitQueue(offset, out int q, out ulong reg) ? ReadPage0(q, reg) : 0;
            default:
                if (!TrySplitQueue(offset, out q, out reg)) return 0;
                ulong value = ReadPage1(q, reg);
                return width == sizeof(uint) ? (uint)value : value;
        }
    }

    private void TrapWrite(CmdqvPage page, ulong offset, int width, ulong value)
    {
        if (!IsValidAccess(offset, width)) return;
        if (width == sizeof(ulong))
        {
            // Only page 1 BASE and CONS_INDX_BASE take a 64-bit write; every other 8-byte write is ignored.
            if (page is CmdqvPage.VcmdqPage1 or CmdqvPage.VintfPage1 && TrySplitQueue(offset, out int q1, out ulong reg1))
                WritePage1_64(q1, reg1, value);
            return;
        }
        uint word = (uint)value;
        switch (page)
        {
            case CmdqvPage.Config:
                WriteConfigPage(offset, word);
                break;
            case CmdqvPage.VcmdqPage0:
            case CmdqvPage.VintfPage0:
                if (TrySplitQueue(offset, out int q, out ulong reg)) WritePage0(q, reg, word);
                break;
            default:
                if (TrySplitQueue(offset, out q, out reg)) WritePage1(q, reg, word);
                break;
        }
    }

    /// <summary>The guest VCMDQ and register an offset in a page 0 or page 1 names; false past the guest's queues.</summary>
    private static bool TrySplitQueue(ulong offset, out int queue, out ulong register)
    {
        ulong q = offset / L.VcmdqStride;
        register = offset % L.VcmdqStride;
        queue = q < G.NumVcmdqs ? (int)q : -1;
        return queue >= 0;
    }

    private uint ReadConfigPage(ulong offset)
    {
        switch ((CmdqvRegister)offset)
        {
            case CmdqvRegister.CONFIG: return _config;
            case CmdqvRegister.PARAM: return G.Param;
            case CmdqvRegister.STATUS: return _status;
        }
        if (TryWord(offset, G.ViErrMap(0), G.ViMapWords, out int i))
        {
            RefreshErrorMaps();
            return _viErrMap[i];
        }
        if (TryWord(offset, G.ViIntMask(0), G.ViMapWords, out i)) return _viIntMask[i];
        if (TryWord(offset, L.CmdqErrMap(0), G.ErrMapWords, out i))
        {
            RefreshErrorMaps();
            return _cmdqErrMap[i];
        }
        if (TryWord(offset, L.CmdqAlloc(0), G.NumVcmdqs, out i)) return _cmdqAllocMap[i];
        if (offset == G.Vintf0Config) return _vintfConfig;
        if (offset == G.Vintf0Status) return _vintfStatus;
        if (TryWord(offset, L.SidMatch(G.Vintf0, 0), G.NumSids, out i)) return _sidMatch[i];
        if (TryWord(offset, L.SidReplace(G.Vintf0, 0), G.NumSids, out i)) return _sidReplace[i];
        if (TryWord(offset, G.LvcmdqErrMap(0), G.ErrMapWords, out i))
        {
            RefreshErrorMaps();
            return _lvcmdqErrMap[i];
        }
        // Unmodelled (GLB_FILT_CFG/DATA of the VINTF block) or undefined: reads as zero, as in QEMU.
        return 0;
    }

    private void WriteConfigPage(ulong offset, uint value)
    {
        if (offset == (ulong)CmdqvRegister.CONFIG)
        {
            _config = value;
            if (CmdqvEnabled)
            {
                _status |= Hw.CMDQV_ENABLED;
                // Queues programmed before the CMDQV was enabled get their HW queue now.
                SetupAllQueues();
            }
            else
            {
                FreeAllQueues();
                _status &= ~Hw.CMDQV_ENABLED;
            }
            return;
        }
        if (TryWord(offset, G.ViIntMask(0), G.ViMapWords, out int i))
        {
            _viIntMask[i] = value;
            return;
        }
        if (TryWord(offset, L.CmdqAlloc(0), G.NumVcmdqs, out i))
        {
            bool wasAllocated = (_cmdqAllocMap[i] & Hw.CMDQV_CMDQ_ALLOCATED) != 0;
            bool nowAllocated = (value & Hw.CMDQV_CMDQ_ALLOCATED) != 0;
            _cmdqAllocMap[i] = value;
            if (!wasAllocated && nowAllocated) SetupQueue(i);
            else if (wasAllocated && !nowAllocated) FreeQueue(i);
            return;
        }
        if (offset == G.Vintf0Config)
        {
            WriteVintfConfig(value);
            return;
        }
        // SID_MATCH/SID_REPLACE are kept for the guest to read back: the host's slots are programmed
        // by the kernel when the vSMMU allocates a vDEVICE, not from these registers.
        if (TryWord(offset, L.SidMatch(G.Vintf0, 0), G.NumSids, out i)) _sidMatch[i] = value;
        else if (TryWord(offset, L.SidReplace(G.Vintf0, 0), G.NumSids, out i)) _sidReplace[i] = value;
        // PARAM, STATUS, the error maps and VINTF0_STATUS are read-only.
    }

    /// <summary>
    /// VINTF0_CONFIG: HYP_OWN is forced to 0 (the VINTF stays the guest's). Enabling sets
    /// ENABLE_OK, sets up the queues programmed so far and maps the host page over VINTF page 0;
    /// disabling unmaps the page, frees the queues and clears ENABLE_OK.
    /// </summary>
    private void WriteVintfConfig(uint value)
    {
        _vintfConfig = value & ~Hw.VINTF_HYP_OWN;
        if (VintfEnabled)
        {
            _vintfStatus |= Hw.VINTF_ENABLED;
            SetupAllQueues();
            MapVintfPage0();
        }
        else
        {
            UnmapVintfPage0();
            FreeAllQueues();
            _vintfStatus &= ~Hw.VINTF_ENABLED;
        }
    }

    /// <summary>True when <paramref name="offset"/> is word i (of <paramref name="count"/> 32-bit words) of an array at <paramref name="first"/>.</summary>
    private static bool TryWord(ulong offset, ulong first, int count, out int index)
    {
        index = -1;
        if (offset < first || (offset - first) % sizeof(uint) != 0) return false;
        ulong i = (offset - first) / sizeof(uint);
        if (i >= (ulong)count) return false;
        index = (int)i;
        return true;
    }
}
