#!/usr/bin/env bash
# Runs one coverage-guided fuzz target under AFL++ for a bounded time:
#   fuzz/run.sh TARGET SECONDS
# Targets: command, ste-cd, scenario, host-profile, qemu-cmdline, machine-json, iommufd-ioctl, firmware-tables
# (fuzz/NestedSmmu.Fuzz.Targets).
# Needs afl++ (apt-get install -y afl++) and the .NET SDK; installs the SharpFuzz.CommandLine tool
# into fuzz/bin/tools. Each crash input is copied to tests/vectors/fuzz-crashes/TARGET/, where the
# regression test FuzzCrashReplayTests replays it (commit it with the fix).
set -euo pipefail
cd "$(dirname "$0")"
if [ $# -ne 2 ]; then echo "usage: fuzz/run.sh TARGET SECONDS" >&2; exit 2; fi
target=$1
seconds=$2
if [ ! -d "corpus/$target" ]; then echo "no seed corpus fuzz/corpus/$target (unknown target?)" >&2; exit 2; fi
command -v afl-fuzz >/dev/null || { echo "afl-fuzz not found: apt-get install -y afl++" >&2; exit 2; }

out=bin/publish
dotnet publish NestedSmmu.Fuzz -c Release -o "$out" -v q --nologo
if [ ! -x bin/tools/sharpfuzz ]; then
  dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path bin/tools >/dev/null
fi
# Instrument the assemblies under test (publish copied fresh, uninstrumented ones).
for dll in NestedSmmu.Hardware NestedSmmu.Iommufd NestedSmmu.Scenarios NestedSmmu.Vmm NestedSmmu.Guest; do
  msg=$(bin/tools/sharpfuzz "$out/$dll.dll" 2>&1) || grep -q "already instrumented" <<<"$msg" || { echo "$msg" >&2; exit 1; }
done

findings="findings/$target"
rm -rf "$findings"; mkdir -p findings
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
# -V: stop after SECONDS; -t: a .NET start-up is slow, so a generous per-input timeout; -m none: the CLR reserves much address space.
afl-fuzz -V "$seconds" -t 5000 -m none -i "corpus/$target" -o "$findings" -- "$out/NestedSmmu.Fuzz" "$target" || true

stats="$findings/default/fuzzer_stats"
if [ -f "$stats" ]; then
  grep -E '^(execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs) ' "$stats"
fi
crashes=(); shopt -s nullglob; crashes=("$findings"/default/crashes/id*)
if [ ${#crashes[@]} -gt 0 ]; then
  dest="../tests/vectors/fuzz-crashes/$target"
  mkdir -p "$dest"
  for f in "${crashes[@]}"; do cp "$f" "$dest/$(sha1sum "$f" | cut -c1-16).bin"; done
  echo "${#crashes[@]} crash input(s) copied to tests/vectors/fuzz-crashes/$target" >&2
  exit 1
fi
