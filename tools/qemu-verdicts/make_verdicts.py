#!/usr/bin/env python3
"""Regenerates tests/vectors/qemu-verdicts/*.json: QEMU 11.1's verdict on each case of cases.txt.

Maintainer tool, never run by tests. Usage (from the repository root):
    QEMU11=<path of the team's qemu11 chroot wrapper> python3 tools/qemu-verdicts/make_verdicts.py

cases.txt: one case per line, "name<TAB>arguments" (arguments split on spaces; no quoting needed
for these cases). Each case runs as
    qemu-system-aarch64 -machine virt -nodefaults -display none -accel qtest -qtest /dev/null ARGS
with a 3 s timeout. QEMU that accepts a line keeps running under qtest until the timeout
(exit status 124): that is the "accepted" verdict. A case named "noprefix-..." runs its
arguments after "qemu-system-aarch64 -nodefaults -display none" only (to ask
for another accelerator). The JSON keeps the arguments, the exit status and stderr without the
qtest protocol's OPENED/CLOSED lines and without the chroot wrapper's own lines (an abort
shows as exit status 134).
"""
import json, os, re, subprocess, sys

PREFIX = ["qemu-system-aarch64", "-machine", "virt", "-nodefaults", "-display", "none",
          "-accel", "qtest", "-qtest", "/dev/null"]
NOPREFIX = ["qemu-system-aarch64", "-nodefaults", "-display", "none"]
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
    prefix = NOPREFIX if name.startswith("noprefix-") else PREFIX
    p = subprocess.run([wrapper, "timeout", "3"] + prefix + argv, capture_output=True, text=True, cwd=root)
    stderr = "\n".join(l for l in p.stderr.splitlines()
                       if not re.match(r"^\[I [+0-9.]+\] (OPENED|CLOSED)$", l) and not l.startswith(wrapper))
    case = {"name": name, "qemu": version, "prefix": prefix, "args": argv,
            "exitCode": p.returncode, "accepted": p.returncode == 124, "stderr": stderr}
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    print(f"{name}: {'accepted' if p.returncode == 124 else 'refused'}  {stderr.splitlines()[-1] if stderr else ''}")
