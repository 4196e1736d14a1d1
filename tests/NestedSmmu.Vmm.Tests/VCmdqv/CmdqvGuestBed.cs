using System.Buffers.Binary;
using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;
using NestedSmmu.Vmm.VCmdqv;
using G = NestedSmmu.Vmm.VCmdqv.GuestCmdqvLayout;
using Hw = NestedSmmu.Hardware.Cmdqv.Tegra241Cmdqv;

namespace NestedSmmu.Vmm.Tests.VCmdqv;

/// <summary>
/// One VM on the emulated 'grace' host, set up in the test through IIommufd as the vSMMU would:
/// guest RAM mapped at its GPA in an IOAS, a nest parent, a TEGRA241_CMDQV vIOMMU and a vDEVICE
/// for gpu0 (smmu0), and a guest stage 1 attached through a nested HWPT. The guest CMDQV sits on
/// the guest's MMIO bus; the test drives it through that bus only, as a guest driver does.
/// </summary>
internal sealed class CmdqvGuestBed : IDisposable
{
    public const ulong RamGpa = 0x4000_0000;
    public const ulong RamSize = 0x100_0000;
    public const ulong CmdqvBase = 0x0C00_0000;
    public const uint Vsid = 0x18;
    public const ushort Asid = 5;
    public const ulong Va = 0x1000_0000, Va2 = 0x1000_1000;
    public const ulong DataGpa = RamGpa + 0x10_0000;
    /// <summary>Guest VCMDQ buffers: 256 entries (4 KiB) each.</summary>
    public const int QueueLog2Entries = 8;
    public const ulong QueueBytes = 0x1000;
    public static readonly ulong[] QueueGpa = [RamGpa + 0x40_0000, RamGpa + 0x41_0000];
    public const string Smmu = "smmu0";
    public const string Device = "gpu0";

    private ulong _nextTable = RamGpa + RamSize / 2;

    public CmdqvGuestBed(ulong backendPageSize = 0x1000)
    {
        Host = new EmulatedHost(HostProfile.LoadEmbedded("grace"));
        Fd = Host.Open();
        Ram = Fd.AllocateHostMemory(RamSize, "ram0");
        Ioas = Fd.AllocIoas();
        Fd.MapIoas(Ioas, Ram, 0, RamSize, RamGpa);
        Dev = Fd.BindDevice(Device);
        Parent = Fd.AllocPagingHwpt(Dev, Ioas, HwptAllocFlags.NestParent);
        Viommu = Fd.AllocTegra241CmdqvViommu(Dev, Parent).Viommu;
        Vdevice = Fd.AllocVdevice(Viommu.Id, Dev, Vsid);
        AttachGuestStage1((Va, DataGpa), (Va2, DataGpa + 0x1000));
        Irq = new IrqLine("smmuv3.0 cmdqv");
        Cmdqv = new Tegra241VCmdqv(Fd, Viommu, Device, [new GuestRamBlock("ram0", RamGpa, RamSize, backendPageSize)], Bus, CmdqvBase, Irq, "smmuv3.0 cmdqv");
    }

    public EmulatedHost Host { get; }
    public EmulatedIommufd Fd { get; }
    public EmulatedHostDiagnostics Diag => Host.Diagnostics;
    public HostMemoryRegion Ram { get; }
    public IoasId Ioas { get; }
    public DeviceId Dev { get; }
    public HwptId Parent { get; }
    public ViommuAllocation Viommu { get; }
    public VdeviceId Vdevice { get; }
    public HwptId NestedHwpt { get; private set; }
    public MmioBus Bus { get; } = new();
    public IrqLine Irq { get; }
    public Tegra241VCmdqv Cmdqv { get; }

    public ushort Vmid => Diag.ReadSte(Device).S2VMID;
    public VintfDiagnostics Vintf => Diag.CmdqvVintfOf(Fd, Viommu.Id)!;
    public ulong HostPa(ulong gpa) => ((EmulatedHostMemoryRegion)Ram).HostPhysicalAddress + (gpa - RamGpa);

    public void Dispose()
    {
        Cmdqv.Dispose();
        Fd.Dispose();
    }

    // ---- the guest's MMIO accesses ----

    public uint R32(ulong offset) => (uint)Bus.Read(CmdqvBase + offset, 4);
    public ulong R64(ulong offset) => Bus.Read(CmdqvBase + offset, 8);
    public void W32(ulong offset, uint value) => Bus.Write(CmdqvBase + offset, 4, value);
    public void W64(ulong offset, ulong value) => Bus.Write(CmdqvBase + offset, 8, value);

    public uint Page0(CmdqvPage page, int q, VcmdqPage0Register r) => R32(G.Offset(page, q, r));
    public void Page0(CmdqvPage page, int q, VcmdqPage0Register r, uint value) => W32(G.Offset(page, q, r), value);

    /// <summary>What a guest driver does to bring up VINTF0 with both queues: CMDQ_ALLOC_MAP, BASE, then VINTF0 enable.</summary>
    public void BringUp(bool hypOwnAttempt = false)
    {
        for (int q = 0; q < G.NumVcmdqs; q++) W32(Tegra241CmdqvLayout.CmdqAlloc(q), Hw.EncodeCmdqAlloc(G.Vintf0, q));
        // Queue 0 through the VINTF page 1 alias with one 64-bit write, queue 1 through the direct page 1 in halves.
        W64(G.Offset(CmdqvPage.VintfPage1, 0, VcmdqPage1Register.BASE), Hw.EncodeVcmdqBase(QueueGpa[0], QueueLog2Entries));
        ulong base1 = Hw.EncodeVcmdqBase(QueueGpa[1], QueueLog2Entries);
        W32(G.Offset(CmdqvPage.VcmdqPage1, 1, VcmdqPage1Register.BASE), (uint)base1);
        W32(G.Offset(CmdqvPage.VcmdqPage1, 1, VcmdqPage1Register.BASE_H), (uint)(base1 >> 32));
        W32(G.Vintf0Config, Hw.EncodeVintfConfig(enable: true, vmid: 1, hypOwn: hypOwnAttempt));
    }

    // ---- guest RAM ----

    public void WriteCommand(int queue, uint index, Command command)
    {
        Span<byte> b = stackalloc byte[Command.Size];
        BinaryPrimitives.WriteUInt64LittleEndian(b, command.W0);
        BinaryPrimitives.WriteUInt64LittleEndian(b[8..], command.W1);
        Ram.Write(QueueGpa[queue] - RamGpa + (index % (1u << QueueLog2Entries)) * (ulong)Command.Size, b);
    }

    public bool TlbHas(ulong va) => Diag.TlbEntries(Smmu).Any(e => e.Vmid == Vmid && e.Asid == Asid && e.InputBase == va);

    public bool DmaRead(ulong va)
    {
        var b = new byte[8];
        return Diag.Dma(Device, va, AccessKind.Read, b).IsSuccess;
    }

    private void WriteGuest(ulong gpa, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        Ram.Write(gpa - RamGpa, b);
    }

    private ulong ReadGuest(ulong gpa)
    {
        Span<byte> b = stackalloc byte[8];
        Ram.Read(gpa - RamGpa, b);
        return BinaryPrimitives.ReadUInt64LittleEndian(b);
    }

    private ulong AllocTable()
    {
        ulong t = _nextTable;
        _nextTable += 0x1000;
        return t;
    }

    /// <summary>
    /// A guest stage 1 (VMSAv8-64, 4 KiB granule, 39-bit VA from level 1, Arm ARM D8.3 descriptors:
    /// valid, table/page, AP[1], inner shareable, AF, nG so TLB entries carry the ASID), its CD, and
    /// a nested HWPT with a translating vSTE attached to the device.
    /// </summary>
    private void AttachGuestStage1(params (ulong Va, ulong Gpa)[] mappings)
    {
        const int T0sz = 25, StartLevel = 1, LeafLevel = 3, IndexBits = 9;
        const ulong Valid = 1, TableOrPage = 2, ApEl0 = 1UL << 6, ShInner = 3UL << 8, Af = 1UL << 10, NotGlobal = 1UL << 11;
        ulong addressMask = Bits.Mask(47, 12);
        ulong root = AllocTable();
        foreach (var (va, gpa) in mappings)
        {
            ulong table = root;
            for (int level = StartLevel; level < LeafLevel; level++)
            {
                ulong slot = table + ((va >> GranuleGeometry.LevelShift(Granule.G4K, level)) & Bits.Mask(IndexBits - 1, 0)) * 8;
                ulong desc = ReadGuest(slot);
                if ((desc & Valid) == 0)
                {
                    desc = AllocTable() | Valid | TableOrPage;
                    WriteGuest(slot, desc);
                }
                table = desc & addressMask;
            }
            ulong leaf = table + ((va >> GranuleGeometry.LevelShift(Granule.G4K, LeafLevel)) & Bits.Mask(IndexBits - 1, 0)) * 8;
            WriteGuest(leaf, (gpa & addressMask) | Valid | TableOrPage | ApEl0 | ShInner | Af | NotGlobal);
        }
        ContextDescriptor cd = ContextDescriptor.Create(root, Asid, T0sz, tg0: 0, ips: AddressSize.Encode(48));
        ulong cdGpa = AllocTable();
        ulong[] words = [cd.W0, cd.W1, cd.W2, cd.W3];
        for (int i = 0; i < words.Length; i++) WriteGuest(cdGpa + (ulong)i * 8, words[i]);
        StreamTableEntry ste = StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: cdGpa, shcfg: 0);
        NestedHwpt = Fd.AllocNestedHwpt(Dev, Viommu.Id, new ArmSmmuV3Vste(ste.W0, ste.W1));
        Fd.AttachDevice(Dev, NestedHwpt);
    }
}
