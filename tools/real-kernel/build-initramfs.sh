#!/usr/bin/env bash
# Runs INSIDE the Debian trixie root: makes $RK_CACHE/initramfs.cpio (uncompressed newc) from
# Debian's arm64 glibc, libstdc++, libgcc and busybox-static, the self-contained .NET
# program in $RK_APP (dotnet publish -r linux-arm64) and init.sh. With $RK_IORT set, that file
# goes in as kernel/firmware/acpi/IORT.aml, which the kernel uses instead of the firmware's
# IORT (CONFIG_ACPI_TABLE_UPGRADE).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${RK_CACHE:?set RK_CACHE}" "${RK_APP:?set RK_APP to the published program}"
debs=$RK_CACHE/debs
if ! ls "$debs"/busybox-static_*_arm64.deb >/dev/null 2>&1; then
  dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; apt-get update -qq; }
  mkdir -p "$debs"
  (cd "$debs" && apt-get download libc6:arm64 libstdc++6:arm64 libgcc-s1:arm64 busybox-static:arm64)
fi
root=$RK_CACHE/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,app,usr}
for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
# merged /usr: the loader is asked for as /lib/ld-linux-aarch64.so.1
[ -e "$root/lib" ] || ln -s usr/lib "$root/lib"
cp "$root/usr/bin/busybox" "$root/bin/busybox"
for tool in sh mount cat ls echo cut grep sed dmesg poweroff uname sleep; do ln -sf busybox "$root/bin/$tool"; done
rm -rf "$root/usr/share"
cp -a "$RK_APP"/. "$root/app/"
rm -f "$root"/app/*.pdb "$root"/app/*.xml
install -m 755 "$here/init.sh" "$root/init"
mknod -m 600 "$root/dev/console" c 5 1
if [ -n "${RK_IORT:-}" ]; then
  mkdir -p "$root/kernel/firmware/acpi"
  cp "$RK_IORT" "$root/kernel/firmware/acpi/IORT.aml"
fi
# the ACPI tables must come first in the archive for the early table upgrade
(cd "$root" && { [ -d kernel ] && find kernel; find . -path ./kernel -prune -o -print | sed 's|^\./||' | grep -v '^\.$'; } | cpio -o -H newc --quiet) > "$RK_CACHE/initramfs.cpio"
echo "build-initramfs: $RK_CACHE/initramfs.cpio $(du -h "$RK_CACHE/initramfs.cpio" | cut -f1)"
