using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Vmm.VSmmu;

public sealed partial class AcceleratedVSmmu
{
    private IVeventQueue? _veventq;
    private uint _lastSequence;
    private bool _sequenceStarted;

    /// <summary>The vEVENTQ, while the vIOMMU exists and the guest's event queue is enabled.</summary>
    public IVeventQueue? Veventq => _veventq;

    /// <summary>smmuv3_accel_alloc_veventq: one ARM_SMMUV3 vEVENTQ of depth 1 &lt;&lt; EVENTQ log2size.</summary>
    private void EnsureVeventq()
    {
        if (_viommu is null || _veventq is not null || !EventQueueEnabled) return;
        try
        {
            _veventq = Fd.AllocVeventq(_viommu.Id, VeventqType.ArmSmmuV3, _regs.EventQueue.Entries);
            _sequenceStarted = false;
        }
        catch (IommufdException e)
        {
            // The guest's queue still works for nothing but host events; say why they will not come.
            Report($"vEVENTQ allocation failed ({e.Errno}): host events will not reach the guest");
        }
    }

    /// <summary>smmuv3_accel_free_veventq: close the reader, then destroy the object.</summary>
    private void FreeVeventq()
    {
        if (_veventq is null) return;
        ServiceHostEvents();
        VeventqId id = _veventq.Id;
        _veventq.Dispose();
        _veventq = null;
        Destroy(id, "vEVENTQ");
    }

    /// <summary>
    /// Copies every pending host vEVENT into the guest's event queue (smmuv3_accel_event_read; the
    /// fd handler). A lost-events record or a gap in the sequence numbers becomes the guest-visible
    /// overflow (EVENTQ_PROD.OVFLG). Runs before every trap, as an fd handler would have run before
    /// the vCPU exit; a VM's run loop may call it too. Returns the records copied.
    /// </summary>
    public int ServiceHostEvents()
    {
        if (_veventq is null || !_veventq.HasEvents) return 0;
        IReadOnlyList<Vevent> vevents;
        try
        {
            vevents = _veventq.ReadAll();
        }
        catch (IommufdException e)
        {
            Report($"vEVENTQ {_veventq.Id}: read failed ({e.Errno})");
            return 0;
        }
        int delivered = 0;
        foreach (Vevent vevent in vevents)
        {
            if (vevent.LostEvents)
            {
                Report("vEVENTQ overflowed: events lost");
                Counters.EventsLost++;
                SignalOverflow();
                _sequenceStarted = false;
                continue;
            }
            if (_sequenceStarted && vevent.Sequence != Vevent.NextSequence(_lastSequence))
            {
                uint missing = (vevent.Sequence - _lastSequence - 1) & Vevent.MaxSequence;
                Report($"vEVENTQ lost {missing} event(s)");
                Counters.EventsLost += missing;
                SignalOverflow();
            }
            _lastSequence = vevent.Sequence;
            _sequenceStarted = true;
            ArmSmmuV3Vevent e = vevent.AsArmSmmuV3();
            // The kernel already put the vSID into evt[0]; the record goes to the guest as it is.
            if (RecordEvent(new EventRecord(e.Evt0, e.Evt1, e.Evt2, e.Evt3))) delivered++;
        }
        return delivered;
    }

    /// <summary>
    /// Writes an event record into the guest's event queue (IHI 0070 7.4, smmuv3_write_eventq).
    /// False when it could not: the queue is off, full (OVFLG toggled) or outside RAM (GERROR.EVENTQ_ABT_ERR).
    /// </summary>
    private bool RecordEvent(in EventRecord evt)
    {
        bool overflowPending = _regs.EventQueueOverflowPending;
        EventWriteResult result = _regs.WriteEvent(_memory, evt);
        if (result == EventWriteResult.Written)
        {
            Counters.EventsDelivered++;
            return true;
        }
        Counters.EventsLost++;
        if (result == EventWriteResult.Overflow && !overflowPending) Counters.Overflows++;
        return false;
    }

    /// <summary>Reports events lost before the guest's queue (vEVENTQ overflow, sequence gaps) through OVFLG (IHI 0070 7.4.1).</summary>
    private void SignalOverflow()
    {
        if (_regs.SignalEventQueueOverflow()) Counters.Overflows++;
    }

    private void Raise(SmmuInterrupt source, ulong msiAddress, uint msiData)
    {
        if (Features.Msi && msiAddress != 0)
        {
            SignalMsi(msiAddress, msiData);
            return;
        }
        Counters.Interrupts++;
        InterruptRaised?.Invoke(source);
    }

    /// <summary>An MSI: a 32-bit write of the data; into guest RAM directly, else to whatever the VM maps there.</summary>
    private void SignalMsi(ulong address, uint data)
    {
        Counters.Interrupts++;
        if (!_memory.IsAbort(address, sizeof(uint))) _memory.WriteUInt32(address, data);
        else MsiRaised?.Invoke(address, data);
    }
}
