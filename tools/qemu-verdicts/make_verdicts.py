#!/usr/bin/env python3
"""Regenerates tests/vectors/qemu-verdicts/*.json: QEMU 11.1's verdict on each case of cases.txt.

Maintainer tool, never run by tests. Usage (from the repository root):
    QEMU11=<path of the team's qemu11 chroot wrapper> python3 tools/qemu-verdicts/make_verdicts.py

cases.txt: one case per line, "name<TAB>arguments" (arguments split on spaces; no quoting needed
for these cases). Each case runs as
    qemu-system-aarch64 -machine virt -nodefaults -display none -accel qtest -qtest /dev/null ARGS
with a 10 s timeout; the JSON keeps the arguments, the exit status and stderr without the qtest
protocol's OPENED/CLOSED lines.
"""
import json, os, re, subprocess, sys

PREFIX = ["qemu-system-aarch64", "-machine", "virt", "-nodefaults", "-display", "none",
          "-accel", "qtest", "-qtest", "/dev/null"]
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
out_dir = os.path.join(root, "tests", "vectors", "qemu-verdicts")
wrapper = os.environ.get("QEMU11")
if not wrapper:
    sys.exit("set QEMU11 to the qemu11 wrapper (runs a command in the QEMU 11.1 root)")

version = subprocess.run([wrapper, "qemu-system-aarch64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
for line in open(os.path.join(here, "cases.txt")):
    line = line.rstrip("\n")
    if not line or line.startswith("#"):
        continue
    name, args = line.split("\t", 1)
    argv = args.split()
    p = subprocess.run([wrapper, "timeout", "10"] + PREFIX + argv, capture_output=True, text=True, cwd=root)
    stderr = "\n".join(l for l in p.stderr.splitlines() if not re.match(r"^\[I [+0-9.]+\] (OPENED|CLOSED)$", l))
    case = {"name": name, "qemu": version, "prefix": PREFIX, "args": argv,
            "exitCode": p.returncode, "accepted": p.returncode == 0, "stderr": stderr}
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    print(f"{name}: {'accepted' if p.returncode == 0 else 'refused'}  {stderr.splitlines()[-1] if stderr else ''}")
