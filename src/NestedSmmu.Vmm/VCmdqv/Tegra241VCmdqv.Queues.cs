using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Uapi;
using G = NestedSmmu.Vmm.VCmdqv.GuestCmdqvLayout;
using Hw = NestedSmmu.Hardware.Cmdqv.Tegra241Cmdqv;

namespace NestedSmmu.Vmm.VCmdqv;

public sealed partial class Tegra241VCmdqv
{
    private readonly VcmdqState[] _queues = new VcmdqState[G.NumVcmdqs];

    /// <summary>
    /// One guest VCMDQ: its page 1 registers (always the VMM's), the cache of its page 0 registers
    /// (what the guest sees while no HW queue backs it) and the HW queue once one does.
    /// </summary>
    private sealed class VcmdqState
    {
        public uint Cons, Prod, Config, Status, Gerror, Gerrorn;
        public ulong Base, ConsIndxBase;
        public HwQueueId? HwQueue;

        /// <summary>tegra241_cmdqv_reset_vcmdq_cache: page 0 back to zero (BASE and CONS_INDX_BASE stay).</summary>
        public void ResetCache() => Cons = Prod = Config = Status = Gerror = Gerrorn = 0;
    }

    /// <summary>GERROR bits that mean "an error is active" while they differ from GERRORN.</summary>
    private const uint GerrorBits = Hw.VCMDQ_GERROR_CMDQ_ERR | Hw.VCMDQ_GERROR_CONS_DRAM_WR_ABT_ERR | Hw.VCMDQ_GERROR_CMDQ_INIT_ERR;

    /// <summary>
    /// tegra241_cmdqv_vcmdq_ready_to_alloc: BASE programmed (non-zero; a half-written BASE passes,
    /// and the second half's write sets the queue up again), CMDQ_ALLOC_MAP.ALLOC, and both the
    /// CMDQV and the VINTF enabled.
    /// </summary>
    private bool ReadyToAllocate(int q) =>
        _queues[q].Base != 0 && (_cmdqAllocMap[q] & Hw.CMDQV_CMDQ_ALLOCATED) != 0 && CmdqvEnabled && VintfEnabled;

    // ---- page 0: the host page for an allocated queue, the cache otherwise ----

    private uint ReadPage0(int q, ulong register)
    {
        VcmdqState s = _queues[q];
        if (s.HwQueue is not null) return _hostPage.Read32(G.Page0Offset(q, (VcmdqPage0Register)register));
        return (VcmdqPage0Register)register switch
        {
            VcmdqPage0Register.CONS => s.Cons,
            VcmdqPage0Register.PROD => s.Prod,
            VcmdqPage0Register.CONFIG => s.Config,
            VcmdqPage0Register.STATUS => s.Status,
            VcmdqPage0Register.GERROR => s.Gerror,
            VcmdqPage0Register.GERRORN => s.Gerrorn,
            _ => 0,
        };
    }

    private void WritePage0(int q, ulong register, uint value)
    {
        VcmdqState s = _queues[q];
        var reg = (VcmdqPage0Register)register;
        if (s.HwQueue is not null && reg is VcmdqPage0Register.CONS or VcmdqPage0Register.PROD
                or VcmdqPage0Register.CONFIG or VcmdqPage0Register.GERRORN)
        {
            _hostPage.Write32(G.Page0Offset(q, reg), value);
            return;
        }
        switch (reg)
        {
            case VcmdqPage0Register.CONS: s.Cons = value; break;
            // An unallocated queue runs nothing: PROD is only remembered until a HW queue takes it.
            case VcmdqPage0Register.PROD: s.Prod = value; break;
            case VcmdqPage0Register.CONFIG:
                // STATUS follows CMDQ_EN unless the queue failed to set up (CMDQ_INIT_ERR).
                if ((value & Hw.VCMDQ_EN) == 0) s.Status &= ~Hw.VCMDQ_ENABLED;
                else if ((s.Gerror & Hw.VCMDQ_GERROR_CMDQ_INIT_ERR) == 0) s.Status |= Hw.VCMDQ_ENABLED;
                s.Config = value;
                break;
            case VcmdqPage0Register.GERRORN: s.Gerrorn = value; break;
            // STATUS and GERROR are read-only.
        }
    }

    // ---- page 1: BASE and CONS_INDX_BASE, always the VMM's ----

    /// <summary>A page 1 register; at BASE and CONS_INDX_BASE the whole 64-bit value (a 4-byte read keeps the low word).</summary>
    private ulong ReadPage1(int q, ulong register)
    {
        VcmdqState s = _queues[q];
        return (VcmdqPage1Register)register switch
        {
            VcmdqPage1Register.BASE => s.Base,
            VcmdqPage1Register.BASE_H => s.Base >> RegisterBits,
            VcmdqPage1Register.CONS_INDX_BASE => s.ConsIndxBase,
            VcmdqPage1Register.CONS_INDX_BASE_H => s.ConsIndxBase >> RegisterBits,
            _ => 0,
        };
    }

    private void WritePage1(int q, ulong register, uint value)
    {
        VcmdqState s = _queues[q];
        switch ((VcmdqPage1Register)register)
        {
            case VcmdqPage1Register.BASE:
                s.Base = Deposit(s.Base, high: false, value);
                SetupQueue(q);
                break;
            case VcmdqPage1Register.BASE_H:
                s.Base = Deposit(s.Base, high: true, value);
                SetupQueue(q);
                break;
            case VcmdqPage1Register.CONS_INDX_BASE: s.ConsIndxBase = Deposit(s.ConsIndxBase, high: false, value); break;
            case VcmdqPage1Register.CONS_INDX_BASE_H: s.ConsIndxBase = Deposit(s.ConsIndxBase, high: true, value); break;
        }
    }

    private void WritePage1_64(int q, ulong register, ulong value)
    {
        VcmdqState s = _queues[q];
        switch ((VcmdqPage1Register)register)
        {
            case VcmdqPage1Register.BASE:
                s.Base = value;
                SetupQueue(q);
                break;
            case VcmdqPage1Register.CONS_INDX_BASE:
                s.ConsIndxBase = value;
                break;
        }
    }

    private const int RegisterBits = 32;
    private const ulong LowWord = (1UL << RegisterBits) - 1;

    private static ulong Deposit(ulong register, bool high, uint value) => high
        ? (register & LowWord) | ((ulong)value << RegisterBits)
        : (register & ~LowWord) | value;

    // ---- HW queues ----

    /// <summary>
    /// tegra241_cmdqv_setup_vcmdq: once the queue is ready, (re)allocates its HW queue from BASE.
    /// False when the kernel refused. The kernel destroys HW queues only in descending index order
    /// (uapi iommufd.h), so before an allocated queue is replaced, the allocated queues above it
    /// step down, their page 0 state kept in the cache, and come back afterwards; the queue's own
    /// page 0 state is kept the same way (QEMU instead resets it and frees only this queue).
    /// </summary>
    private bool SetupQueue(int q)
    {
        if (!ReadyToAllocate(q)) return true;
        List<int> lifted = LiftQueuesAbove(q);
        if (_queues[q].HwQueue is not null)
        {
            SpillToCache(q);
            DestroyHwQueue(q);
        }
        bool ok = AllocateHwQueue(q);
        foreach (int j in lifted)
        {
            if (ReadyToAllocate(j)) AllocateHwQueue(j);
        }
        return ok;
    }

    /// <summary>tegra241_cmdqv_setup_all_vcmdq: ascending, stopping at the first refusal.</summary>
    private void SetupAllQueues()
    {
        for (int q = 0; q < G.NumVcmdqs; q++)
        {
            if (!SetupQueue(q)) return;
        }
    }

    /// <summary>
    /// tegra241_cmdqv_free_vcmdq for one queue (CMDQ_ALLOC_MAP.ALLOC cleared): its HW queue goes and
    /// its cache resets. Allocated queues above it step down first and are set up again after,
    /// where the kernel allows (it wants the lower index allocated: EIO otherwise).
    /// </summary>
    private void FreeQueue(int q)
    {
        if (_queues[q].HwQueue is null) return;
        List<int> lifted = LiftQueuesAbove(q);
        DestroyHwQueue(q);
        _queues[q].ResetCache();
        foreach (int j in lifted)
        {
            if (ReadyToAllocate(j)) AllocateHwQueue(j);
        }
    }

    /// <summary>tegra241_cmdqv_free_all_vcmdq: descending, as the kernel requires.</summary>
    private void FreeAllQueues()
    {
        for (int q = G.NumVcmdqs - 1; q >= 0; q--)
        {
            if (_queues[q].HwQueue is null) continue;
            DestroyHwQueue(q);
            _queues[q].ResetCache();
        }
    }

    /// <summary>Takes down the allocated queues above <paramref name="q"/> (descending), keeping their page 0 state; returns them ascending.</summary>
    private List<int> LiftQueuesAbove(int q)
    {
        var lifted = new List<int>();
        for (int j = G.NumVcmdqs - 1; j > q; j--)
        {
            if (_queues[j].HwQueue is null) continue;
            SpillToCache(j);
            DestroyHwQueue(j);
            lifted.Insert(0, j);
        }
        return lifted;
    }

    /// <summary>
    /// IOMMU_HW_QUEUE_ALLOC for guest VCMDQ <paramref name="q"/>: type TEGRA241_CMDQV, index q,
    /// the guest physical BASE.ADDR (an IOVA of the nest parent's IOAS) and 1 &lt;&lt; (LOG2SIZE + 4)
    /// bytes. Refused: GERROR.CMDQ_INIT_ERR, STATUS.CMDQ_EN_OK clear, QEMU's message (with why
    /// the buffer may not be backable, when that is the likely cause). Accepted: INIT_ERR clear,
    /// EN_OK set, and the cached CONS, PROD, CONFIG and GERRORN written to the host page.
    /// </summary>
    private bool AllocateHwQueue(int q)
    {
        VcmdqState s = _queues[q];
        ulong address = s.Base & Hw.VCMDQ_ADDR.Mask;
        ulong length = 1UL << ((int)Hw.VCMDQ_LOG2SIZE.Get(s.Base) + CmdqvQueueSizing.CommandSizeLog2);
        try
        {
            s.HwQueue = _iommufd.AllocHwQueue(Viommu, HwQueueType.Tegra241Cmdqv, (uint)q, address, length);
        }
        catch (IommufdException e)
        {
            s.Gerror |= Hw.VCMDQ_GERROR_CMDQ_INIT_ERR;
            s.Status &= ~Hw.VCMDQ_ENABLED;
            string message = $"IOMMU_HW_QUEUE_ALLOC failed: {e.Errno.Describe()}";
            string? backing = CmdqvQueueSizing.CheckBacking(_guestRam, address, length);
            Report(backing is null ? message : $"{message} (VCMDQ{q}: {backing})");
            return false;
        }
        s.Gerror &= ~Hw.VCMDQ_GERROR_CMDQ_INIT_ERR;
        s.Status |= Hw.VCMDQ_ENABLED;
        // tegra241_cmdqv_sync_vcmdq: the guest's earlier writes survive the move to the hardware.
        // CONS goes first, while the new queue is still disabled and CONS writable.
        _hostPage.Write32(G.Page0Offset(q, VcmdqPage0Register.CONS), s.Cons);
        _hostPage.Write32(G.Page0Offset(q, VcmdqPage0Register.PROD), s.Prod);
        _hostPage.Write32(G.Page0Offset(q, VcmdqPage0Register.CONFIG), s.Config);
        _hostPage.Write32(G.Page0Offset(q, VcmdqPage0Register.GERRORN), s.Gerrorn);
        return true;
    }

    /// <summary>Copies an allocated queue's page 0 from the host page into the cache.</summary>
    private void SpillToCache(int q)
    {
        VcmdqState s = _queues[q];
        s.Cons = _hostPage.Read32(G.Page0Offset(q, VcmdqPage0Register.CONS)) & (uint)Hw.VCMDQ_CONS_RD.Mask;
        s.Prod = _hostPage.Read32(G.Page0Offset(q, VcmdqPage0Register.PROD));
        s.Config = _hostPage.Read32(G.Page0Offset(q, VcmdqPage0Register.CONFIG));
        s.Status = _hostPage.Read32(G.Page0Offset(q, VcmdqPage0Register.STATUS));
        s.Gerror = _hostPage.Read32(G.Page0Offset(q, VcmdqPage0Register.GERROR));
        s.Gerrorn = _hostPage.Read32(G.Page0Offset(q, VcmdqPage0Register.GERRORN));
    }

    private void DestroyHwQueue(int q)
    {
        VcmdqState s = _queues[q];
        if (s.HwQueue is not { } id) return;
        s.HwQueue = null;
        try
        {
            _iommufd.Destroy(id);
        }
        catch (IommufdException e)
        {
            Report(e.Message);
        }
    }

    /// <summary>True when allocated queue <paramref name="q"/> has an unacknowledged error in the hardware.</summary>
    private bool HardwareErrorActive(int q) => _queues[q].HwQueue is not null
        && ((_hostPage.Read32(G.Page0Offset(q, VcmdqPage0Register.GERROR))
            ^ _hostPage.Read32(G.Page0Offset(q, VcmdqPage0Register.GERRORN))) & GerrorBits) != 0;
}
