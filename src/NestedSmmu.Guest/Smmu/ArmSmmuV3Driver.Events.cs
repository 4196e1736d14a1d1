using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Guest.Smmu;

/// <summary>A fault event the driver took from the event queue, attributed to its device.</summary>
/// <param name="Smmu">The SMMU that reported it.</param>
/// <param name="Device">The master with that StreamID, or null when no device has it.</param>
/// <param name="StreamId">The StreamID in the record (the vSID, in a VM).</param>
/// <param name="Event">The record, decoded with the Hardware codec.</param>
public readonly record struct SmmuFaultReport(string Smmu, string? Device, uint StreamId, EventRecord Event)
{
    public EventType Type => Event.Type;
    /// <summary>The faulting input address (translation faults).</summary>
    public ulong Address => Event.InputAddress;
    public bool IsWrite => !Event.RnW;

    public override string ToString() =>
        $"{Smmu}: {Enum.GetName(Type) ?? $"event 0x{(byte)Type:X2}"} {Device ?? "unknown device"} sid 0x{StreamId:X} iova 0x{Address:X} {(IsWrite ? "write" : "read")}";
}

public sealed partial class ArmSmmuV3Driver
{
    private readonly List<SmmuFaultReport> _faults = new();

    /// <summary>Every fault taken from the event queue since reset.</summary>
    public IReadOnlyList<SmmuFaultReport> Faults => _faults;
    public long EventsLostReported { get; private set; }
    /// <summary>GERROR bits acknowledged, by bit, over the driver's life.</summary>
    public uint GlobalErrorsSeen { get; private set; }

    /// <summary>
    /// The event-queue interrupt thread (arm_smmu_evtq_thread): consumes every record between CONS
    /// and PROD, attributes each to its master by StreamID, reports overflow once per OVFLG toggle,
    /// and writes CONS back (with OVACKFLG = OVFLG). Returns the faults taken by this call.
    /// </summary>
    public IReadOnlyList<SmmuFaultReport> ProcessEvents()
    {
        if (!Enabled) return [];
        var taken = new List<SmmuFaultReport>();
        var q = new SmmuQueue(EventRecord.Size);
        q.Configure(_evtqBase, _evtqLog2, _evtqLog2);
        uint prodReg = Registers.Read32((ulong)SmmuRegister.EVENTQ_PROD_PAGE1);
        q.Prod = prodReg & q.PointerMask;
        q.Cons = _evtqCons & q.PointerMask;
        Span<ulong> w = stackalloc ulong[4];
        while (!q.IsEmpty)
        {
            _ram.ReadUInt64s(q.EntryAddress(q.Cons), w);
            var evt = new EventRecord(w[0], w[1], w[2], w[3]);
            string? device = _masters.TryGetValue(evt.SID, out var m) ? m.Name : null;
            var report = new SmmuFaultReport(Name, device, evt.SID, evt);
            taken.Add(report);
            _faults.Add(report);
            Log.Warn(Name, $"event {Enum.GetName(evt.Type) ?? $"0x{(byte)evt.Type:X2}"} received: sid 0x{evt.SID:X} ({device ?? "no master"}) iova 0x{evt.InputAddress:X} [0x{evt.W0:X16} 0x{evt.W1:X16} 0x{evt.W2:X16} 0x{evt.W3:X16}]");
            q.Cons = q.Next(q.Cons);
        }
        uint ovf = prodReg & SmmuModel.Q_OVFLG;
        if (ovf != (_evtqCons & SmmuModel.Q_OVFLG))
        {
            EventsLostReported++;
            Log.Error(Name, "EVTQ overflow detected -- events lost");
        }
        _evtqCons = ovf | q.Cons;
        Registers.Write32((ulong)SmmuRegister.EVENTQ_CONS_PAGE1, _evtqCons);
        return taken;
    }

    /// <summary>
    /// The GERROR interrupt (arm_smmu_gerror_handler): reports every active error (GERROR ^ GERRORN),
    /// recovers a stopped command queue, and acknowledges by writing GERROR's value to GERRORN.
    /// Returns the bits that were active.
    /// </summary>
    public uint HandleGlobalErrors()
    {
        uint gerror = Registers.Read32((ulong)SmmuRegister.GERROR);
        uint gerrorn = Registers.Read32((ulong)SmmuRegister.GERRORN);
        uint active = gerror ^ gerrorn;
        if (active == 0) return 0;
        GlobalErrorsSeen |= active;
        Log.Warn(Name, $"unexpected global error reported (0x{active:X8}), this could be serious");
        if ((active & SmmuModel.GERROR_SFM_ERR) != 0) Log.Error(Name, "device has entered Service Failure Mode!");
        if ((active & SmmuModel.GERROR_MSI_GERROR_ABT_ERR) != 0) Log.Warn(Name, "GERROR MSI write aborted");
        if ((active & SmmuModel.GERROR_MSI_PRIQ_ABT_ERR) != 0) Log.Warn(Name, "PRIQ MSI write aborted");
        if ((active & SmmuModel.GERROR_MSI_EVENTQ_ABT_ERR) != 0) Log.Warn(Name, "EVTQ MSI write aborted");
        if ((active & SmmuModel.GERROR_MSI_CMDQ_ABT_ERR) != 0) Log.Warn(Name, "CMDQ MSI write aborted");
        if ((active & SmmuModel.GERROR_PRIQ_ABT_ERR) != 0) Log.Error(Name, "PRIQ write aborted -- events may have been lost");
        if ((active & SmmuModel.GERROR_EVENTQ_ABT_ERR) != 0) Log.Error(Name, "EVTQ write aborted -- events may have been lost");
        Registers.Write32((ulong)SmmuRegister.GERRORN, gerror);
        return active;
    }

    /// <summary>What an interrupt handler would do now: drain events and handle global errors.</summary>
    public IReadOnlyList<SmmuFaultReport> Service()
    {
        HandleGlobalErrors();
        return ProcessEvents();
    }
}
