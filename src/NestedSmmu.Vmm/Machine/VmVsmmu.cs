using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.VCmdqv;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Vmm.Machine;

/// <summary>
/// One vSMMU of a realized <see cref="Vm"/>: where the board placed it, what it was built with,
/// the physical SMMU it is bound to (accel=on, once a device bound it) and its guest CMDQV while
/// its vIOMMU exists.
/// </summary>
public sealed class VmVsmmu
{
    private readonly long[] _interrupts = new long[VirtBoard.SmmuIrqCount];

    internal VmVsmmu(VsmmuCheck check, PlacedSmmu placed, IVSmmu device, VmTrapTap tap, ResolvedSmmuProperties? resolved)
    {
        Check = check;
        Placed = placed;
        Device = device;
        Tap = tap;
        Resolved = resolved;
        device.InterruptRaised += line => _interrupts[(int)line]++;
    }

    /// <summary>Its id (<c>smmuv3.1</c>) or <c>iommu=smmuv3</c>.</summary>
    public string Name => Check.Name;

    /// <summary>The validator's view of it.</summary>
    public VsmmuCheck Check { get; }

    /// <summary>Its MMIO base, identifier and SPIs on the board.</summary>
    public PlacedSmmu Placed { get; }

    /// <summary>The guest-visible SMMUv3.</summary>
    public IVSmmu Device { get; }

    /// <summary>accel=on.</summary>
    public bool Accel => Device is AcceleratedVSmmu;

    /// <summary>The resolved properties (from validation, or from the first device when it was hot-plugged).</summary>
    public ResolvedSmmuProperties? Resolved { get; internal set; }

    /// <summary>The device that bound it to its physical SMMU, and that device's host function.</summary>
    public (string Device, HostDeviceInfo Host)? BoundBy { get; internal set; }

    /// <summary>The physical SMMU it nests on, once bound.</summary>
    public string? PhysicalSmmu => BoundBy?.Host.PhysicalSmmu ?? Resolved?.PhysicalSmmu;

    /// <summary>The guest-visible CMDQV while the vIOMMU exists (cmdqv on).</summary>
    public Tegra241VCmdqv? Cmdqv { get; internal set; }

    /// <summary>The CMDQV interrupt line (cmdqv on).</summary>
    public IrqLine? CmdqvIrq { get; internal set; }

    /// <summary>Traps taken on its frame, and on CMDQ_PROD/CMDQ_CONS among them.</summary>
    public long Traps => Tap.Traps;

    /// <inheritdoc cref="VmTrapTap.CommandQueueTraps"/>
    public long CommandQueueTraps => Tap.CommandQueueTraps;

    /// <summary>CMDQV traps summed over every CMDQV this vSMMU had (they come and go with the vIOMMU).</summary>
    public long CmdqvTraps => RetiredCmdqvTraps + (Cmdqv?.Counters.TotalTraps ?? 0);

    /// <summary>Accesses through the mapped host VINTF page (no VMM code ran), over every CMDQV it had.</summary>
    public long CmdqvDirectAccesses => RetiredCmdqvDirect + (Cmdqv?.Counters.TotalDirect ?? 0);

    /// <summary>PROD writes (doorbells) through the mapped host VINTF page, over every CMDQV it had.</summary>
    public long CmdqvDirectDoorbells => RetiredCmdqvDoorbells
        + (Cmdqv is { } c ? Enumerable.Range(0, GuestCmdqvLayout.NumVcmdqs).Sum(c.Counters.DirectProdWrites) : 0);

    /// <summary>Interrupts raised on line <paramref name="line"/> (its SPI is <see cref="PlacedSmmu.Spi"/> + line).</summary>
    public long Interrupts(SmmuInterrupt line) => _interrupts[(int)line];

    /// <summary>Every interrupt it raised.</summary>
    public long TotalInterrupts => _interrupts.Sum();

    /// <summary>The devices behind it now.</summary>
    public List<VmDevice> Devices { get; } = [];

    internal VmTrapTap Tap { get; }
    internal long RetiredCmdqvTraps { get; set; }
    internal long RetiredCmdqvDirect { get; set; }
    internal long RetiredCmdqvDoorbells { get; set; }
    internal Exception? CmdqvFailure { get; set; }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} at 0x{Placed.Base:X} ({(Accel ? "accel" : "emulated")}{(Cmdqv is null ? "" : ", CMDQV")})";
}
