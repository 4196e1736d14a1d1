#!/usr/bin/env bash
# The real-kernel conformance run, from a clean clone: builds a small arm64 Linux with
# iommufd, VFIO and arm-smmu-v3, publishes the conformance program for linux-arm64, boots
# both under QEMU 11.1 (TCG) in a Debian trixie root and writes the program's lines to
# tests/vectors/real-kernel/. See README.md beside this file.
#
#   QEMU11=path/to/qemu11 QEMU11_ROOT=path/to/root RK_CACHE=/some/dir/inside/the/root \
#     tools/real-kernel/run.sh [acpi|dt|acpi2|dt2]...
#
# QEMU11 is the wrapper that runs a command inside the root with the current directory bound
# at the same path; QEMU11_ROOT is that root as this machine sees it; RK_CACHE is the cache
# (source, build, initramfs, logs) as the root sees it. Nothing is cached in the repository.
set -euo pipefail
: "${QEMU11:?set QEMU11 to the wrapper that runs a command in the QEMU 11.1 root}"
: "${QEMU11_ROOT:?set QEMU11_ROOT to the root directory}"
: "${RK_CACHE:?set RK_CACHE to a cache directory as seen inside the root}"
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
modes=("$@"); [ ${#modes[@]} -gt 0 ] || modes=(acpi dt acpi2)
export RK_CACHE
host_cache=$QEMU11_ROOT$RK_CACHE
mkdir -p "$host_cache"

t=$(date +%s)
"$QEMU11" bash tools/real-kernel/build-kernel.sh
echo "run: kernel ready after $(( $(date +%s) - t )) s"

t=$(date +%s)
rm -rf "$host_cache/app"
dotnet publish tools/real-kernel/Conformance -c Release -r linux-arm64 --self-contained \
  -p:InvariantGlobalization=true -p:PublishReadyToRun=true -o "$host_cache/app" -v q --nologo
echo "run: program published after $(( $(date +%s) - t )) s"
export RK_APP=$RK_CACHE/app

out=tests/vectors/real-kernel
mkdir -p "$out"
for mode in "${modes[@]}"; do
  "$QEMU11" bash tools/real-kernel/boot.sh "$mode"
  log=$host_cache/serial-$mode.log
  # the program's lines, from its header to its closing timing note
  # (notes and steps only: every step name has a dot, so a stray console message cannot pass)
  tr -d '\r' < "$log" | sed -n '/^# conformance on /,/^# sequence-ms /p' \
    | grep -E '^# |^[a-z0-9_]+(\.[a-z0-9_]+)+: ' > "$out/linux-$mode.txt"
  grep -q '^# sequence-ms ' "$out/linux-$mode.txt" || { echo "run: $mode: the program did not finish; see $log" >&2; tail -40 "$log" >&2; exit 1; }
  {
    echo "# kernel $(cat "$host_cache/linux-version") (Debian trixie-backports orig tarball, tools/real-kernel/guest.config)"
    echo "# $(cat "$host_cache/qemu-$mode.version")"
    echo "# $(sed "s|$RK_CACHE/[^ ]*/||g; s|$RK_CACHE/||g" "$host_cache/qemu-$mode.cmdline")"
    echo "# $(cat "$host_cache/time-$mode")"
    grep -a '^rk: \|rk: init' "$log" | tr -d '\r' | sed 's/\x1b\[[0-9;=]*[a-zA-Z]//g; s/^/# /'
  } > "$out/linux-$mode.notes"
  echo "run: $mode: $(grep -vc '^#' "$out/linux-$mode.txt") lines in $out/linux-$mode.txt"
done

# the emulated host's answers for the same sequences, on the profiles shaped like these machines
dotnet run --project tools/real-kernel/Conformance -c Release -- \
  --profile examples/hosts/qemu-virt-smmuv3.json --device edu | grep -v -- '-ms ' > "$out/emulated.txt"
echo "run: emulated: $(grep -vc '^#' "$out/emulated.txt") lines in $out/emulated.txt"
dotnet run --project tools/real-kernel/Conformance -c Release -- \
  --profile examples/hosts/qemu-virt-two-smmuv3.json --device edu --device edu-b | grep -v -- '-ms ' > "$out/emulated-two-smmus.txt"
echo "run: emulated: $(grep -vc '^#' "$out/emulated-two-smmus.txt") lines in $out/emulated-two-smmus.txt"
