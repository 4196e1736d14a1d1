using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Vmm.VSmmu;

/// <summary>
/// A guest-visible SMMUv3 (one <c>-device arm-smmuv3</c>): a 0x20000-byte register frame the VM
/// maps on its MMIO bus (page 1 aliases page 0, as QEMU's model does), four interrupt lines in
/// the order EVTQ, PRIQ, CMD_SYNC, GERROR, and the trap counters the VM's report shows.
/// <see cref="AcceleratedVSmmu"/> is accel=on, <see cref="EmulatedVSmmu"/> accel=off.
/// </summary>
public interface IVSmmu : IMmioDevice, IDisposable
{
    /// <summary>The device id (for messages and reports), e.g. <c>smmuv3.0</c>.</summary>
    string Name { get; }

    /// <summary>The resolved properties it was built with.</summary>
    VSmmuProperties Properties { get; }

    /// <summary>What the ID registers advertise.</summary>
    SmmuFeatures Features { get; }

    /// <summary>Every guest access to the frame, per register page.</summary>
    MmioTrapCounters Traps { get; }

    /// <summary>A wired interrupt fired (the VM routes it to the SPI the platform bus gave this device).</summary>
    event Action<SmmuInterrupt>? InterruptRaised;

    /// <summary>System reset: registers to their reset values (and, accelerated, devices back on the GBPA HWPT).</summary>
    void Reset();
}
