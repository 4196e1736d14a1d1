#!/usr/bin/env bash
# Runs INSIDE the Debian trixie root (see README.md): fetches the Linux source Debian ships
# in trixie-backports, configures a small arm64 kernel (allnoconfig + guest.config) and
# builds arch/arm64/boot/Image under $RK_CACHE.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${RK_CACHE:?set RK_CACHE to a cache directory inside the root}"
mkdir -p "$RK_CACHE"
cd "$RK_CACHE"

# the cross compiler, the kernel's build tools, UEFI firmware and cpio (trixie-backports first:
# the root's QEMU comes from there and pins some libraries to it)
tools=(gcc-aarch64-linux-gnu flex bison bc libelf-dev libssl-dev cpio make xz-utils qemu-efi-aarch64 python3)
missing=()
for t in "${tools[@]}"; do dpkg-query -W -f='${Status}' "$t" 2>/dev/null | grep -q 'install ok installed' || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-kernel: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t trixie-backports "${missing[@]}" >/dev/null
fi

# The newest trixie-backports `linux` whose orig tarball the mirror serves (older entries in
# the index may be gone from the pool). RK_LINUX_VERSION=x.y.z pins one.
if [ -z "${RK_LINUX_VERSION:-}" ]; then
  grep -q '^deb-src .* trixie-backports' /etc/apt/sources.list.d/*.list 2>/dev/null || {
    mirror=$(awk '/^deb .* trixie-backports/{print $2; exit}' /etc/apt/sources.list.d/*.list)
    echo "deb-src $mirror trixie-backports main" > /etc/apt/sources.list.d/real-kernel-src.list
    apt-get update -qq
  }
  for v in $(apt-cache showsrc linux | awk '/^Version: .*bpo/{print $2}' | sort -rV); do
    upstream=${v%%-*}
    if [ -f "linux_$upstream.orig.tar.xz" ] || apt-get source --download-only --tar-only "linux=$v" >/dev/null 2>&1 \
       || [ -f "linux_$upstream.orig.tar.xz" ]; then
      RK_LINUX_VERSION=$upstream; break
    fi
    echo "build-kernel: linux $v not served by the mirror, trying an older one" >&2
  done
fi
: "${RK_LINUX_VERSION:?no linux source package could be fetched}"
src=$RK_CACHE/linux-$RK_LINUX_VERSION
[ -d "$src" ] || { echo "build-kernel: extracting linux_$RK_LINUX_VERSION.orig.tar.xz" >&2; tar xf "linux_$RK_LINUX_VERSION.orig.tar.xz"; }
out=$RK_CACHE/build-$RK_LINUX_VERSION
mkdir -p "$out"
cd "$src"
mk() { make ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- O="$out" "$@"; }
image=$out/arch/arm64/boot/Image
fresh=
if [ -f "$image" ] && [ -z "${RK_REBUILD:-}" ] && [ "$image" -nt "$here/guest.config" ]; then
  fresh=yes   # built from this fragment already; RK_REBUILD=1 forces a new configuration and build
else
  mk allnoconfig >/dev/null
  KCONFIG_CONFIG="$out/.config" scripts/kconfig/merge_config.sh -m -O "$out" "$out/.config" "$here/guest.config" >/dev/null
  mk olddefconfig >/dev/null
fi

# every wanted option must have survived the dependency resolution
missing=0
while IFS= read -r line; do
  case $line in CONFIG_*=*) ;; *) continue ;; esac
  if grep -qx "$line" "$out/.config"; then echo "config ok      $line"
  else echo "config MISSING $line (got: $(grep -E "^(# )?${line%%=*}[= ]" "$out/.config" || echo absent))"; missing=1; fi
done < "$here/guest.config"
[ "$missing" = 0 ] || { echo "build-kernel: the .config lacks wanted options (above)" >&2; exit 1; }

if [ -n "$fresh" ]; then
  echo "build-kernel: $image is up to date"
else
  start=$(date +%s)
  mk -j"${RK_JOBS:-2}" Image
  echo "build-kernel: Image built in $(( $(date +%s) - start )) s: $image ($(make -s -C "$src" kernelversion))"
fi
echo "$RK_LINUX_VERSION" > "$RK_CACHE/linux-version"
