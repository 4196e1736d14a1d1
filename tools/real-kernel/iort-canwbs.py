#!/usr/bin/env python3
"""Sets the CANWBS memory-access flag on every PCI root complex node of an IORT, raises its OEM
revision by one and fixes the table checksum: iort-canwbs.py IN.dat OUT.aml.

QEMU's virt IORT (hw/arm/virt-acpi-build.c) gives its root complex the memory-access flags
CPM and DACS only. Linux's arm-smmu-v3 offers a vIOMMU only when the master is CANWBS (IORT
rev E.e, drivers/acpi/arm64/iort.c, iort_pci_rc_supports_canwbs) or the SMMU has S2FWB,
which QEMU's model does not report. The guest gets this table through the initrd
(CONFIG_ACPI_TABLE_UPGRADE) to reach the vIOMMU calls; nothing else in the table changes.
"""
import struct
import sys

HEADER = 36               # ACPI table header
NODE_COUNT, NODE_OFFSET = HEADER, HEADER + 4
ROOT_COMPLEX = 2          # IORT node type
NODE_HEADER = 16          # type, length, revision, id, mapping count and offset
MEMORY_FLAGS = NODE_HEADER + 7  # after cache coherency (4), hints (1), reserved (2)
CANWBS = 1 << 2
CHECKSUM = 9
OEM_REVISION = 24


def main(src, dst):
    table = bytearray(open(src, "rb").read())
    if table[:4] != b"IORT":
        sys.exit(f"{src}: not an IORT")
    (count,) = struct.unpack_from("<I", table, NODE_COUNT)
    (offset,) = struct.unpack_from("<I", table, NODE_OFFSET)
    patched = 0
    for _ in range(count):
        kind = table[offset]
        (length,) = struct.unpack_from("<H", table, offset + 1)
        if kind == ROOT_COMPLEX:
            table[offset + MEMORY_FLAGS] |= CANWBS
            patched += 1
        offset += length
    if not patched:
        sys.exit(f"{src}: no PCI root complex node")
    # the kernel replaces a firmware table only by one with a higher OEM revision
    # (drivers/acpi/tables.c, acpi_table_initrd_override)
    (revision,) = struct.unpack_from("<I", table, OEM_REVISION)
    struct.pack_into("<I", table, OEM_REVISION, revision + 1)
    table[CHECKSUM] = 0
    table[CHECKSUM] = (-sum(table)) & 0xFF
    open(dst, "wb").write(table)
    print(f"iort-canwbs: {patched} root complex node(s) marked CANWBS -> {dst}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
