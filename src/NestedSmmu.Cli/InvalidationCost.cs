using System.Diagnostics;
using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;
using NestedSmmu.Vmm.Machine;
using NestedSmmu.Vmm.VCmdqv;
using NestedSmmu.Vmm.VSmmu;
using G = NestedSmmu.Vmm.VCmdqv.GuestCmdqvLayout;
using Hw = NestedSmmu.Hardware.Cmdqv.Tegra241Cmdqv;

namespace NestedSmmu.Cli;

/// <summary>What one batch of N TLBI_NH_VA + CMD_SYNC cost on one path, counted in the model.</summary>
/// <param name="Path">"trapped" (vSMMU, IOMMU_HWPT_INVALIDATE) or "direct" (guest-owned VCMDQ).</param>
/// <param name="Tlbis">N.</param>
/// <param name="VmExits">Guest MMIO accesses the VMM had to emulate (each a VM exit to the VMM).</param>
/// <param name="Ioctls">IOMMU_HWPT_INVALIDATE calls the VMM made.</param>
/// <param name="HostCommands">Commands the physical SMMU executed (the kernel's own CMD_SYNCs included).</param>
/// <param name="Doorbells">PROD writes that reached hardware without an exit (the VCMDQ's mapped page).</param>
/// <param name="ModelNs">Wall time of the batch in this model (not a prediction for hardware).</param>
public sealed record InvalidationCounts(string Path, int Tlbis, long VmExits, long Ioctls, long HostCommands, long Doorbells, double ModelNs);

/// <summary>
/// Named costs that turn <see cref="InvalidationCounts"/> into an estimated latency on real
/// hardware. ESTIMATE ONLY: the defaults are round, order-of-magnitude assumptions made for this
/// project, each tied to the published measurement of that quantity named in docs/PERFORMANCE.md;
/// replace them with figures measured on the target machine.
/// </summary>
public sealed record InvalidationCostModel(double VmExitNs = 5_000, double IoctlNs = 1_000, double HostCommandNs = 200, double MmioDoorbellNs = 500)
{
    public double EstimateNs(InvalidationCounts c) =>
        c.VmExits * VmExitNs + c.Ioctls * IoctlNs + c.HostCommands * HostCommandNs + c.Doorbells * MmioDoorbellNs;
}

/// <summary>
/// Runs one batch of N TLBI_NH_VA + CMD_SYNC both ways on the embedded 'grace' host and counts
/// what each costs: through an accelerated vSMMU (the guest writes CMDQ_PROD and polls CMDQ_CONS,
/// each a trap; the VMM forwards the TLBIs per CMD_SYNC with IOMMU_HWPT_INVALIDATE) and through
/// a guest-owned VCMDQ of the Tegra241 CMDQV (the same two accesses on the mapped VINTF page, no
/// exit). The guest side is written out here as a Linux-like driver would do it.
/// </summary>
internal static class InvalidationCost
{
    private const ulong RamSize = 0x100_0000;
    private const ulong SmmuFrame = 0x0C00_0000, CmdqvFrame = 0x0C10_0000;
    private const int CmdqLog2 = 8;
    private const ushort Asid = 1;
    private const ulong Va = 0x1000_0000;

    public static IReadOnlyList<InvalidationCounts> Run(IReadOnlyList<int> batchSizes)
    {
        var results = new List<InvalidationCounts>();
        // One run of each first, so the model times below are not the JIT's.
        Trapped(1);
        Direct(1);
        foreach (int n in batchSizes) results.Add(Trapped(n));
        foreach (int n in batchSizes) results.Add(Direct(n));
        return results;
    }

    private static Command Tlbi(int i) => Command.TlbiNhVa(0, Asid, Va + (ulong)i * 0x1000, leaf: true);

    public static InvalidationCounts Trapped(int n)
    {
        var host = new EmulatedHost(HostProfile.LoadEmbedded("grace"));
        using var fd = host.Open();
        using var ram = new GuestRam(fd, GuestRam.VirtRamBase, RamSize);
        var context = new VSmmuHostContext(fd, ram.Ioas);
        using var vsmmu = new AcceleratedVSmmu("smmuv3.0", new VSmmuProperties(Accel: true, Ril: true, OasBits: 48), ram, context);
        var bus = new MmioBus();
        bus.Map(SmmuFrame, vsmmu, vsmmu.Name);
        vsmmu.AttachDevice(fd.BindDevice("nic0"), 0x100);
        // The guest's command queue in its RAM; the driver's queue setup (traps, not counted).
        ulong cmdq = ram.Base + RamSize / 2;
        void W32(SmmuRegister r, uint v) => bus.Write(SmmuFrame + (ulong)r, 4, v);
        bus.Write(SmmuFrame + (ulong)SmmuRegister.CMDQ_BASE, 8, cmdq | CmdqLog2);
        W32(SmmuRegister.CMDQ_PROD, 0);
        W32(SmmuRegister.CMDQ_CONS, 0);
        W32(SmmuRegister.CR0, SmmuV3.CR0_CMDQEN);

        string smmu = host.Diagnostics.SmmuOf("nic0");
        long traps = vsmmu.Traps.Total, batches = vsmmu.Counters.Batches, executed = host.Diagnostics.Counters(smmu).CommandsExecuted;
        long start = Stopwatch.GetTimestamp();
        uint prod = 0, mask = (2u << CmdqLog2) - 1;
        for (int i = 0; i <= n; i++)
        {
            Command c = i < n ? Tlbi(i) : Command.Sync();
            ulong slot = cmdq + (prod & ((1u << CmdqLog2) - 1)) * (ulong)Command.Size;
            ram.WriteUInt64(slot, c.W0);
            ram.WriteUInt64(slot + 8, c.W1);
            prod = (prod + 1) & mask;
        }
        W32(SmmuRegister.CMDQ_PROD, prod);                                     // the doorbell: a trap
        uint cons = (uint)bus.Read(SmmuFrame + (ulong)SmmuRegister.CMDQ_CONS, 4); // the sync poll: a trap
        double ns = Stopwatch.GetElapsedTime(start).TotalNanoseconds;
        if (cons != prod) throw new InvalidOperationException($"the vSMMU did not consume the batch (CONS 0x{cons:X}, PROD 0x{prod:X})");
        return new InvalidationCounts("trapped", n, vsmmu.Traps.Total - traps, vsmmu.Counters.Batches - batches,
            host.Diagnostics.Counters(smmu).CommandsExecuted - executed, 0, ns);
    }

    public static InvalidationCounts Direct(int n)
    {
        var host = new EmulatedHost(HostProfile.LoadEmbedded("grace"));
        using var fd = host.Open();
        HostMemoryRegion ram = fd.AllocateHostMemory(RamSize, "ram0");
        IoasId ioas = fd.AllocIoas();
        fd.MapIoas(ioas, ram, 0, RamSize, GuestRam.VirtRamBase);
        DeviceId dev = fd.BindDevice("gpu0");
        HwptId parent = fd.AllocPagingHwpt(dev, ioas, HwptAllocFlags.NestParent);
        ViommuAllocation viommu = fd.AllocTegra241CmdqvViommu(dev, parent).Viommu;
        var bus = new MmioBus();
        using var cmdqv = new Tegra241VCmdqv(fd, viommu, "gpu0", [new GuestRamBlock("ram0", GuestRam.VirtRamBase, RamSize, 0x1000)], bus, CmdqvFrame,
            new IrqLine("cmdqv"), "cmdqv");
        void W32(ulong offset, uint v) => bus.Write(CmdqvFrame + offset, 4, v);
        // The guest driver's bring-up of VINTF0 with queue 0 (traps, not counted).
        ulong queue = GuestRam.VirtRamBase + RamSize / 2;
        W32(Tegra241CmdqvLayout.CmdqAlloc(0), Hw.EncodeCmdqAlloc(G.Vintf0, 0));
        bus.Write(CmdqvFrame + G.Offset(CmdqvPage.VintfPage1, 0, VcmdqPage1Register.BASE), 8, Hw.EncodeVcmdqBase(queue, CmdqLog2));
        W32(G.Vintf0Config, Hw.EncodeVintfConfig(enable: true, vmid: 1, hypOwn: false));
        W32(G.Offset(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.CONFIG), Hw.VCMDQ_EN);

        string smmu = host.Diagnostics.SmmuOf("gpu0");
        long traps = cmdqv.Counters.TotalTraps, doorbells = cmdqv.Counters.DirectProdWrites(0);
        long executed = host.Diagnostics.Counters(smmu).CommandsExecuted;
        long start = Stopwatch.GetTimestamp();
        Span<byte> b = stackalloc byte[Command.Size];
        for (int i = 0; i <= n; i++)
        {
            Command c = i < n ? Tlbi(i) : Command.Sync();
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(b, c.W0);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(b[8..], c.W1);
            ram.Write(queue - GuestRam.VirtRamBase + (ulong)i * Command.Size, b);
        }
        W32(G.Offset(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.PROD), (uint)(n + 1));
        uint cons = (uint)bus.Read(CmdqvFrame + G.Offset(CmdqvPage.VintfPage0, 0, VcmdqPage0Register.CONS), 4);
        double ns = Stopwatch.GetElapsedTime(start).TotalNanoseconds;
        if (cons != (uint)(n + 1)) throw new InvalidOperationException($"the VCMDQ did not consume the batch (CONS 0x{cons:X})");
        return new InvalidationCounts("direct", n, cmdqv.Counters.TotalTraps - traps, 0,
            host.Diagnostics.Counters(smmu).CommandsExecuted - executed, cmdqv.Counters.DirectProdWrites(0) - doorbells, ns);
    }
}
