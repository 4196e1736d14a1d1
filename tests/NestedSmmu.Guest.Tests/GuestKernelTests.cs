using NestedSmmu.Guest.Dma;
using NestedSmmu.Guest.Smmu;
using NestedSmmu.Guest.Tests.Cmdqv;
using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Tests.Common;

namespace NestedSmmu.Guest.Tests;

/// <summary>A PCI endpoint as the workload's DMA engine.</summary>
internal sealed class EndpointEngine(PciEndpoint ep) : IDmaEngine
{
    public bool Write(ulong iova, ReadOnlySpan<byte> data) => ep.Write(iova, data).IsSuccess;
    public bool Read(ulong iova, Span<byte> data) => ep.Read(iova, data).IsSuccess;
}

/// <summary>
/// The guest booted from firmware tables QEMU 11.1 made (IORT, DTB) and the iasl-built CMDQV DSDT,
/// on Hardware models mapped where those tables say, running the standard DMA workload.
/// </summary>
public sealed class GuestKernelTests
{
    private const ulong RamBase = 0x4000_0000, PoolSize = 0x1000_0000;

    private sealed class Machine
    {
        public SparseMemory Memory { get; } = new();
        public MmioBus Bus { get; } = new();
        public Dictionary<ulong, SmmuV3> Smmus { get; } = new();
        public GuestPageAllocator Pages { get; }
        public GuestPageAllocator Buffers { get; }

        public Machine()
        {
            Pages = new GuestPageAllocator(Memory, RamBase, PoolSize);
            Buffers = new GuestPageAllocator(Memory, RamBase + PoolSize, PoolSize);
        }

        public SmmuV3 AddSmmu(ulong at)
        {
            var s = new SmmuV3(Memory, new SmmuFeatures { Ats = true }, $"smmu@{at:X}");
            Bus.Map(at, s, s.Name);
            Smmus[at] = s;
            return s;
        }

        public Tegra241Cmdqv AddCmdqv(ulong at, SmmuV3 smmu)
        {
            var c = new Tegra241Cmdqv(smmu, Memory, Tegra241CmdqvOptions.QemuGuest);
            Bus.Map(at, new GuestOwnedVintf0(c, vmid: 0), "cmdqv");
            return c;
        }

        public EndpointEngine Endpoint(string name, ushort rid, ulong smmuBase, uint sid) =>
            new(new PciEndpoint(name, new RequesterId(rid), sid, Smmus[smmuBase], Memory));
    }

    private static byte[] Vector(params string[] parts) => File.ReadAllBytes(TestVectors.PathOf(parts));

    [Fact]
    public void Acpi_boot_binds_each_cmdqv_to_its_smmu_and_devices_run_the_workload_on_both_paths()
    {
        var m = new Machine();
        // Where QEMU's IORT (guest-smmuv3-dev) and the NVDA200C DSDT put them.
        var s0 = m.AddSmmu(0x0C00_0000);
        var s1 = m.AddSmmu(0x0C02_0000);
        var c0 = m.AddCmdqv(0x0C04_0000, s0);
        var c1 = m.AddCmdqv(0x0C09_0000, s1);
        var kernel = GuestKernel.BootFromAcpi(m.Bus, m.Memory, m.Pages, Vector("qemu-tables", "guest-smmuv3-dev", "IORT.dat"),
            Vector("qemu-tables", "guest-dsdt-nvda200c", "dsdt-nvda200c.aml"));
        kernel.Log.Errors.ShouldBeEmpty();
        kernel.Smmus.Count.ShouldBe(2);
        kernel.Smmus.ShouldAllBe(s => s.Cmdqv != null && !s.Cmdqv.HypOwn);
        kernel.Smmus[1].Cmdqv!.Registers.Base.ShouldBe(0x0C09_0000UL);
        c0.Enabled.ShouldBeTrue();
        c1.Enabled.ShouldBeTrue();

        var nvme = kernel.AddPciDevice("nvme0", 0x0008).ShouldNotBeNull();
        nvme.Smmu.ShouldBeSameAs(kernel.Smmus[0].Driver);
        var gpu = kernel.AddPciDevice("gpu0", 0x1010).ShouldNotBeNull();
        gpu.Smmu.ShouldBeSameAs(kernel.Smmus[1].Driver);
        kernel.AddPciDevice("nic0", 0x2000).ShouldBeNull(); // pcie.2: no SMMU
        var e0 = m.Endpoint("nvme0", 0x0008, 0x0C00_0000, nvme.StreamId);
        var e1 = m.Endpoint("gpu0", 0x1010, 0x0C02_0000, gpu.StreamId);

        kernel.BypassVcmdq(true);
        var trapped = kernel.Trapped;
        var r0 = DmaWorkload.Run(nvme, e0, m.Buffers, seed: 1);
        var r1 = DmaWorkload.Run(gpu, e1, m.Buffers, seed: 2);
        r0.Failed.ShouldBeEmpty();
        r1.Failed.ShouldBeEmpty();
        r0.FaultsSeen.ShouldBe(r0.FaultsExpected);
        kernel.Direct.Batches.ShouldBe(0);
        (kernel.Trapped.Batches - trapped.Batches).ShouldBeGreaterThan(0);

        kernel.BypassVcmdq(false);
        trapped = kernel.Trapped;
        long trappedTlbi = TrappedTlbi(kernel);
        trappedTlbi.ShouldBeGreaterThan(0);
        var d0 = DmaWorkload.Run(nvme, e0, m.Buffers, seed: 3);
        var d1 = DmaWorkload.Run(gpu, e1, m.Buffers, seed: 4);
        d0.Failed.ShouldBeEmpty();
        d1.Failed.ShouldBeEmpty();
        kernel.Direct.Batches.ShouldBeGreaterThan(0);
        // The direct path carried every invalidation of the second run: no new TLBI and no batch on the trapped queues.
        TrappedTlbi(kernel).ShouldBe(trappedTlbi);
        kernel.Smmus.Sum(s => s.Cmdqv!.DirectCounters.ByOpcode.GetValueOrDefault(CommandOpcode.TLBI_NH_VA)).ShouldBeGreaterThan(0);
        (kernel.Trapped.Batches - trapped.Batches).ShouldBe(0);
        s0.Tlb.Count.ShouldBe(0);
        s1.Tlb.Count.ShouldBe(0);
    }

    private static long TrappedTlbi(GuestKernel k) =>
        k.Smmus.Sum(s => s.Driver.SmmuQueueCounters.ByOpcode.GetValueOrDefault(CommandOpcode.TLBI_NH_VA));

    [Fact]
    public void Device_tree_boot_finds_the_legacy_smmu_and_its_streamids()
    {
        var m = new Machine();
        m.AddSmmu(0x0905_0000);
        var kernel = GuestKernel.BootFromDeviceTree(m.Bus, m.Memory, m.Pages, Vector("qemu-tables", "guest-fdt-smmuv3", "virt.dtb"));
        kernel.Smmus.ShouldHaveSingleItem().Cmdqv.ShouldBeNull();
        var dev = kernel.AddPciDevice("virtio-net", 0x0010).ShouldNotBeNull();
        dev.StreamId.ShouldBe(0x0010u);
        var engine = m.Endpoint("virtio-net", 0x0010, 0x0905_0000, dev.StreamId);
        var r = DmaWorkload.Run(dev, engine, m.Buffers);
        r.Failed.ShouldBeEmpty();
        r.FaultsSeen.ShouldBe(3);
        kernel.ServiceInterrupts().ShouldBeEmpty();
        engine.Write(0x7777_0000, new byte[4]).ShouldBeFalse();
        var fault = kernel.ServiceInterrupts().ShouldHaveSingleItem();
        fault.Device.ShouldBe("virtio-net");
        fault.StreamId.ShouldBe(0x0010u);
        kernel.HandleCmdqvInterrupt(0).ShouldBe(0);
    }

    [Fact]
    public void An_smmu_that_is_not_there_is_logged_and_left_out()
    {
        var m = new Machine();
        m.AddSmmu(0x0C00_0000); // the IORT also lists 0x0C020000, where nothing answers
        var kernel = GuestKernel.BootFromAcpi(m.Bus, m.Memory, m.Pages, Vector("qemu-tables", "guest-smmuv3-dev", "IORT.dat"));
        kernel.Smmus.ShouldHaveSingleItem().BaseAddress.ShouldBe(0x0C00_0000UL);
        kernel.Log.Errors.ShouldContain(e => e.Message.Contains("0xC020000"));
        kernel.AddPciDevice("gpu0", 0x1010).ShouldBeNull();
    }

    /// <summary>
    /// An IORT as QEMU writes one for an accel SMMU (which it cannot build here), laid out by hand per
    /// DEN0049 E.f: one SMMUv3 node, a root complex mapping RIDs 0..0xFFFF to it one to one, and an RMR
    /// node (revision 3) with a single ID mapping of StreamID <paramref name="rmrSid"/> to the SMMU and one
    /// range, QEMU's MSI doorbell window 0x8000000 / 0x100000 (qemu.md §5).
    /// </summary>
    private static byte[] AccelLikeIort(ulong smmuBase, uint rmrSid)
    {
        const int header = 48, smmuLen = 68, rcLen = 36 + 20, rmrLen = 68;
        var t = new byte[header + smmuLen + rcLen + rmrLen];
        void W16(int at, ushort v) => System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(t.AsSpan(at), v);
        void W32(int at, uint v) => System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(t.AsSpan(at), v);
        void W64(int at, ulong v) => System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(t.AsSpan(at), v);
        "IORT"u8.CopyTo(t);
        W32(4, (uint)t.Length);
        t[8] = 5;
        W32(36, 3);
        W32(40, header);
        int smmu = header, rc = smmu + smmuLen, rmr = rc + rcLen;
        t[smmu] = 4; W16(smmu + 1, smmuLen); t[smmu + 3] = 4; W32(smmu + 4, 0);
        W64(smmu + 16, smmuBase); W32(smmu + 24, 1);
        t[rc] = 2; W16(rc + 1, rcLen); t[rc + 3] = 3; W32(rc + 4, 1); W32(rc + 8, 1); W32(rc + 12, 36);
        W32(rc + 16, 1); t[rc + 23] = 3; W32(rc + 24, 1); W32(rc + 28, 0); t[rc + 32] = 64;
        W32(rc + 36, 0); W32(rc + 40, 0xFFFF); W32(rc + 44, 0); W32(rc + 48, (uint)smmu); W32(rc + 52, 0);
        t[rmr] = 6; W16(rmr + 1, rmrLen); t[rmr + 3] = 3; W32(rmr + 4, 2);
        W32(rmr + 8, 1); W32(rmr + 12, 28);
        W32(rmr + 16, 0); W32(rmr + 20, 1); W32(rmr + 24, 48);
        W32(rmr + 28, 0); W32(rmr + 32, 0); W32(rmr + 36, rmrSid); W32(rmr + 40, (uint)smmu); W32(rmr + 44, 1);
        W64(rmr + 48, 0x0800_0000); W64(rmr + 56, 0x10_0000);
        return t;
    }

    [Fact]
    public void Rmr_streamids_bypass_from_boot_and_keep_their_range_one_to_one_once_attached()
    {
        var m = new Machine();
        var smmu = m.AddSmmu(0x0C00_0000);
        var kernel = GuestKernel.BootFromAcpi(m.Bus, m.Memory, m.Pages, AccelLikeIort(0x0C00_0000, 0x0108));
        kernel.Log.Errors.ShouldBeEmpty();
        var driver = kernel.Smmus.Single().Driver;
        driver.ReadSte(0x0108).Config.ShouldBe(SteConfig.Bypass);
        driver.ReadSte(0x0110).Config.ShouldBe(SteConfig.Abort);
        var ep = new PciEndpoint("vfio0", new RequesterId(0x0108), 0x0108, smmu, m.Memory);
        ep.Write(0x0800_0040, GuestRig.Pattern(4, 1)).IsSuccess.ShouldBeTrue();

        var dev = kernel.AddPciDevice("vfio0", 0x0108, ats: true).ShouldNotBeNull();
        driver.ReadSte(0x0108).Config.ShouldBe(SteConfig.Stage1);
        dev.Master.AtsEnabled.ShouldBeTrue(); // the root complex node says ATS
        dev.DirectMappings.ShouldHaveSingleItem().Iova.ShouldBe(0x0800_0000UL);
        ep.Write(0x0800_0080, GuestRig.Pattern(4, 2)).IsSuccess.ShouldBeTrue();
        var back = new byte[4];
        m.Memory.Read(0x0800_0080, back);
        back.ShouldBe(GuestRig.Pattern(4, 2));
        // Ordinary mappings never land in the reserved window: ten 16 MiB buffers fill IOVAs past it.
        var maps = Enumerable.Range(0, 10).Select(_ => dev.Map(m.Buffers.Allocate(0x100_0000), 0x100_0000).ShouldNotBeNull()).ToList();
        maps.Max(x => x.Iova).ShouldBeGreaterThan(0x0810_0000UL);
        maps.ShouldAllBe(x => x.Iova + x.Size <= 0x0800_0000 || x.Iova >= 0x0810_0000);
    }
}
