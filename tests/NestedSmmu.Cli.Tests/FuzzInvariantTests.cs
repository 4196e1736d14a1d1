using NestedSmmu.Cli.Fuzz;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Vmm.Machine;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Cli.Tests;

/// <summary>
/// Each of the campaign's cross-VM and event invariants can fail: a fault only a test can inject
/// (<see cref="CampaignOptions.InjectFault"/>) breaks what it watches, and the campaign must name it.
/// </summary>
[Collection(CampaignCollection.Name)]
public sealed class FuzzInvariantTests
{
    private static IReadOnlyList<string> Broken(InjectedFault fault)
    {
        FuzzOutcome o = IsolationCampaign.Run(seed: 3, operations: 3_000, new CampaignOptions { InjectFault = () => fault, Shrink = false });
        o.Crashes.ShouldBeEmpty(string.Join("\n", o.Crashes));
        return [.. o.Violations.Select(v => v.Invariant).Distinct()];
    }

    private static VmDevice FirstDevice(Vm vm) => vm.Devices.First(d => d.CanDma && d.Host is not null);

    [Fact]
    public void Events_the_VMM_drops_without_a_mark_break_the_fault_accounting()
    {
        // After each DMA the acting VM's vEVENTQs are read and thrown away: faults for the guest vanish.
        Broken((op, self, _, _, _) =>
        {
            if (op.Kind != "dma") return;
            foreach (AcceleratedVSmmu a in self.Vsmmus.Select(v => v.Device).OfType<AcceleratedVSmmu>())
                if (a.Veventq is { HasEvents: true } q) q.ReadAll();
        }).ShouldContain("every fault reaches the VM's event queue or is marked lost (overflow, LOST_EVENTS, host log), never dropped silently");
    }

    [Fact]
    public void A_register_write_that_walks_the_other_VMs_tables_breaks_the_walk_cache_invariant()
    {
        // During VM 0's register writes, a device of VM 1 translates addresses of its own: its walks fill the walk cache.
        ulong page = 0;
        Broken((op, _, other, host, _) =>
        {
            if (op.Vm != 0 || op.Kind != "write") return;
            var data = new byte[8];
            host.Dma(FirstDevice(other).Host!.Address, other.Ram.Base + (page++ % 64) * 0x1000, AccessKind.Read, data);
        }).ShouldContain("no command of one VM changes the other VM's walk-cache entries");
    }

    [Fact]
    public void An_ATC_invalidation_for_the_other_VM_breaks_the_ATC_invariant()
    {
        // During VM 0's commands, VM 1's vIOMMU is told to invalidate its devices' ATCs (what a leaked ATC_INV would do).
        Broken((op, _, other, _, _) =>
        {
            if (op.Vm != 0 || op.Kind != "command") return;
            foreach (VmDevice d in other.Devices.Where(d => d.Vsmmu?.Device is AcceleratedVSmmu { Viommu: not null }))
            {
                var a = (AcceleratedVSmmu)d.Vsmmu!.Device;
                Command inv = Command.AtcInv(d.Vsid, null, 0, 52, false);
                other.Iommufd.InvalidateArmSmmuV3(a.Viommu!.Id, [inv.W0, inv.W1]);
            }
        }).ShouldContain("no operation of one VM changes the other VM's ATC entries");
    }

    [Fact]
    public void A_command_the_other_VMs_VINTF_runs_during_this_VMs_step_breaks_the_VINTF_invariant()
    {
        // During VM 0's commands, VM 1's guest driver publishes a TLBI_NH_ASID on one of its own VCMDQs:
        // legal for VM 1, but the admitted command then belongs to a VINTF that is not the acting VM's.
        Broken((op, _, _, _, otherKernel) =>
        {
            if (op.Vm != 0 || op.Kind != "command") return;
            foreach (var smmu in otherKernel.Smmus)
            {
                if (smmu.Cmdqv?.Lvcmdqs.FirstOrDefault(q => q is not null) is not { } queue) continue;
                queue.Issue([Command.TlbiNhAsid(0, 1)], true);
                return;
            }
        }).ShouldContain("a guest VINTF runs only its allowed commands, with its own VMID and StreamIDs");
    }
}
