#!/bin/sh
# /init of the real-kernel initramfs: mount the pseudo file systems, hand every edu device
# (PCI 1234:11e8) to vfio-pci, run the conformance program on them (one device: the
# one-SMMU sequence, two: the two-SMMU sequence), print the kernel's IOMMU messages, power off. The host script cuts the program's lines out of the
# serial console.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "rk: init at uptime $(cut -d' ' -f1 /proc/uptime) s, kernel $(uname -r)"
device=
devices=
for d in /sys/bus/pci/devices/*; do
  if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ]; then
    bdf=${d##*/}
    echo vfio-pci > "$d/driver_override"
    echo "$bdf" > /sys/bus/pci/drivers_probe
    [ -n "$device" ] || device=$bdf
    devices="$devices --device $bdf"
    iommu=$(ls -l "$d/iommu" 2>/dev/null); echo "rk: $bdf iommu ${iommu##*/}"
  fi
done
# one line even with several cdevs (unquoted, the list is split and joined by spaces)
cdevs=$(echo $(ls /dev/vfio/devices 2>&1))
echo "rk: device $device, cdevs: $cdevs, iommufd: $(ls /dev/iommu 2>&1)"
export DOTNET_EnableWriteXorExecute=0 DOTNET_EnableDiagnostics=0 DOTNET_CLI_TELEMETRY_OPTOUT=1
echo "rk: start at uptime $(cut -d' ' -f1 /proc/uptime) s"
/app/nestedsmmu-conformance $devices
echo "rk: exit $? at uptime $(cut -d' ' -f1 /proc/uptime) s"
dmesg | grep -i -E 'smmu|iommu|vfio|iort|acpi: table upgrade|override' | sed 's/^/rk-dmesg: /'
poweroff -f
