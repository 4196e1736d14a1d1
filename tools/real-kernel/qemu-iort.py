#!/usr/bin/env python3
"""Prints nothing and writes OUT: the IORT QEMU gives a guest for a command line, read from
the fw_cfg file etc/acpi/tables under the qtest accelerator (no guest code runs).

  qemu-iort.py OUT.dat [--bridge BUS:DEV.FN=SECONDARY]... qemu-system-aarch64 -machine virt,... <devices>

The virt board's fw_cfg is the MMIO device at 0x9020000 (hw/arm/virt.c, VIRT_FW_CFG): data
register at +0, big-endian 16-bit selector at +8 (docs/specs/fw_cfg.rst). File 0x19 is the
directory. The table blob holds the tables back to back; IORT carries no pointers, so it is
already what the firmware installs, except its checksum byte, which the firmware's loader
fills in (iort-canwbs.py recomputes it).

QEMU builds the tables again when the firmware first selects the file, and only then
(virt_acpi_build_update in hw/arm/virt-acpi-build.c, its `patched` flag). The ID mappings
of an SMMU on a pxb-pcie bus come from that bus's range (pci_bus_range over its bridges'
secondary and subordinate bus numbers), which the firmware programs before it reads the
tables. Under qtest nobody does, so a bridge would
read bus 0 and stretch the range down to 0. --bridge writes the numbers the firmware gives
(secondary = subordinate = SECONDARY, all hex) into the bridge's config space through the
ECAM window of the MCFG, read in a first qtest session, before the second one reads the table.
"""
import struct
import subprocess
import sys

FW_CFG = 0x9020000
DATA, SELECTOR = FW_CFG, FW_CFG + 8
FILE_DIR = 0x19
DIR_ENTRY = 64  # size (4), select (2), reserved (2), name (56)
ACPI_TABLES = b"etc/acpi/tables"


class Qtest:
    def __init__(self, argv):
        self.p = subprocess.Popen(argv + ["-display", "none", "-accel", "qtest", "-qtest", "stdio", "-nodefaults"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        while True:
            reply = self.p.stdout.readline()
            if not reply:
                sys.exit("qemu-iort: QEMU exited")
            if reply.startswith("OK") or reply.startswith("FAIL") or reply.startswith("ERR"):
                if not reply.startswith("OK"):
                    sys.exit(f"qemu-iort: {line}: {reply.strip()}")
                return reply.split()[1] if len(reply.split()) > 1 else ""

    def select(self, key):
        self.ask(f"write 0x{SELECTOR:x} 2 0x{key:04x}")

    def read(self, count):
        out = bytearray()
        while len(out) < count:
            n = min(8, count - len(out))
            out += bytes.fromhex(self.ask(f"read 0x{DATA:x} {n}")[2:])
        return bytes(out)

    def close(self):
        self.p.stdin.close()
        self.p.kill()


ECAM_BUS_SHIFT, ECAM_DEVFN_SHIFT = 20, 12    # PCIe base spec, enhanced configuration access
PRIMARY_BUS = 0x18                          # type 1 header: primary, secondary, subordinate bus
MCFG_BASE = 44                              # MCFG: header (36), reserved (8), then base address


def read_tables(q):
    q.select(FILE_DIR)
    (files,) = struct.unpack(">I", q.read(4))
    entries = [struct.unpack(">IHH56s", q.read(DIR_ENTRY)) for _ in range(files)]
    match = [(size, key) for size, key, _, name in entries if name.rstrip(b"\0") == ACPI_TABLES]
    if not match:
        sys.exit("qemu-iort: no etc/acpi/tables (is ACPI on?)")
    size, key = match[0]
    q.select(key)
    return q.read(size)


def table(blob, signature):
    at = blob.find(signature)
    if at < 0:
        return None
    (length,) = struct.unpack_from("<I", blob, at + 4)
    return blob[at:at + length]


def main(out, argv):
    bridges = []
    while argv and argv[0] == "--bridge":
        where, secondary = argv[1].split("=")
        bus, devfn = where.split(":")
        dev, fn = devfn.split(".")
        bridges.append((int(bus, 16), int(dev, 16), int(fn, 16), int(secondary, 16)))
        argv = argv[2:]
    if bridges:
        q = Qtest(argv)
        try:
            mcfg = table(read_tables(q), b"MCFG")
        finally:
            q.close()
        if mcfg is None:
            sys.exit("qemu-iort: no MCFG to find the ECAM window")
        (ecam,) = struct.unpack_from("<Q", mcfg, MCFG_BASE)
    q = Qtest(argv)
    try:
        for bus, dev, fn, secondary in bridges:
            config = ecam + (bus << ECAM_BUS_SHIFT) + (((dev << 3) | fn) << ECAM_DEVFN_SHIFT)
            for offset, value in ((0, bus), (1, secondary), (2, secondary)):
                q.ask(f"writeb 0x{config + PRIMARY_BUS + offset:x} 0x{value:x}")
        blob = read_tables(q)
    finally:
        q.close()
    iort = table(blob, b"IORT")
    if iort is None:
        sys.exit("qemu-iort: the tables hold no IORT (no SMMU on the command line?)")
    open(out, "wb").write(iort)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
