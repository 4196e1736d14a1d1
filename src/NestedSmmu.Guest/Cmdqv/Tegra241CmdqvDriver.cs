using NestedSmmu.Guest.Smmu;
using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Smmu;
using CmdqvModel = NestedSmmu.Hardware.Cmdqv.Tegra241Cmdqv;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Guest.Cmdqv;

/// <summary>Choices of the CMDQV driver.</summary>
public sealed record Tegra241CmdqvDriverOptions
{
    /// <summary>log2 of VCMDQ entries wanted; capped by the SMMU's IDR1.CMDQS (what the VMM can back) and VCMDQ_LOG2SIZE_MAX.</summary>
    public int VcmdqLog2Entries { get; init; } = 8;
    /// <summary>Ask for HYP_OWN on VINTF0 as Linux does; a VMM forces it to 0 and the driver reads that back.</summary>
    public bool RequestHypOwn { get; init; } = true;

    public static Tegra241CmdqvDriverOptions Default { get; } = new();
}

/// <summary>
/// A guest's NVIDIA Tegra241 CMDQV driver, behaving as Linux's
/// drivers/iommu/arm/arm-smmu-v3/tegra241-cmdqv.c does inside a VM: from the DSDT's NVDA200C node
/// (first memory resource, first interrupt), it resets the CMDQV (CONFIG off then on, STATUS
/// polled), pre-assigns every VCMDQ through CMDQ_ALLOC without ALLOCATED, brings VINTF0 up
/// (HYP_OWN requested and read back: a VMM wires it to 0), then maps each logical VCMDQ (ALLOCATED),
/// programs BASE in its logical page 1 and enables it. As the SMMU driver's secondary queue
/// provider it takes batches of TLBI_NH_ASID, TLBI_NH_VA and ATC_INV (with their CMD_SYNC) when
/// VINTF0 is guest-owned, anything when it is the hypervisor's; the rest stays on the vSMMU's queue.
/// Errors: CONS.ERR seen while polling, or the CMDQV interrupt (VINTF_ERR_MAP, CMDQ_ERR_MAP,
/// LVCMDQ_ERR_MAP_64), repaired as arm_smmu_cmdq_skip_err and acknowledged through GERRORN.
/// </summary>
public sealed class Tegra241CmdqvDriver : ISecondaryCommandQueues
{
    /// <summary>The VINTF a kernel (host or guest) keeps for itself; a VM is shown exactly one.</summary>
    public const int Vintf0 = 0;

    private readonly ArmSmmuV3Driver _smmu;
    private GuestCommandQueue?[] _lvcmdqs = [];
    private bool[] _enabled = [];

    /// <param name="name">Device name for messages (the ACPI device, e.g. "NVDA200C:00").</param>
    /// <param name="bus">The guest's MMIO bus.</param>
    /// <param name="baseAddress">The _CRS memory resource's base.</param>
    /// <param name="interrupt">The _CRS interrupt (GSI), or null: then errors are found only by polling.</param>
    /// <param name="smmu">The SMMU driver whose IORT node has this device's _UID as identifier.</param>
    public Tegra241CmdqvDriver(string name, MmioBus bus, ulong baseAddress, uint? interrupt, ArmSmmuV3Driver smmu, Tegra241CmdqvDriverOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(bus);
        ArgumentNullException.ThrowIfNull(smmu);
        Name = name;
        Registers = new RegisterWindow(bus, baseAddress);
        Interrupt = interrupt;
        _smmu = smmu;
        Options = options ?? Tegra241CmdqvDriverOptions.Default;
    }

    public string Name { get; }
    public RegisterWindow Registers { get; }
    public uint? Interrupt { get; }
    public Tegra241CmdqvDriverOptions Options { get; }
    public GuestLog Log => _smmu.Log;

    public int NumVintfs { get; private set; }
    public int NumVcmdqs { get; private set; }
    public int LvcmdqsPerVintf { get; private set; }
    public int Version { get; private set; }
    /// <summary>VINTF0's STATUS.ENABLED after bring-up.</summary>
    public bool VintfEnabled { get; private set; }
    /// <summary>HYP_OWN as read back from VINTF0 CONFIG: false in a VM.</summary>
    public bool HypOwn { get; private set; }
    /// <summary>Traces every register access and every command sent through a VCMDQ; null for none.</summary>
    public Action<string>? Trace
    {
        get => Registers.Trace;
        set
        {
            Registers.Trace = value;
            foreach (var q in _lvcmdqs) if (q is not null) q.Trace = value;
        }
    }

    /// <summary>Send everything through the SMMU's own queue (Linux's bypass_vcmdq module parameter / debugfs knob).</summary>
    public bool BypassVcmdq { get; set; }
    /// <summary>Which logical VCMDQ the next batch uses: Linux picks smp_processor_id() % queues.</summary>
    public int CurrentCpu { get; set; }
    /// <summary>The logical VCMDQs of VINTF0 (null where one failed to come up).</summary>
    public IReadOnlyList<GuestCommandQueue?> Lvcmdqs => _lvcmdqs;
    /// <summary>Errors handled: (logical queue, CONS.ERR, the command at CONS).</summary>
    public List<(int Lvcmdq, CommandError Error, Command Command)> Errors { get; } = new();
    public long InterruptsHandled { get; private set; }

    /// <summary>Batches and commands that went through VCMDQs (the direct path), summed over the logical queues.</summary>
    public CommandPathCounters DirectCounters
    {
        get
        {
            var sum = new CommandPathCounters();
            foreach (var q in _lvcmdqs)
            {
                if (q is null) continue;
                sum.Batches += q.Counters.Batches;
                sum.Commands += q.Counters.Commands;
                sum.Syncs += q.Counters.Syncs;
                sum.Errors += q.Counters.Errors;
                sum.SyncTimeouts += q.Counters.SyncTimeouts;
                foreach (var (op, n) in q.Counters.ByOpcode) sum.ByOpcode[op] = sum.ByOpcode.GetValueOrDefault(op) + n;
            }
            return sum;
        }
    }

    /// <summary>
    /// __tegra241_cmdqv_probe and tegra241_cmdqv_hw_reset: reads PARAM, allocates VINTF0's logical
    /// VCMDQs in guest RAM, resets the CMDQV and brings VINTF0 and its queues up. On success the SMMU
    /// driver routes eligible batches here. False (falling back to the SMMU's queue) on any failure.
    /// </summary>
    public bool Probe()
    {
        if (!_smmu.Enabled) throw new InvalidOperationException($"{Name}: probe after the SMMU driver's Reset().");
        if (Interrupt is null) Log.Warn(Name, "no interrupt. errors will not be reported");
        uint param = Registers.Read32((ulong)CmdqvRegister.PARAM);
        Version = (int)CmdqvModel.CMDQV_VER.Get(param);
        NumVintfs = 1 << (int)CmdqvModel.CMDQV_NUM_VINTF_LOG2.Get(param);
        NumVcmdqs = 1 << (int)CmdqvModel.CMDQV_NUM_VCMDQ_LOG2.Get(param);
        LvcmdqsPerVintf = NumVcmdqs / NumVintfs;
        if (LvcmdqsPerVintf == 0)
        {
            Log.Error(Name, $"PARAM 0x{param:X8}: fewer VCMDQs than VINTFs");
            return Fallback();
        }
        int log2 = Math.Min(Math.Min(Options.VcmdqLog2Entries, _smmu.Features.CmdqLog2Max), CmdqvModel.VCMDQ_LOG2SIZE_MAX);
        _lvcmdqs = new GuestCommandQueue?[LvcmdqsPerVintf];
        _enabled = new bool[LvcmdqsPerVintf];
        for (int l = 0; l < LvcmdqsPerVintf; l++)
        {
            int lidx = l;
            ulong buffer = _smmu.Pages.Allocate((ulong)Command.Size << log2);
            _lvcmdqs[l] = new GuestCommandQueue($"vcmdq{GlobalIndex(l)}", CommandPath.Vcmdq, Registers,
                L.Lvcmdq(Vintf0, l, VcmdqPage0Register.PROD), L.Lvcmdq(Vintf0, l, VcmdqPage0Register.CONS), _smmu.Ram, buffer, log2,
                SupportsCommand)
            { ErrorHandler = (q, err, cons) => OnQueueError(lidx, q, err, cons), Trace = Registers.Trace };
        }
        if (!HwReset()) return Fallback();
        _smmu.SecondaryQueues = this;
        Log.Info(Name, $"CMDQV v{Version}: {NumVintfs} VINTF(s), {NumVcmdqs} VCMDQ(s), VINTF0 {(HypOwn ? "hypervisor" : "guest")}-owned with {LvcmdqsPerVintf} logical queue(s) of 2^{log2}");
        return true;
    }

    private bool Fallback()
    {
        _smmu.SecondaryQueues = null;
        Log.Info(Name, "Falling back to standard SMMU CMDQ");
        return false;
    }

    private int GlobalIndex(int lidx) => Vintf0 * LvcmdqsPerVintf + lidx;

    /// <summary>tegra241_cmdqv_hw_reset.</summary>
    private bool HwReset()
    {
        uint config = Registers.Read32((ulong)CmdqvRegister.CONFIG);
        if (!WriteConfig((ulong)CmdqvRegister.CONFIG, (ulong)CmdqvRegister.STATUS, config & ~CmdqvModel.CMDQV_EN, "CMDQV: ")) return false;
        if (!WriteConfig((ulong)CmdqvRegister.CONFIG, (ulong)CmdqvRegister.STATUS, config | CmdqvModel.CMDQV_EN, "CMDQV: ")) return false;
        // Pre-assign every global VCMDQ to its (VINTF, logical index); ALLOCATED is set when a queue is mapped.
        int q = 0;
        for (int v = 0; v < NumVintfs; v++)
        {
            for (int l = 0; l < LvcmdqsPerVintf; l++)
                Registers.Write32(L.CmdqAlloc(q++), CmdqvModel.EncodeCmdqAlloc(v, l, allocated: false));
        }
        return VintfHwInit();
    }

    /// <summary>tegra241_vintf_hw_init for VINTF0.</summary>
    private bool VintfHwInit()
    {
        VintfHwDeinit();
        ulong cfg = L.Vintf(Vintf0, VintfRegister.CONFIG), status = L.Vintf(Vintf0, VintfRegister.STATUS);
        uint regval = Options.RequestHypOwn ? CmdqvModel.VINTF_HYP_OWN : 0;
        Registers.Write32(cfg, regval);
        if (!WriteConfig(cfg, status, regval | CmdqvModel.VINTF_EN, "VINTF0: ")) return false;
        VintfEnabled = true;
        // A VMM wires HYP_OWN to 0 for its guest: read back what the hardware kept.
        HypOwn = (Registers.Read32(cfg) & CmdqvModel.VINTF_HYP_OWN) != 0;
        for (int l = 0; l < LvcmdqsPerVintf; l++)
        {
            if (_lvcmdqs[l] is null) continue;
            MapLvcmdq(l);
            if (!VcmdqHwInit(l))
            {
                VintfHwDeinit();
                return false;
            }
        }
        return true;
    }

    /// <summary>tegra241_vintf_hw_deinit: queues disabled and unmapped in descending order (the hardware requires it), then VINTF0 off.</summary>
    private void VintfHwDeinit()
    {
        for (int l = LvcmdqsPerVintf - 1; l >= 0; l--)
        {
            if (_lvcmdqs[l] is null) continue;
            VcmdqHwDeinit(l);
            UnmapLvcmdq(l);
        }
        WriteConfig(L.Vintf(Vintf0, VintfRegister.CONFIG), L.Vintf(Vintf0, VintfRegister.STATUS), 0, "VINTF0: ");
        VintfEnabled = false;
    }

    /// <summary>tegra241_vcmdq_map_lvcmdq: set ALLOCATED on the pre-assigned CMDQ_ALLOC.</summary>
    private void MapLvcmdq(int l)
    {
        ulong alloc = L.CmdqAlloc(GlobalIndex(l));
        Registers.Write32(alloc, Registers.Read32(alloc) | CmdqvModel.CMDQV_CMDQ_ALLOCATED);
    }

    private void UnmapLvcmdq(int l)
    {
        ulong alloc = L.CmdqAlloc(GlobalIndex(l));
        Registers.Write32(alloc, Registers.Read32(alloc) & ~CmdqvModel.CMDQV_CMDQ_ALLOCATED);
    }

    /// <summary>tegra241_vcmdq_hw_init: reset the queue, program BASE (address and LOG2SIZE), enable and poll STATUS.</summary>
    private bool VcmdqHwInit(int l)
    {
        var q = _lvcmdqs[l]!;
        VcmdqHwDeinit(l);
        Registers.Write64(L.Lvcmdq(Vintf0, l, VcmdqPage1Register.BASE), CmdqvModel.EncodeVcmdqBase(q.BaseAddress, q.Log2Entries));
        q.ResetPointers();
        bool ok = WriteConfig(L.Lvcmdq(Vintf0, l, VcmdqPage0Register.CONFIG), L.Lvcmdq(Vintf0, l, VcmdqPage0Register.STATUS),
            CmdqvModel.VCMDQ_EN, $"VINTF0: {q.Name}/LVCMDQ{l}: ");
        if (!ok)
        {
            Log.Error(Name, $"VINTF0: {q.Name}/LVCMDQ{l}: GERRORN=0x{Registers.Read32(L.Lvcmdq(Vintf0, l, VcmdqPage0Register.GERRORN)):X}, GERROR=0x{Registers.Read32(L.Lvcmdq(Vintf0, l, VcmdqPage0Register.GERROR)):X}, CONS=0x{Registers.Read32(L.Lvcmdq(Vintf0, l, VcmdqPage0Register.CONS)):X}");
            return false;
        }
        _enabled[l] = true;
        return true;
    }

    /// <summary>tegra241_vcmdq_hw_deinit: disable, zero PROD/CONS/BASE/CONS_INDX_BASE, clear a leftover error.</summary>
    private void VcmdqHwDeinit(int l)
    {
        var q = _lvcmdqs[l]!;
        WriteConfig(L.Lvcmdq(Vintf0, l, VcmdqPage0Register.CONFIG), L.Lvcmdq(Vintf0, l, VcmdqPage0Register.STATUS), 0, $"VINTF0: {q.Name}/LVCMDQ{l}: ");
        _enabled[l] = false;
        Registers.Write32(L.Lvcmdq(Vintf0, l, VcmdqPage0Register.PROD), 0);
        Registers.Write32(L.Lvcmdq(Vintf0, l, VcmdqPage0Register.CONS), 0);
        Registers.Write64(L.Lvcmdq(Vintf0, l, VcmdqPage1Register.BASE), 0);
        Registers.Write64(L.Lvcmdq(Vintf0, l, VcmdqPage1Register.CONS_INDX_BASE), 0);
        uint gerrorn = Registers.Read32(L.Lvcmdq(Vintf0, l, VcmdqPage0Register.GERRORN));
        uint gerror = Registers.Read32(L.Lvcmdq(Vintf0, l, VcmdqPage0Register.GERROR));
        if (gerror != gerrorn)
        {
            Log.Warn(Name, $"VINTF0: {q.Name}/LVCMDQ{l}: uncleared error detected, resetting");
            Registers.Write32(L.Lvcmdq(Vintf0, l, VcmdqPage0Register.GERRORN), gerror);
        }
    }

    /// <summary>tegra241_cmdqv_write_config: write a CONFIG, poll bit 0 of its STATUS to follow the enable bit.</summary>
    private bool WriteConfig(ulong config, ulong status, uint value, string header)
    {
        bool en = (value & 1) != 0;
        Registers.Write32(config, value);
        if (Registers.Poll32(status, s => ((s & 1) != 0) == en, out uint s)) return true;
        Log.Error(Name, $"{header}failed to {(en ? "en" : "dis")}able, STATUS=0x{s:X8}");
        return false;
    }

    /// <summary>tegra241_guest_vcmdq_supports_cmd, or everything for a hypervisor-owned VINTF.</summary>
    private bool SupportsCommand(Command cmd) => HypOwn
        || cmd.Opcode is CommandOpcode.TLBI_NH_ASID or CommandOpcode.TLBI_NH_VA or CommandOpcode.ATC_INV;

    /// <summary>tegra241_cmdqv_get_cmdq: VINTF0 up, the CPU's logical queue enabled, and the command one it carries.</summary>
    public GuestCommandQueue? GetSecondaryQueue(in Command first)
    {
        if (BypassVcmdq || !VintfEnabled || LvcmdqsPerVintf == 0) return null;
        int l = (int)((uint)CurrentCpu % (uint)LvcmdqsPerVintf);
        var q = _lvcmdqs[l];
        if (q is null || !_enabled[l] || !q.Supports(first)) return null;
        return q;
    }

    /// <summary>A logical queue stopped (seen while polling its CONS): repair it and acknowledge, as the interrupt would.</summary>
    private void OnQueueError(int l, GuestCommandQueue q, CommandError error, uint cons)
    {
        Errors.Add((l, error, q.ReadEntry(cons)));
        _smmu.RecordQueueError(q, error, cons);
        AcknowledgeQueue(l);
    }

    private void AcknowledgeQueue(int l)
    {
        uint gerror = Registers.Read32(L.Lvcmdq(Vintf0, l, VcmdqPage0Register.GERROR));
        Registers.Write32(L.Lvcmdq(Vintf0, l, VcmdqPage0Register.GERRORN), gerror);
    }

    /// <summary>
    /// The CMDQV interrupt (tegra241_cmdqv_isr): logs VINTF_ERR_MAP and CMDQ_ERR_MAP, and for VINTF0
    /// walks LVCMDQ_ERR_MAP_64, repairs each queue in error (arm_smmu_cmdq_skip_err) and writes its
    /// GERROR to GERRORN. Returns the number of queues handled.
    /// </summary>
    public int HandleInterrupt()
    {
        InterruptsHandled++;
        // The 64-bit maps are not 8-byte aligned: read them as 32-bit halves.
        ulong vintfMap = Registers.Read32((ulong)CmdqvRegister.VINTF_ERR_MAP) | ((ulong)Registers.Read32((ulong)CmdqvRegister.VINTF_ERR_MAP_H) << 32);
        var words = new uint[L.CmdqErrMapWords];
        for (int m = 0; m < words.Length; m++) words[m] = Registers.Read32(L.CmdqErrMap(m));
        Log.Warn(Name, $"unexpected error reported. vintf_map: {vintfMap:x16}, vcmdq_map {words[3]:x8}:{words[2]:x8}:{words[1]:x8}:{words[0]:x8}");
        if ((vintfMap & (1UL << Vintf0)) == 0) return 0;
        int handled = 0;
        for (int m = 0; m < L.LvcmdqErrMapWords; m++)
        {
            ulong at = L.LvcmdqErrMap64(Vintf0, m);
            ulong map = Registers.Read32(at) | ((ulong)Registers.Read32(at + sizeof(uint)) << 32);
            while (map != 0)
            {
                int bit = System.Numerics.BitOperations.TrailingZeroCount(map);
                map &= map - 1;
                int l = m * 64 + bit;
                if (l >= LvcmdqsPerVintf || _lvcmdqs[l] is not { } q) continue;
                uint cons = Registers.Read32(L.Lvcmdq(Vintf0, l, VcmdqPage0Register.CONS));
                var err = (CommandError)CmdqvModel.VCMDQ_CONS_ERR.Get(cons);
                uint pointer = cons & (uint)CmdqvModel.VCMDQ_CONS_RD.Mask;
                Errors.Add((l, err, q.ReadEntry(pointer)));
                _smmu.RecordQueueError(q, err, pointer);
                AcknowledgeQueue(l);
                handled++;
            }
        }
        return handled;
    }
}
