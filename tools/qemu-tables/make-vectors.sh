#!/usr/bin/env bash
# Regenerates tests/vectors/qemu-tables: for every case in cases.txt, the IORT and DSDT that
# QEMU 11.1 builds at startup (read through fw_cfg under qtest with shared/tools/qemu-acpi.py,
# so no firmware runs and bridges keep secondary bus 0) and, where the case says so, the device
# tree (-machine dumpdtb=); where the case lists root buses, also the tables after the PCI bridges
# have been numbered as firmware numbers them (qemu-acpi-enumerated.py: IORT.enumerated.dat,
# DSDT.enumerated.dat). Maintainer tool: needs root and the team's QEMU 11.1 tool set
# (shared/tools/qemu11) beside the repository; never run by tests or CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=tests/vectors/qemu-tables
# the team tool set: ../shared/tools beside the repository, or SHARED_TOOLS=<dir>
tools=$(cd "${SHARED_TOOLS:-../shared/tools}" && pwd)
# the chroot sees only the current directory, so the scratch folder lives inside it
tmp=$(mktemp -d "$PWD/.qemu-tables.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
grep -v '^#' tools/qemu-tables/cases.txt | while IFS='|' read -r name dtb roots args; do
  [ -n "$name" ] || continue
  dir="$out/$name"
  rm -rf "$dir" && mkdir -p "$dir"
  # shellcheck disable=SC2086
  "$tools/qemu11" python3 "$tools/qemu-acpi.py" "$tmp/$name" qemu-system-aarch64 $args >/dev/null
  cp "$tmp/$name/IORT.dat" "$tmp/$name/DSDT.dat" "$dir/"
  if [ "$dtb" = yes ]; then
    # shellcheck disable=SC2086
    "$tools/qemu11" qemu-system-aarch64 $args -nodefaults -display none -machine dumpdtb="$dir/virt.dtb" >/dev/null
  fi
  if [ -n "$roots" ]; then
    # shellcheck disable=SC2086
    "$tools/qemu11" python3 tools/qemu-tables/qemu-acpi-enumerated.py "$tmp/$name.enumerated" "$roots" qemu-system-aarch64 $args >/dev/null
    cp "$tmp/$name.enumerated/IORT.dat" "$dir/IORT.enumerated.dat"
    cp "$tmp/$name.enumerated/DSDT.dat" "$dir/DSDT.enumerated.dat"
  fi
  printf '%s\n' "$args" > "$dir/cmdline.txt"
  echo "$name: $(ls "$dir" | tr '\n' ' ')"
done
