#!/usr/bin/env python3
"""Prints nothing and writes OUT: the IORT QEMU gives a guest for a command line, read from
the fw_cfg file etc/acpi/tables under the qtest accelerator (no guest code runs).

  qemu-iort.py OUT.dat qemu-system-aarch64 -machine virt,... <devices>

The virt board's fw_cfg is the MMIO device at 0x9020000 (hw/arm/virt.c, VIRT_FW_CFG): data
register at +0, big-endian 16-bit selector at +8 (docs/specs/fw_cfg.rst). File 0x19 is the
directory. The table blob holds the tables back to back; IORT carries no pointers, so it is
already what the firmware installs, except its checksum byte, which the firmware's loader
fills in (iort-canwbs.py recomputes it).
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


def main(out, argv):
    q = Qtest(argv)
    try:
        q.select(FILE_DIR)
        (files,) = struct.unpack(">I", q.read(4))
        entries = [struct.unpack(">IHH56s", q.read(DIR_ENTRY)) for _ in range(files)]
        match = [(size, key) for size, key, _, name in entries if name.rstrip(b"\0") == ACPI_TABLES]
        if not match:
            sys.exit("qemu-iort: no etc/acpi/tables (is ACPI on?)")
        size, key = match[0]
        q.select(key)
        blob = q.read(size)
    finally:
        q.close()
    at = blob.find(b"IORT")
    if at < 0:
        sys.exit("qemu-iort: the tables hold no IORT (no SMMU on the command line?)")
    (length,) = struct.unpack_from("<I", blob, at + 4)
    open(out, "wb").write(blob[at:at + length])


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
