using NestedSmmu.Hardware.Firmware;
using NestedSmmu.Tests.Common;
using NestedSmmu.Vmm.Acpi;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Vmm.Tests.Acpi;

public sealed class DsdtTests
{
    /// <summary>Two accel SMMUs with CMDQV on pcie.0 and a pxb-pcie (QEMU cannot run this here: it needs KVM and a host SMMU).</summary>
    public const string AccelCmdqv =
        "-machine virt,gic-version=3 -accel kvm -cpu host -m 4G -object iommufd,id=iommufd0 " +
        "-device pxb-pcie,id=pcie.1,bus=pcie.0,bus_nr=0x10 " +
        "-device arm-smmuv3,primary-bus=pcie.0,id=smmuv3.0,accel=on,cmdqv=on,ats=on " +
        "-device arm-smmuv3,primary-bus=pcie.1,id=smmuv3.1,accel=on,cmdqv=on " +
        "-device pcie-root-port,id=rp0,bus=pcie.0,chassis=1 -device vfio-pci,host=0009:01:00.0,bus=rp0,iommufd=iommufd0 " +
        "-device pcie-root-port,id=rp1,bus=pcie.1,chassis=2 -device vfio-pci,host=0019:01:00.0,bus=rp1,iommufd=iommufd0";

    private static VirtBoard Accel()
    {
        var spec = QemuCommandLine.Parse(AccelCmdqv);
        return VirtBoard.Layout(VirtBoardSpec.From(spec, PciTopology.Build(spec), PciNumberingView.Unenumerated));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Checksum_is_right_and_the_header_is_qemus(string name)
    {
        byte[] ours = Dsdt.Build(ParsedTableCases.Board(name));
        byte[] qemu = File.ReadAllBytes(TestVectors.PathOf("qemu-tables", name, "DSDT.dat"));
        AcpiTable.ChecksumIsValid(ours).ShouldBeTrue();
        ours.AsSpan(AcpiHeader.OemId, AcpiHeader.Size - AcpiHeader.OemId).ToArray().ShouldBe(qemu.AsSpan(AcpiHeader.OemId, AcpiHeader.Size - AcpiHeader.OemId).ToArray());
        ours[AcpiHeader.Revision].ShouldBe(qemu[AcpiHeader.Revision]);
    }

    /// <summary>The devices we write the way QEMU writes them appear byte for byte in QEMU's DSDT: a check of the AML encoder against QEMU's.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Processor_console_fw_cfg_virtio_ecam_and_power_button_devices_are_byte_equal_to_qemus(string name)
    {
        var board = ParsedTableCases.Board(name);
        byte[] qemu = File.ReadAllBytes(TestVectors.PathOf("qemu-tables", name, "DSDT.dat"));
        byte[] ours = Dsdt.Build(board);
        foreach (string device in new[] { "C000", "COM0", "FWCF", "VR00", "VR31", "RES0", "PWRB" })
        {
            byte[] term = TopDevice(ours, device);
            qemu.AsSpan().IndexOf(term).ShouldBeGreaterThan(0, $"Device ({device}) {Convert.ToHexString(term)}");
        }
    }

    [Fact]
    public void Accel_cmdqv_devices_are_named_by_identifier_with_their_platform_bus_region_and_interrupt()
    {
        var board = Accel();
        board.Smmus.Select(s => (s.Identifier, s.Base, s.Spi, s.CmdqvBase, s.CmdqvSpi)).ShouldBe(
        [
            // Platform bus in creation order: smmuv3.0 takes lines 0-3, its CMDQV line 4, its
            // registers at 0 and its 0x50000 CMDQV region at the next 512 KiB boundary; smmuv3.1
            // takes lines 5-9 and the first free 128 KiB and 512 KiB holes after those.
            (1u, 0x0C00_0000ul, 112, (ulong?)0x0C08_0000, (int?)116),
            (2u, 0x0C02_0000ul, 117, (ulong?)0x0C10_0000, (int?)121),
        ]);
        byte[] dsdt = Dsdt.Build(board);
        foreach (var smmu in board.Smmus)
            dsdt.AsSpan().IndexOf(Dsdt.Cmdqv(smmu)).ShouldBeGreaterThan(0);
        System.Text.Encoding.ASCII.GetString(dsdt).ShouldContain("CV01");
        System.Text.Encoding.ASCII.GetString(dsdt).ShouldContain("NVDA200C");
    }

    [Fact]
    public void Accel_iort_has_an_rmr_node_per_smmu_and_says_ats()
    {
        byte[] iort = Iort.Build(Accel());
        AcpiTable.ChecksumIsValid(iort).ShouldBeTrue();
        // ITS, two SMMUs, the root complex, two RMRs.
        BitConverter.ToUInt32(iort, IortLayout.NodeCount).ShouldBe(6u);
        int offset = IortLayout.FirstNode;
        var types = new List<IortNodeType>();
        while (offset < iort.Length)
        {
            types.Add((IortNodeType)iort[offset + IortLayout.Node.Type]);
            if (types[^1] == IortNodeType.RootComplex)
                BitConverter.ToUInt32(iort, offset + IortLayout.RootComplex.AtsAttribute).ShouldBe(IortLayout.RootComplex.AtsSupported);
            if (types[^1] == IortNodeType.ReservedMemoryRange)
            {
                int ranges = offset + (int)BitConverter.ToUInt32(iort, offset + IortLayout.Rmr.RangeArrayOffset);
                BitConverter.ToUInt64(iort, ranges + IortLayout.Rmr.RangeBase).ShouldBe(Iort.MsiIovaBase);
                BitConverter.ToUInt64(iort, ranges + IortLayout.Rmr.RangeLength).ShouldBe(Iort.MsiIovaLength);
            }
            offset += BitConverter.ToUInt16(iort, offset + IortLayout.Node.Length);
        }
        types.ShouldBe([IortNodeType.ItsGroup, IortNodeType.SmmuV3, IortNodeType.SmmuV3, IortNodeType.RootComplex,
            IortNodeType.ReservedMemoryRange, IortNodeType.ReservedMemoryRange]);
    }

    [Fact]
    public void Iasl_disassembles_our_tables_of_every_vector_and_the_accel_board_without_error()
    {
        if (Iasl.Path is null)
        {
            TestContext.Current.SendDiagnosticMessage(Iasl.MissingReason);
            Assert.Skip(Iasl.MissingReason);
        }
        var tables = new Dictionary<string, byte[]>();
        foreach (string name in QemuTableCases.Names)
        {
            var board = ParsedTableCases.Board(name);
            tables[$"{name}.IORT"] = Iort.Build(board);
            tables[$"{name}.DSDT"] = Dsdt.Build(board);
        }
        tables["accel.IORT"] = Iort.Build(Accel());
        tables["accel.DSDT"] = Dsdt.Build(Accel());
        foreach (var (name, bytes) in tables)
        {
            var (exit, output, dsl) = Iasl.Disassemble(new Dictionary<string, byte[]> { ["t"] = bytes });
            exit.ShouldBe(0, $"{name}: {output}");
            output.ShouldNotContain("Error", Case.Insensitive, name);
            dsl.ShouldContainKey("t");
            dsl["t"].ShouldNotContain("Incorrect checksum", Case.Insensitive, name);
            if (name == "accel.DSDT")
            {
                dsl["t"].ShouldContain("Device (CV01)");
                dsl["t"].ShouldContain("Device (CV02)");
                dsl["t"].ShouldContain("\"NVDA200C\"");
            }
            if (name == "accel.IORT")
            {
                if (Iasl.Release >= Iasl.FirstReleaseWithRmr) dsl["t"].ShouldContain("Base Address of RMR");
                else TestContext.Current.SendDiagnosticMessage($"iasl {Iasl.Release} predates IORT RMR decoding ({Iasl.FirstReleaseWithRmr}): the RMR node's fields are checked by the IORT tests only");
            }
        }
    }

    public static TheoryData<string> Cases => QemuTableCases.All;

    // The encoded Device (name) term at the outermost level where it is found (a Device opcode
    // 5B 82, its PkgLength, then the NameSeg).
    private static byte[] TopDevice(byte[] table, string name)
    {
        byte[] seg = System.Text.Encoding.ASCII.GetBytes(name);
        for (int i = AcpiHeader.Size; i + 2 < table.Length; i++)
        {
            if (table[i] != 0x5B || table[i + 1] != 0x82) continue;
            int lead = table[i + 2];
            int extra = lead >> 6;
            int length = extra == 0 ? lead & 0x3F : lead & 0xF;
            for (int k = 1; k <= extra; k++) length |= table[i + 2 + k] << (4 + 8 * (k - 1));
            if (table.AsSpan(i + 3 + extra, 4).SequenceEqual(seg)) return table.AsSpan(i, 2 + length).ToArray();
        }
        throw new InvalidOperationException($"No Device ({name}).");
    }
}

/// <summary>The bus ranges the DSDT's root complexes claim (every WordBusNumber descriptor), against QEMU's in both views.</summary>
public sealed class DsdtBusRangeTests
{
    public static TheoryData<string> Cases => QemuTableCases.All;

    public static readonly TheoryData<string> EnumeratedCases = new("smmuv3-dev", "pxb-one-smmu", "three-smmus", "bypass-pxb", "smp4-big");

    [Theory]
    [MemberData(nameof(Cases))]
    public void Word_bus_numbers_equal_qemus(string name) =>
        Compare(Dsdt.Build(ParsedTableCases.Board(name)), TestVectors.PathOf("qemu-tables", name, "DSDT.dat"));

    [Theory]
    [MemberData(nameof(EnumeratedCases))]
    public void Word_bus_numbers_equal_qemus_after_the_bridges_are_numbered(string name) =>
        Compare(Dsdt.Build(ParsedTableCases.Board(name, PciNumberingView.FirmwareEnumerated)), TestVectors.PathOf("qemu-tables", name, "DSDT.enumerated.dat"));

    private static void Compare(byte[] ours, string qemuPath)
    {
        var qemu = BusRanges(File.ReadAllBytes(qemuPath));
        qemu.ShouldNotBeEmpty();
        BusRanges(ours).ShouldBe(qemu);
    }

    // ACPI 6.5 6.4.3.5.3: tag 0x88, length 13, resource type 2 (bus numbers), then min and max at +8, +10.
    private static List<(int Min, int Max)> BusRanges(byte[] dsdt)
    {
        var ranges = new List<(int, int)>();
        for (int i = AcpiHeader.Size; i + 16 <= dsdt.Length; i++)
            if (dsdt[i] == 0x88 && dsdt[i + 1] == 0x0D && dsdt[i + 2] == 0 && dsdt[i + 3] == 2)
                ranges.Add((BitConverter.ToUInt16(dsdt, i + 8), BitConverter.ToUInt16(dsdt, i + 10)));
        ranges.Sort();
        return ranges;
    }
}
