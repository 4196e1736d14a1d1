using NestedSmmu.Guest.Firmware;
using NestedSmmu.Tests.Common;

namespace NestedSmmu.Guest.Tests.Firmware;

/// <summary>The AML scanner and the NVDA200C lookup, on QEMU 11.1's own DSDT and on a DSDT assembled with iasl.</summary>
public sealed class DsdtTests
{
    [Fact]
    public void The_hand_assembled_dsdt_gives_each_cmdqv_its_uid_frame_and_interrupt()
    {
        var devices = AmlScanner.FindDevices(File.ReadAllBytes(TestVectors.PathOf("qemu-tables", "guest-dsdt-nvda200c", "dsdt-nvda200c.aml")));
        var problems = new List<string>();
        var cmdqvs = CmdqvAcpiNode.FindAll(devices, problems);
        // Values from dsdt-nvda200c.asl.
        cmdqvs.ShouldBe([
            new CmdqvAcpiNode("\\_SB.CV00", 0, 0x0C04_0000, 0x5_0000, 0x94),
            new CmdqvAcpiNode("\\_SB.CV01", 1, 0x0C09_0000, 0x5_0000, 0x99),
            new CmdqvAcpiNode("\\_SB.CV02", 2, 0x0C10_0000, 0x5_0000, null),
        ]);
        problems.ShouldBeEmpty();
        CmdqvAcpiNode.ForSmmu(cmdqvs, 1)!.Base.ShouldBe(0x0C09_0000UL);
        CmdqvAcpiNode.ForSmmu(cmdqvs, 7).ShouldBeNull();
        // The devices around them are read too: an EISA ID _HID, and a Memory32Fixed that is not an address-space resource.
        devices.Single(d => d.Path == "\\_SB.PWRB").Hid.ShouldBe("PNP0C0C");
        var com = devices.Single(d => d.Path == "\\_SB.COM0");
        com.Resources.ShouldContain(new AcpiMemoryResource(0x0900_0000, 0x1000, FromAddressSpace: false));
        // OperationRegion, Field and Mutex are stepped over; a region with computed bounds ends the scan of
        // its device (its later _UID is not seen) but not of the devices after it.
        var ged = devices.Single(d => d.Path == "\\_SB.GED0");
        ged.Resources.OfType<AcpiInterruptResource>().Single().Interrupts.ShouldBe([0x29u]);
        var x = devices.Single(d => d.Path == "\\_SB.XDEV"); // OperationRegion at a named offset (XBAS)
        x.Hid.ShouldBe("QEMU9999");
        x.Uid.ShouldBeNull();
    }

    [Fact]
    public void Qemus_virt_dsdt_is_scanned_whole_and_has_no_cmdqv()
    {
        var devices = AmlScanner.FindDevices(File.ReadAllBytes(TestVectors.PathOf("qemu-tables", "guest-smmuv3-dev", "DSDT.dat")));
        // iasl -d of this table shows 57 Device objects.
        devices.Count.ShouldBe(57);
        CmdqvAcpiNode.FindAll(devices).ShouldBeEmpty();
        var com = devices.Single(d => d.Hid == "ARMH0011");
        com.Path.ShouldBe("\\_SB.COM0");
        com.Uid.ShouldBe(0UL);
        com.Resources.OfType<AcpiInterruptResource>().Single().Interrupts.ShouldBe([0x21u]);
        devices.Count(d => d.Hid == "PNP0A08").ShouldBe(3); // pcie.0 and the two pxb-pcie host bridges
    }

    [Fact]
    public void Eisa_ids_decode_as_acpi_spells_them()
    {
        // EisaId("PNP0A08") compiles to the stored dword 0x080AD041.
        AmlScanner.DecodeEisaId(0x080AD041).ShouldBe("PNP0A08");
    }

    [Fact]
    public void A_table_that_is_not_aml_is_a_clear_error()
    {
        Should.Throw<FirmwareTableException>(() => AmlScanner.FindDevices(File.ReadAllBytes(TestVectors.PathOf("qemu-tables", "guest-smmuv3-dev", "IORT.dat"))))
            .Message.ShouldContain("expected an DSDT table");
    }
}
