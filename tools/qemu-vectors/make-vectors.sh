#!/usr/bin/env bash
# Regenerates the QEMU comparison corpus: writes the scenarios, then runs each on QEMU 11.1's
# own SMMUv3 model (shared/tools/qemu-smmu.py, inside shared/tools/qemu11; root needed) and
# stores its result beside it as NAME.qemu.json. The tests compare NestedSmmu with these files.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=tests/vectors/qemu
shared=$(cd ../shared && pwd)
rm -f "$out"/*.json
dotnet run tools/qemu-vectors/generate.cs -- "$out"
for f in "$out"/*.json; do
  case "$f" in *.qemu.json) continue ;; esac
  "$shared/tools/qemu11" python3 "$shared/tools/qemu-smmu.py" "$f" --out "${f%.json}.qemu.json" >/dev/null
  echo "$(basename "$f"): $(tr -d ' \n' < "${f%.json}.qemu.json" | head -c 200)"
done
