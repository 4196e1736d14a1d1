using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Vmm.Machine;

/// <summary>
/// A vSMMU frame as the VM's MMIO bus holds it: every access is a trap (a VM exit into the VMM),
/// counted here with the ones on the command-queue doorbell and completion registers
/// (CMDQ_PROD, CMDQ_CONS: what each trapped invalidation batch costs) apart, then passed on.
/// </summary>
internal sealed class VmTrapTap(IVSmmu vsmmu, Action<string>? trace) : IMmioDevice
{
    private const ulong PageOffsetMask = MmioTrapCounters.PageSize - 1;

    public IVSmmu VSmmu { get; } = vsmmu;
    public Action<string>? Trace { get; set; } = trace;
    public ulong Size => VSmmu.Size;
    public long Traps { get; private set; }
    public long CommandQueueTraps { get; private set; }

    public ulong Read(ulong offset, int width)
    {
        Count(offset);
        ulong value = VSmmu.Read(offset, width);
        Trace?.Invoke($"mmio {VSmmu.Name} R{width * 8} +0x{offset:X5} = 0x{value:X}");
        return value;
    }

    public void Write(ulong offset, int width, ulong value)
    {
        Count(offset);
        Trace?.Invoke($"mmio {VSmmu.Name} W{width * 8} +0x{offset:X5} = 0x{value:X}");
        VSmmu.Write(offset, width, value);
    }

    private void Count(ulong offset)
    {
        Traps++;
        // Page 1 aliases page 0 in QEMU's frame, so a guest may ring the doorbell through either.
        ulong register = offset & PageOffsetMask;
        if (register is (ulong)SmmuRegister.CMDQ_PROD or (ulong)SmmuRegister.CMDQ_CONS) CommandQueueTraps++;
    }
}
