using NestedSmmu.Guest.Firmware;
using NestedSmmu.Tests.Common;

namespace NestedSmmu.Guest.Tests.Firmware;

/// <summary>
/// The IORT reader on tables QEMU 11.1 built (tests/vectors/qemu-tables/guest-*/cmdline.txt). The
/// expectations come from the command lines: virt's platform-bus SMMUs at 0x0C000000 + 0x20000 n
/// (SPIs from 112 on: GSIV = SPI + 32), the legacy SMMU at 0x09050000 (SPI 74), pxb-pcie bus_nr
/// values, bypass_iommu, and QEMU's identity RID to StreamID mapping.
/// </summary>
public sealed class IortTests
{
    private static Iort Load(string dir) => Iort.Parse(File.ReadAllBytes(TestVectors.PathOf("qemu-tables", dir, "IORT.dat")));

    [Fact]
    public void Two_smmuv3_devices_each_serve_their_own_pxb_bus()
    {
        var iort = Load("guest-smmuv3-dev");
        iort.Header.Revision.ShouldBe((byte)5);
        var smmus = iort.SmmuV3Nodes.ToList();
        smmus.Select(s => s.BaseAddress).ShouldBe([0x0C00_0000UL, 0x0C02_0000UL]);
        smmus.Select(s => s.Identifier).ShouldBe([0u, 1u]);
        smmus[0].EventGsiv.ShouldBe(112u + 32);
        smmus[0].PriGsiv.ShouldBe(smmus[0].EventGsiv + 1);
        smmus[0].SyncGsiv.ShouldBe(smmus[0].EventGsiv + 2);
        smmus[0].GerrGsiv.ShouldBe(smmus[0].EventGsiv + 3);
        smmus[1].EventGsiv.ShouldBe(116u + 32);
        smmus.ShouldAllBe(s => s.CoherentAccess);

        // pcie.0 (bus 0) behind smmuv3.0, pcie.1 (bus_nr 0x10) behind smmuv3.1, identity StreamIDs.
        iort.TryResolve(0, 0x0008, out var r0).ShouldBeTrue();
        r0.Smmu.BaseAddress.ShouldBe(0x0C00_0000UL);
        r0.StreamId.ShouldBe(0x0008u);
        iort.TryResolve(0, 0x1010, out var r1).ShouldBeTrue();
        r1.Smmu.BaseAddress.ShouldBe(0x0C02_0000UL);
        r1.StreamId.ShouldBe(0x1010u);
        // pcie.2 (bus_nr 0x20) has no arm-smmuv3 and, with GICv2, no ITS: its DMA reaches no SMMU.
        iort.TryResolve(0, 0x2000, out _).ShouldBeFalse();
        iort.TryResolve(1, 0x0008, out _).ShouldBeFalse();
    }

    [Fact]
    public void With_an_its_the_unserved_buses_map_to_the_its_and_the_smmus_map_on_to_it()
    {
        var iort = Load("guest-smmuv3-dev-its");
        var its = iort.ItsGroups.ShouldHaveSingleItem();
        its.ItsIdentifiers.ShouldBe([0u]);
        iort.SmmuV3Nodes.ShouldAllBe(s => s.IdMappings.Count == 1 && s.IdMappings[0].OutputReference == its.Offset);
        iort.TryResolve(0, 0x10FF, out var r).ShouldBeTrue();
        r.Smmu.BaseAddress.ShouldBe(0x0C02_0000UL);
        r.StreamId.ShouldBe(0x10FFu);
        iort.TryResolve(0, 0x00FF, out r).ShouldBeTrue();
        r.Smmu.BaseAddress.ShouldBe(0x0C00_0000UL);
        // Buses 1..0x0F and 0x11.. go straight to the ITS.
        iort.TryResolve(0, 0x0100, out _).ShouldBeFalse();
        iort.TryResolve(0, 0x2000, out _).ShouldBeFalse();
    }

    [Fact]
    public void The_legacy_smmu_serves_every_bus_but_the_bypassed_one()
    {
        var iort = Load("guest-smmuv3-legacy");
        var smmu = iort.SmmuV3Nodes.ShouldHaveSingleItem();
        smmu.BaseAddress.ShouldBe(0x0905_0000UL);
        smmu.EventGsiv.ShouldBe(74u + 32);
        iort.TryResolve(0, 0x0010, out var r).ShouldBeTrue();
        r.Smmu.ShouldBeSameAs(smmu);
        iort.TryResolve(0, 0x1000, out r).ShouldBeTrue();
        r.StreamId.ShouldBe(0x1000u);
        iort.TryResolve(0, 0x2000, out _).ShouldBeFalse(); // pcie.2 has bypass_iommu=on
    }

    [Fact]
    public void A_truncated_table_is_a_clear_error()
    {
        byte[] t = File.ReadAllBytes(TestVectors.PathOf("qemu-tables", "guest-smmuv3-dev", "IORT.dat"));
        Should.Throw<FirmwareTableException>(() => Iort.Parse(t.AsSpan(0, 100))).Message.ShouldContain("does not fit");
        Should.Throw<FirmwareTableException>(() => Iort.Parse(File.ReadAllBytes(TestVectors.PathOf("qemu-tables", "guest-smmuv3-dev", "DSDT.dat"))))
            .Message.ShouldContain("found signature 'DSDT'");
    }

    [Fact]
    public void An_rmr_node_names_its_streamids_and_ranges()
    {
        // QEMU writes RMR nodes only for accel SMMUs, which it cannot build here: this one is laid out
        // by hand per DEN0049 E.f 3.1.1.7 (node revision 3): one SMMUv3 node, one RMR with a single ID
        // mapping to it and one memory range (QEMU's MSI doorbell window 0x8000000 / 0x100000).
        var t = new byte[36 + 12 + 68 + 68];
        "IORT"u8.CopyTo(t);
        W32(t, 4, (uint)t.Length);
        t[8] = 5;
        W32(t, 36, 2);
        W32(t, 40, 48);
        int smmu = 48;
        t[smmu] = 4; W16(t, smmu + 1, 68); t[smmu + 3] = 4; W32(t, smmu + 4, 7);
        W64(t, smmu + 16, 0x0C00_0000);
        int rmr = smmu + 68;
        t[rmr] = 6; W16(t, rmr + 1, 68); t[rmr + 3] = 3; W32(t, rmr + 4, 8);
        W32(t, rmr + 8, 1); W32(t, rmr + 12, 28);           // one ID mapping at +28
        W32(t, rmr + 16, 0); W32(t, rmr + 20, 1); W32(t, rmr + 24, 48); // flags, one range at +48
        W32(t, rmr + 28, 0); W32(t, rmr + 32, 0); W32(t, rmr + 36, 0x0108); W32(t, rmr + 40, (uint)smmu); W32(t, rmr + 44, 1);
        W64(t, rmr + 48, 0x0800_0000); W64(t, rmr + 56, 0x10_0000);
        var iort = Iort.Parse(t);
        var node = iort.Rmrs.ShouldHaveSingleItem();
        node.Ranges.ShouldBe([new IortMemoryRange(0x0800_0000, 0x10_0000)]);
        iort.RmrStreamIds(node, iort.SmmuV3Nodes.Single()).ShouldBe([0x0108u]);
    }

    private static void W16(byte[] b, int at, ushort v) => System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(at), v);
    private static void W32(byte[] b, int at, uint v) => System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), v);
    private static void W64(byte[] b, int at, ulong v) => System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at), v);
}
