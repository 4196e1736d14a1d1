#!/usr/bin/env bash
# Runs INSIDE the Debian trixie root: boots the kernel built by build-kernel.sh with the
# initramfs of build-initramfs.sh under QEMU 11.1 (TCG) and writes the serial console to
# $RK_CACHE/serial-MODE.log.
#   boot.sh acpi   UEFI firmware (qemu-efi-aarch64) and ACPI; the initrd carries QEMU's own
#                  IORT with the root complex marked CANWBS (iort-canwbs.py), so arm-smmu-v3
#                  offers a vIOMMU
#   boot.sh dt     direct kernel boot with QEMU's device tree: no CANWBS, no S2FWB, so
#                  IOMMU_VIOMMU_ALLOC is refused (EOPNOTSUPP) and everything after it too
#   boot.sh acpi2  as acpi, with two SMMUs: the second on a pxb-pcie expander bus (bus 0x10)
#                  with a root port (bus 0x11) and a second edu device behind it
#   boot.sh dt2    the same machine with QEMU's device tree, which describes only the SMMU
#                  on pcie.0 (QEMU warns: SMMUv3 device only supported with pcie.0 for DT)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${RK_CACHE:?set RK_CACHE}"
mode=${1:-acpi}
version=$(cat "$RK_CACHE/linux-version")
image=$RK_CACHE/build-$version/arch/arm64/boot/Image
machine=(-machine virt,gic-version=3 -cpu cortex-a57 -smp 2 -m 2048)
devices=(-nic none -device arm-smmuv3,primary-bus=pcie.0,stage=nested -device edu)
iort_bridges=()
case $mode in
  acpi2|dt2)
    # edu A at 00:01.0 behind the SMMU of pcie.0; edu B at 11:00.0 behind the SMMU of the
    # expander bus. The firmware numbers the root port's secondary bus 0x11 (the next free
    # number after the expander's 0x10), which qemu-iort.py programs before reading the IORT.
    devices=(-nic none -device arm-smmuv3,primary-bus=pcie.0,stage=nested -device edu,addr=1
      -device pxb-pcie,id=pcie.1,bus=pcie.0,bus_nr=0x10,addr=2
      -device pcie-root-port,id=rp1,bus=pcie.1,chassis=1 -device edu,bus=rp1
      -device arm-smmuv3,primary-bus=pcie.1,stage=nested)
    iort_bridges=(--bridge 10:00.0=11)
    ;;
esac
# loglevel=3 keeps kernel messages off the console while the program prints; init.sh prints
# the IOMMU lines of dmesg afterwards
append="console=ttyAMA0 panic=-1 loglevel=3"
firmware=()
case $mode in
  acpi|acpi2)
    python3 "$here/qemu-iort.py" "$RK_CACHE/iort-qemu.dat" "${iort_bridges[@]}" qemu-system-aarch64 "${machine[@]}" "${devices[@]}"
    python3 "$here/iort-canwbs.py" "$RK_CACHE/iort-qemu.dat" "$RK_CACHE/IORT.aml"
    RK_IORT=$RK_CACHE/IORT.aml "$here/build-initramfs.sh"
    firmware=(-bios /usr/share/qemu-efi-aarch64/QEMU_EFI.fd)
    append="$append acpi=force"
    ;;
  dt|dt2)
    RK_IORT= "$here/build-initramfs.sh"
    append="$append acpi=off"
    ;;
  *) echo "boot.sh: mode is acpi, dt, acpi2 or dt2" >&2; exit 2 ;;
esac
log=$RK_CACHE/serial-$mode.log
cmdline=(qemu-system-aarch64 "${machine[@]}" -accel tcg -nographic -no-reboot "${firmware[@]}"
  -kernel "$image" -initrd "$RK_CACHE/initramfs.cpio" -append "$append" "${devices[@]}")
for arg in "${cmdline[@]}"; do case $arg in *" "*) printf "'%s' " "$arg" ;; *) printf '%s ' "$arg" ;; esac; done > "$RK_CACHE/qemu-$mode.cmdline"
qemu-system-aarch64 --version | head -1 > "$RK_CACHE/qemu-$mode.version"
start=$(date +%s)
timeout "${RK_TIMEOUT:-3600}" "${cmdline[@]}" < /dev/null > "$log" 2>&1 || echo "boot.sh: QEMU exited with $?" >&2
echo "boot.sh: $mode boot and run took $(( $(date +%s) - start )) s; console in $log" >&2
echo "wall-seconds $(( $(date +%s) - start ))" > "$RK_CACHE/time-$mode"
