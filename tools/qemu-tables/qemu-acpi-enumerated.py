#!/usr/bin/env python3
"""The ACPI tables QEMU's virt board gives a guest after firmware has numbered the PCI bridges.

Runs qemu-system-aarch64 under the qtest accelerator (no guest code), first plays the firmware's
bus scan through ECAM config writes (depth first under each root bus, in slot order: every bridge
gets the next number as its secondary bus and the last number below it as its subordinate), and
only then selects fw_cfg's etc/acpi/tables, so QEMU builds the tables from the numbered buses.
Writes OUTDIR/SIG.dat for every table found.

usage: qemu-acpi-enumerated.py OUTDIR ROOT_BUSES QEMU [QEMU ARGS...]
       ROOT_BUSES: comma-separated root bus numbers (0 and each pxb-pcie bus_nr), e.g. 0,0x10
"""
import os, struct, subprocess, sys

FW_CFG = 0x09020000            # virt VIRT_FW_CFG: data at +0, selector at +8
FW_CFG_FILE_DIR = 0x19
ECAM = 0x4010000000            # virt VIRT_HIGH_PCIE_ECAM (highmem-ecam, the default)
VENDOR, HEADER_TYPE = 0x00, 0x0E
PRIMARY, SECONDARY, SUBORDINATE = 0x18, 0x19, 0x1A
HEADER_BRIDGE, MULTIFUNCTION = 0x01, 0x80


class Qtest:
    def __init__(self, argv):
        self.p = subprocess.Popen(argv + ["-accel", "qtest", "-qtest", "stdio", "-qtest-log", "/dev/null",
                                          "-display", "none", "-nodefaults"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, bufsize=1)

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        while True:
            reply = self.p.stdout.readline()
            if not reply:
                sys.exit("qemu exited: " + self.p.stderr.read())
            if reply.startswith(("OK", "FAIL", "ERR")):
                return reply.split()

    def read(self, width, addr):
        return int(self.cmd("read%s 0x%x" % (width, addr))[1], 16)

    def write(self, width, addr, value):
        self.cmd("write%s 0x%x 0x%x" % (width, addr, value))

    def close(self):
        self.p.stdin.close()
        self.p.kill()


def cfg(bus, dev, fn, reg):
    return ECAM + (bus << 20) + (dev << 15) + (fn << 12) + reg


def functions(q, bus):
    for dev in range(32):
        for fn in range(8):
            if q.read("w", cfg(bus, dev, fn, VENDOR)) == 0xFFFF:
                if fn == 0:
                    break
                continue
            header = q.read("b", cfg(bus, dev, fn, HEADER_TYPE))
            yield dev, fn, header & 0x7F
            if fn == 0 and not header & MULTIFUNCTION:
                break


def number(q, bus, next_bus):
    """Numbers every bridge below bus; returns the last bus number used."""
    for dev, fn, kind in list(functions(q, bus)):
        if kind != HEADER_BRIDGE:
            continue
        next_bus += 1
        secondary = next_bus
        q.write("b", cfg(bus, dev, fn, PRIMARY), bus)
        q.write("b", cfg(bus, dev, fn, SECONDARY), secondary)
        q.write("b", cfg(bus, dev, fn, SUBORDINATE), 0xFF)
        next_bus = number(q, secondary, next_bus)
        q.write("b", cfg(bus, dev, fn, SUBORDINATE), next_bus)
    return next_bus


def fw_cfg_select(q, key):
    # the selector register is big-endian; qtest writes little-endian
    q.write("w", FW_CFG + 8, ((key & 0xFF) << 8) | (key >> 8))


def fw_cfg_read(q, n):
    return bytes(q.read("b", FW_CFG) for _ in range(n))


def main():
    out, roots, argv = sys.argv[1], [int(b, 0) for b in sys.argv[2].split(",")], sys.argv[3:]
    os.makedirs(out, exist_ok=True)
    q = Qtest(argv)
    for root in sorted(roots):
        number(q, root, root)
    fw_cfg_select(q, FW_CFG_FILE_DIR)
    files = {}
    for _ in range(struct.unpack(">I", fw_cfg_read(q, 4))[0]):
        size, key, _reserved = struct.unpack(">IHH", fw_cfg_read(q, 8))
        files[fw_cfg_read(q, 56).split(b"\0")[0].decode()] = (size, key)
    size, key = files["etc/acpi/tables"]
    fw_cfg_select(q, key)
    blob = fw_cfg_read(q, size)
    q.close()
    i = 0
    while i + 8 <= len(blob):
        sig, length = blob[i:i + 4], struct.unpack("<I", blob[i + 4:i + 8])[0]
        if sig.isalnum() and sig.isupper() and 36 <= length <= len(blob) - i:
            with open(os.path.join(out, sig.decode() + ".dat"), "wb") as f:
                f.write(blob[i:i + length])
            print(sig.decode(), length)
            i += length
        else:
            i += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
