#!/usr/bin/env python3
"""Regenerates tests/vectors/qemu-verdicts/map-notifier/*.json: QEMU 11.1 refusing a VFIO device
behind its emulated SMMUv3 (the MAP notifier error), observed through vfio-user-pci.

Maintainer tool, never run by tests. Usage (from the repository root):
    QEMU11=<path of the team's qemu11 chroot wrapper> python3 tools/qemu-verdicts/make_map_notifier.py

vfio-pci needs a host function the QEMU root does not have; vfio-user-pci shares VFIO's DMA
container and memory listener and needs only a socket, served by vfio_user_stub.py. Each case of
map-notifier-cases.txt ("name<TAB>arguments[<TAB>device_add JSON]") runs inside the root as
    qemu-system-aarch64 -machine virt -nodefaults -display none -accel qtest -qtest /dev/null ARGS
with a 5 s timeout; a case with a third column also gets "-qmp unix:qmp.sock,server=on,wait=off"
and the device is hot-plugged with QMP device_add once the machine runs. The JSON keeps the
arguments, the exit status, stderr without the qtest protocol's OPENED/CLOSED lines, and QMP's
error description for device_add (or null).
"""
import json, os, re, socket, subprocess, sys, time

PREFIX = ["qemu-system-aarch64", "-machine", "virt", "-nodefaults", "-display", "none",
          "-accel", "qtest", "-qtest", "/dev/null"]
SOCKET = "vfio-user.sock"
QMP = "qmp.sock"
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))


def qmp_device_add(arguments):
    s = socket.socket(socket.AF_UNIX)
    for _ in range(50):
        try:
            s.connect(QMP)
            break
        except OSError:
            time.sleep(0.1)
    f = s.makefile("rw")

    def execute(command, args=None):
        f.write(json.dumps({"execute": command, **({"arguments": args} if args else {})}) + "\n")
        f.flush()
        while True:
            reply = json.loads(f.readline())
            if "return" in reply or "error" in reply:
                return reply

    f.readline()  # greeting
    execute("qmp_capabilities")
    reply = execute("device_add", arguments)
    execute("quit")
    return reply["error"]["desc"] if "error" in reply else None


def inside(args, hotplug):
    """Runs one case (inside the QEMU root) and prints its result as JSON."""
    for stale in (SOCKET, QMP):
        if os.path.exists(stale):
            os.unlink(stale)
    stub = subprocess.Popen([sys.executable, os.path.join(here, "vfio_user_stub.py"), SOCKET])
    time.sleep(0.3)
    argv = PREFIX + args + (["-qmp", f"unix:{QMP},server=on,wait=off"] if hotplug else [])
    qemu = subprocess.Popen(["timeout", "5"] + argv, stderr=subprocess.PIPE, text=True)
    qmp_error = qmp_device_add(json.loads(hotplug)) if hotplug else None
    _, stderr = qemu.communicate()
    stub.wait(timeout=10)
    for stale in (SOCKET, QMP):
        if os.path.exists(stale):
            os.unlink(stale)
    lines = [l for l in stderr.splitlines() if not re.match(r"^\[I [+0-9.]+\] (OPENED|CLOSED)$", l)]
    print(json.dumps({"exitCode": qemu.returncode, "stderr": "\n".join(lines), "qmpError": qmp_error}))


if len(sys.argv) > 1 and sys.argv[1] == "--inside":
    inside(sys.argv[2].split(), sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None)
    sys.exit(0)

wrapper = os.environ.get("QEMU11")
if not wrapper:
    sys.exit("set QEMU11 to the qemu11 wrapper (runs a command in the QEMU 11.1 root)")
out_dir = os.path.join(root, "tests", "vectors", "qemu-verdicts", "map-notifier")
os.makedirs(out_dir, exist_ok=True)
version = subprocess.run([wrapper, "qemu-system-aarch64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
for line in open(os.path.join(here, "map-notifier-cases.txt")):
    line = line.rstrip("\n")
    if not line or line.startswith("#"):
        continue
    name, args, *rest = line.split("\t")
    hotplug = rest[0] if rest else ""
    p = subprocess.run([wrapper, "python3", os.path.join("tools", "qemu-verdicts", "make_map_notifier.py"), "--inside", args, hotplug],
                       capture_output=True, text=True, cwd=root)
    result = json.loads(p.stdout.strip().splitlines()[-1])
    case = {"name": name, "qemu": version, "prefix": PREFIX, "args": args.split(),
            "hotplug": json.loads(hotplug) if hotplug else None, **result}
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    print(f"{name}: {result['qmpError'] or (result['stderr'].splitlines() or [''])[-1]}")
