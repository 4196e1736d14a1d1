using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Vmm.VSmmu;

public sealed partial class AcceleratedVSmmu
{
    // The architected register frame, queue pointers and GERROR are Hardware's SmmuRegisterFile
    // (shared with the SMMUv3 model); page 1 mirrors page 0 as QEMU decodes it (offset & 0xFFFF,
    // hw/arm/smmuv3.c smmu_read_mmio). What guest writes do beyond that is below.
    private readonly SmmuRegisterFile _regs;

    /// <summary>CR0.SMMUEN.</summary>
    public bool Enabled => _regs.Enabled;
    /// <summary>CR0.CMDQEN.</summary>
    public bool CommandQueueEnabled => _regs.CommandQueueEnabled;
    /// <summary>CR0.EVENTQEN.</summary>
    public bool EventQueueEnabled => _regs.EventQueueEnabled;
    /// <summary>Active, unacknowledged global errors (GERROR ^ GERRORN).</summary>
    public uint GlobalErrors => _regs.GlobalErrors;
    /// <summary>CMDQ_CONS.ERR.</summary>
    public CommandError CommandQueueError => _regs.CommandQueueError;
    /// <summary>GBPA.ABORT: with the SMMU disabled, incoming traffic aborts rather than bypasses.</summary>
    public bool GbpaAbort => _regs.GlobalBypassAborts;

    private SmmuRegisterFile CreateRegisters() => new(Features, new RegisterEffects(this), SmmuPage1Decoding.MirrorsPage0);

    /// <summary>A guest read of the frame (a trap). Undefined offsets and widths read as zero; never throws.</summary>
    public ulong Read(ulong offset, int width)
    {
        if (offset >= Size) return 0;
        Traps.Record(offset, write: false);
        ServiceHostEvents();
        return _regs.Read(offset, width);
    }

    /// <summary>A guest write to the frame (a trap). Read-only and undefined offsets ignore it; never throws.</summary>
    public void Write(ulong offset, int width, ulong value)
    {
        if (offset >= Size) return;
        Traps.Record(offset, write: true);
        ServiceHostEvents();
        _regs.Write(offset, width, value);
    }

    private sealed class RegisterEffects(AcceleratedVSmmu vsmmu) : ISmmuRegisterEffects
    {
        public void ControlChanged(uint oldCr0, uint newCr0)
        {
            uint changed = oldCr0 ^ newCr0;
            if ((changed & SmmuV3.CR0_EVENTQEN) != 0)
            {
                // smmuv3_accel_alloc_veventq: the vEVENTQ follows the guest's event queue, sized like it.
                if (vsmmu.EventQueueEnabled) vsmmu.EnsureVeventq();
                else vsmmu.FreeVeventq();
            }
            // Enabling or disabling the SMMU changes what every STE means: each device goes to its
            // guest STE's HWPT (enabled) or to the GBPA HWPT (disabled).
            if ((changed & SmmuV3.CR0_SMMUEN) != 0) vsmmu.InstallAll();
        }

        // smmuv3_accel_attach_gbpa_hwpt: with the SMMU disabled, GBPA is what the devices see.
        public void GlobalBypassChanged() { if (!vsmmu.Enabled) vsmmu.InstallAll(); }

        public void CommandsPending() => vsmmu.ConsumeCommands();

        public void Signal(SmmuInterrupt source, ulong msiAddress, uint msiData) => vsmmu.Raise(source, msiAddress, msiData);
    }

    private void SetGlobalError(uint bit) => _regs.SetGlobalError(bit);
}
