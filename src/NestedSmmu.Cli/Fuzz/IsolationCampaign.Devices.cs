using System.Buffers.Binary;
using NestedSmmu.Guest;
using NestedSmmu.Guest.Smmu;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Cli.Fuzz;

internal static partial class IsolationCampaign
{
    /// <summary>
    /// Commands straight into one of the guest's VCMDQs (the direct path, no VM exit): whatever the
    /// operation carries, legal for a guest or not, foreign SIDs and VMIDs included, published through
    /// the guest CMDQV driver's queue, whose error handler repairs a refused command as Linux's does.
    /// </summary>
    private static string IssueVcmdq(Guest self, FuzzOp op)
    {
        VmVsmmu v = VsmmuOf(self, op);
        GuestSmmu? smmu = self.Kernel.Smmus.FirstOrDefault(s => s.BaseAddress == v.Placed.Base);
        if (smmu?.Cmdqv is not { } cmdqv) return $"vcmdq skipped ({v.Name} has no guest CMDQV driver)";
        var queues = cmdqv.Lvcmdqs.Where(q => q is not null).ToList();
        if (queues.Count == 0) return $"vcmdq skipped ({v.Name}: no logical VCMDQ set up)";
        GuestCommandQueue queue = queues[Math.Max(op.Slot, 0) % queues.Count]!;
        byte[] bytes = Convert.FromHexString(op.Bytes ?? "");
        var commands = new Command[bytes.Length / Command.Size];
        for (int i = 0; i < commands.Length; i++)
            commands[i] = new Command(BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(i * Command.Size)),
                BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(i * Command.Size + sizeof(ulong))));
        bool done = queue.Issue(commands, op.Flag);
        return $"vcmdq {v.Name} {queue.Name}: {string.Join(" ", commands.Select(c => c.Opcode))}{(op.Flag ? " + CMD_SYNC" : "")} " +
               $"({(done ? "consumed" : "not consumed")})";
    }

    /// <summary>device_del of one of the VM's devices; the VMM may refuse (the CMDQV unplug policy).</summary>
    private static string Unplug(Guest self, FuzzOp op)
    {
        if (self.Devices.Count == 0) return "unplug skipped (no device)";
        VmDevice d = self.Devices[Math.Max(op.Device, 0) % self.Devices.Count];
        try
        {
            self.Vm.Unplug(d.Name);
        }
        catch (InvalidOperationException e)
        {
            return $"unplug {d.Name} refused: {e.Message}";
        }
        self.Devices.Remove(d);
        self.Unplugged.Add(d.Name);
        self.Vmids.Clear(); // a freed stage-2 domain's VMID may go to the other VM: learn them again from the STEs
        return $"unplug {d.Name}";
    }

    /// <summary>device_add of a device the VM had; the guest then sets it up again (STE, CFGI_STE).</summary>
    private static string HotPlug(Guest self, FuzzOp op)
    {
        if (self.Unplugged.Count == 0) return "hotplug skipped (nothing unplugged)";
        string name = self.Unplugged[Math.Max(op.Device, 0) % self.Unplugged.Count];
        VmDevice d;
        try
        {
            d = self.Vm.HotPlug(self.PlugOptions[name]);
        }
        catch (Exception e) when (e is QemuConfigException or IommufdException)
        {
            return $"hotplug {name} refused: {e.Message}";
        }
        self.Unplugged.Remove(name);
        self.Devices.Add(d);
        self.Vmids.Clear();
        if (self.Kernel.Device(d.RequesterId) is null) self.Kernel.AddPciDevice(d.Name, d.RequesterId, ats: true);
        string sync = Submit(self.Vm, d.Vsmmu!.Placed.Base, Command.CfgiSte(d.Vsid));
        return $"hotplug {name} on {d.Vsmmu.Name}, CFGI_STE {sync}";
    }

    /// <summary>
    /// Every device of one vSMMU unplugged while its queues run (the last one frees the vIOMMU, its
    /// vEVENTQ and, with cmdqv, the guest VINTF and its VCMDQs, unless the unplug policy refuses).
    /// </summary>
    private static string TeardownViommu(Guest self, FuzzOp op)
    {
        VmVsmmu v = VsmmuOf(self, op);
        var devices = self.Devices.Where(d => d.Vsmmu == v).ToList();
        if (devices.Count == 0) return $"viommu-teardown skipped ({v.Name} has no device)";
        int n = 0;
        foreach (VmDevice d in devices)
        {
            try
            {
                self.Vm.Unplug(d.Name);
            }
            catch (InvalidOperationException e)
            {
                return $"viommu-teardown {v.Name}: {n} of {devices.Count} unplugged, refused: {e.Message}";
            }
            self.Devices.Remove(d);
            self.Unplugged.Add(d.Name);
            self.Vmids.Clear();
            n++;
        }
        return $"viommu-teardown {v.Name}: all {n} unplugged";
    }
}
