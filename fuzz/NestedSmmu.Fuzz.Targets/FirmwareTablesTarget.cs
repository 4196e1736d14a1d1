using NestedSmmu.Guest.Firmware;
using IortTable = NestedSmmu.Guest.Firmware.Iort;
using IortWriter = NestedSmmu.Vmm.Acpi.Iort;
using NestedSmmu.Vmm.Acpi;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.Fdt;
using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Fuzz;

/// <summary>
/// The firmware-table writers fed with random machines: the input bytes choose a virt command line
/// (expander buses with any bus_nr, bypass_iommu, arm-smmuv3 on any bus or iommu=smmuv3, accel=on with
/// cmdqv on the Grace host or emulated, root ports and endpoints anywhere). MachineValidator either
/// refuses it (fine: a user's mistake) or accepts it; an accepted machine must lay out (or be refused
/// for a full platform bus), and its IORT, DSDT and DTB must parse back with the guest's readers and
/// say what the board says: the same SMMUs at the same bases, a requester ID routed only to an SMMU
/// whose buses hold it, with StreamID = requester ID, one NVDA200C device per CMDQV.
/// </summary>
public static class FirmwareTablesTarget
{
    private static readonly string[] Endpoints = ["e1000e", "virtio-net-pci", "nvme,serial=fz"];

    /// <summary>Reads choices from the input; past its end every choice is 0.</summary>
    private sealed class Choices(byte[] input)
    {
        private int _at;

        public int Next(int bound) => bound <= 1 ? 0 : (_at < input.Length ? input[_at++] : 0) % bound;

        public bool Flag() => Next(2) == 1;

        public byte Byte() => (byte)Next(256);
    }

    public static void Run(byte[] input) => Boards(input);

    /// <summary>Runs the target; returns how many boards (one per bus-numbering view) had their tables checked, 0 when the machine was refused.</summary>
    public static int Boards(byte[] input)
    {
        IReadOnlyList<string> args = CommandLine(new Choices(input), out bool accel);
        MachineCheck check = MachineValidator.Check(args, accel ? FuzzTargets.GraceView : null);
        if (check.Error is not null) return 0;
        int boards = 0;
        foreach (PciNumberingView view in Enum.GetValues<PciNumberingView>())
        {
            VirtBoard board;
            try
            {
                board = VirtBoard.Layout(VirtBoardSpec.From(check, view));
            }
            catch (InvalidOperationException)
            {
                // The platform bus is full: QEMU's "Platform Bus: Can not fit ..." refusal.
                return boards;
            }
            boards++;
            try
            {
                CheckIort(board, IortTable.Parse(IortWriter.Build(board)));
                CheckDsdt(board, AmlScanner.FindDevices(Dsdt.Build(board)));
                if (VirtDeviceTree.Supports(board))
                    CheckDeviceTree(board, FdtIommuTopology.Read(FlattenedDeviceTree.Parse(VirtDeviceTree.Build(board))));
            }
            catch (Exception e)
            {
                // The command line makes the crash reproducible by hand (`nestedsmmu tables -- ...`).
                throw new InvalidOperationException($"{e.Message} ({view}; {string.Join(' ', args)})", e);
            }
        }
        return boards;
    }

    /// <summary>The command line the input stands for (for people reading a crash input).</summary>
    public static string Describe(byte[] input) => string.Join(' ', CommandLine(new Choices(input), out _));

    /// <summary>A virt command line from the choices; <paramref name="accel"/> when it needs the host (accel=on, vfio-pci).</summary>
    private static List<string> CommandLine(Choices c, out bool accel)
    {
        accel = c.Flag();
        var a = new List<string> { "-machine", accel ? "virt,accel=kvm" : "virt" };
        if (accel) a.AddRange(["-bios", "fw.fd", "-object", "iommufd,id=iommufd0"]);
        if (!accel && c.Next(4) == 0) a.AddRange(["-machine", "iommu=smmuv3"]);
        int buses = c.Next(4);
        var names = new List<string> { "pcie.0" };
        for (int i = 1; i <= buses; i++)
        {
            string bypass = c.Next(5) == 0 ? ",bypass_iommu=on" : "";
            a.AddRange(["-device", $"pxb-pcie,id=pcie.{i},bus=pcie.0,bus_nr={c.Byte()}{bypass}"]);
            names.Add($"pcie.{i}");
        }
        int smmus = c.Next(4);
        for (int i = 0; i < smmus; i++)
        {
            string bus = names[c.Next(names.Count)];
            string options = accel ? $",accel=on,cmdqv={(c.Flag() ? "on" : "off")}" + (c.Next(4) == 0 ? ",ats=on" : "") : "";
            a.AddRange(["-device", $"arm-smmuv3,primary-bus={bus},id=smmu{i}{options}"]);
        }
        int devices = c.Next(6);
        for (int i = 0; i < devices; i++)
        {
            string bus = names[c.Next(names.Count)];
            if (c.Flag())
            {
                a.AddRange(["-device", $"pcie-root-port,id=rp{i},bus={bus},chassis={i + 1}"]);
                bus = $"rp{i}";
            }
            if (accel)
            {
                var hosts = FuzzTargets.GraceView.Devices;
                a.AddRange(["-device", $"vfio-pci,host={hosts[c.Next(hosts.Count)].Address},bus={bus},id=dev{i},iommufd=iommufd0"]);
            }
            else
            {
                a.AddRange(["-device", $"{Endpoints[c.Next(Endpoints.Length)]},bus={bus},id=dev{i}"]);
            }
        }
        return a;
    }

    private static void CheckIort(VirtBoard board, IortTable iort)
    {
        var nodes = iort.SmmuV3Nodes.ToList();
        Expect(nodes.Count == board.Smmus.Count, $"IORT has {nodes.Count} SMMUv3 nodes for {board.Smmus.Count} SMMUs");
        foreach (PlacedSmmu s in board.Smmus)
        {
            Expect(nodes.Any(n => n.BaseAddress == s.Base), $"IORT has no SMMUv3 node at 0x{s.Base:X} ({s.Id})");
            // A requester ID routed through an SMMU goes to one whose bus ranges hold it, with StreamID = RID.
            // Ranges may overlap (before enumeration QEMU's pci_bus_range takes the bridges' secondary bus 0
            // as a root bus's minimum), and IORT then maps the RID through the first node, as QEMU does.
            foreach (PciBusRange r in s.Ranges)
                foreach (byte bus in new[] { r.Min, r.Max })
                {
                    ushort rid = (ushort)(bus << 8);
                    if (!iort.TryResolve(0, rid, out IortStreamRoute route)) continue;
                    Expect(route.StreamId == rid, $"IORT gives RID 0x{rid:X4} StreamID 0x{route.StreamId:X}");
                    Expect(board.Smmus.Any(o => o.Base == route.Smmu.BaseAddress && o.Ranges.Any(x => x.Min <= bus && bus <= x.Max)),
                        $"IORT routes RID 0x{rid:X4} to the SMMU at 0x{route.Smmu.BaseAddress:X}, whose buses do not include {bus}");
                }
        }
    }

    private static void CheckDsdt(VirtBoard board, List<AcpiDevice> devices)
    {
        int cmdqvs = devices.Count(d => d.Hid == Dsdt.CmdqvHid);
        int expected = board.Smmus.Count(s => s.CmdqvBase is not null);
        Expect(cmdqvs == expected, $"DSDT has {cmdqvs} {Dsdt.CmdqvHid} devices for {expected} CMDQVs");
    }

    private static void CheckDeviceTree(VirtBoard board, FdtIommuTopology tree)
    {
        Expect(tree.Smmus.Count <= 1, $"the device tree has {tree.Smmus.Count} arm,smmu-v3 nodes; QEMU describes at most one");
        foreach (FdtSmmuV3 node in tree.Smmus)
        {
            PlacedSmmu? s = board.Smmus.FirstOrDefault(x => x.Base == node.BaseAddress);
            Expect(s is not null, $"the device tree's SMMU at 0x{node.BaseAddress:X} is not on the board");
            foreach (PciBusRange r in s!.Ranges)
            {
                ushort rid = (ushort)(r.Min << 8);
                Expect(tree.TryResolve(rid, out FdtSmmuV3 to, out uint sid) && to.BaseAddress == s.Base && sid == rid,
                    $"the device tree's iommu-map does not route RID 0x{rid:X4} to {s.Id} with StreamID = RID");
            }
        }
    }

    private static void Expect(bool fact, string message)
    {
        if (!fact) throw new InvalidOperationException("firmware tables: " + message);
    }
}
