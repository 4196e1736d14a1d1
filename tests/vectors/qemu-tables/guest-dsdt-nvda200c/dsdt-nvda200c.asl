/*
 * A DSDT with two Tegra241 CMDQV devices as QEMU 11.1's virt board would describe them for two
 * accel arm-smmuv3 devices with cmdqv=on (hw/arm/virt-acpi-build.c: Device CVnn, _HID NVDA200C,
 * _UID = the SMMU's identifier, _CCA 1, _CRS = QWordMemory of the 0x50000-byte region + an edge,
 * active-high, exclusive Interrupt), around other devices a guest must step over. QEMU cannot
 * build accel/cmdqv machines without a host iommufd, so this is written by hand.
 * Addresses fit the two SMMUs of guest-smmuv3-dev (0x0C000000 and 0x0C020000, 0x20000 each): the
 * CMDQV of identifier 0 at 0x0C040000 (GSIV 148), of identifier 1 at 0x0C090000 (GSIV 153); the
 * third (identifier 2, no SMMU with it there, no interrupt) at 0x0C100000.
 */
DefinitionBlock ("", "DSDT", 2, "BOCHS ", "BXPC    ", 0x00000001)
{
    Scope (\_SB)
    {
        Device (COM0)
        {
            Name (_HID, "ARMH0011")
            Name (_UID, Zero)
            Name (_CRS, ResourceTemplate ()
            {
                Memory32Fixed (ReadWrite, 0x09000000, 0x00001000, )
                Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, ) { 0x00000021 }
            })
        }
        Device (PWRB)
        {
            Name (_HID, EisaId ("PNP0C0C"))
            Name (_UID, Zero)
            Method (_STA, 0, NotSerialized)
            {
                Return (0x0F)
            }
        }
        Device (GED0)
        {
            Name (_HID, "ACPI0013")
            Name (_UID, Zero)
            OperationRegion (EREG, SystemMemory, 0x09080000, 0x04)
            Field (EREG, DWordAcc, NoLock, WriteAsZeros)
            {
                ESEL,   32
            }
            Mutex (GLCK, 0x00)
            Name (_CRS, ResourceTemplate ()
            {
                Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) { 0x00000029 }
            })
        }
        Device (XDEV)
        {
            Name (_HID, "QEMU9999")
            Name (XBAS, 0x09090000)
            OperationRegion (XREG, SystemMemory, XBAS, 0x04)
            Name (_UID, 0x05)
        }
        Device (CV00)
        {
            Name (_HID, "NVDA200C")
            Name (_UID, Zero)
            Name (_CCA, One)
            Name (_CRS, ResourceTemplate ()
            {
                QWordMemory (ResourceConsumer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
                    0x0000000000000000, 0x000000000C040000, 0x000000000C08FFFF, 0x0000000000000000, 0x0000000000050000, , , , AddressRangeMemory, TypeStatic)
                Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) { 0x00000094 }
            })
        }
        Device (CV01)
        {
            Name (_HID, "NVDA200C")
            Name (_UID, One)
            Name (_CCA, One)
            Name (_CRS, ResourceTemplate ()
            {
                QWordMemory (ResourceConsumer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
                    0x0000000000000000, 0x000000000C090000, 0x000000000C0DFFFF, 0x0000000000000000, 0x0000000000050000, , , , AddressRangeMemory, TypeStatic)
                Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) { 0x00000099 }
            })
        }
        Device (CV02)
        {
            Name (_HID, "NVDA200C")
            Name (_UID, 0x02)
            Name (_CRS, ResourceTemplate ()
            {
                QWordMemory (ResourceConsumer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
                    0x0000000000000000, 0x000000000C100000, 0x000000000C14FFFF, 0x0000000000000000, 0x0000000000050000, , , , AddressRangeMemory, TypeStatic)
            })
        }
    }
}
