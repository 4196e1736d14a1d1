using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Vmm.Config;

/// <summary>
/// Judges a <see cref="MachineSpec"/> as QEMU 11.1 does: devices in command-line order, each
/// through virt's pre-plug hook, its realize and virt's plug hook, then the machine-done checks;
/// the first error stops (QEMU exits on it), warnings are collected. With a <see cref="HostView"/>
/// it also runs what QEMU only finds at attach time (host device, host-SMMU compatibility,
/// <c>auto</c> resolution) and goes past QEMU where it fails late or not at all (a device
/// behind another physical SMMU than its vSMMU's, a host function without an IOMMU, an IOMMU
/// group split across vSMMUs, cmdqv=on without a CMDQV), naming the device and both SMMUs.
/// </summary>
public static class MachineValidator
{
    /// <summary>Parses and checks QEMU arguments; a parse error is the verdict.</summary>
    public static MachineCheck Check(IReadOnlyList<string> args, HostView? host)
    {
        ArgumentNullException.ThrowIfNull(args);
        try
        {
            MachineSpec spec = QemuCommandLine.Parse(args, out IReadOnlyList<string> warnings);
            return Check(spec, host, warnings);
        }
        catch (QemuConfigException e)
        {
            return new MachineCheck(new MachineSpec(), null, [], [], [], e);
        }
    }

    /// <summary>Checks a spec; <paramref name="parseWarnings"/> are QEMU's warnings from parsing it (kept first).</summary>
    public static MachineCheck Check(MachineSpec spec, HostView? host, IReadOnlyList<string>? parseWarnings = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var state = new CheckState(spec, host, [.. parseWarnings ?? []]);
        return state.Run();
    }

    private sealed class CheckState(MachineSpec spec, HostView? host, List<string> warnings)
    {
        private readonly Dictionary<string, ArmSmmuV3Device> _smmuOnBus = new(StringComparer.Ordinal);
        private readonly Dictionary<ArmSmmuV3Device, ResolvedSmmuProperties> _resolved = [];
        private readonly Dictionary<ArmSmmuV3Device, (VfioPciDevice Device, HostDeviceInfo Host)> _firstDevice = [];
        private readonly Dictionary<string, (VfioPciDevice Device, string Vsmmu)> _groupOwner = new(StringComparer.Ordinal);
        private readonly Dictionary<VfioPciDevice, HostDeviceInfo> _hostOf = [];
        private PciTopology? _topology;

        private bool FirmwareLoaded => spec.Unmodelled.Any(u => u.Name is "bios" or "pflash"
            || (u.Name == "drive" && u.Text.Contains("if=pflash", StringComparison.Ordinal)));

        // virt.c create_smmuv3_dev_dtb: device-tree boot unless firmware is loaded with ACPI.
        private bool DeviceTreeBoot => !(FirmwareLoaded && spec.Machine.Acpi != OnOffAuto.Off);

        public MachineCheck Run()
        {
            QemuConfigException? placeError = null;
            int placeErrorIndex = spec.Devices.Count;
            try
            {
                _topology = PciTopology.Build(spec);
            }
            catch (QemuConfigException e)
            {
                placeError = e;
                placeErrorIndex = FailingDevice(e);
                _topology = PciTopology.Build(spec with { Devices = [.. spec.Devices.Take(placeErrorIndex)] });
            }

            try
            {
                for (int i = 0; i < placeErrorIndex; i++)
                {
                    DeviceSpec d = spec.Devices[i];
                    if (d is ArmSmmuV3Device smmu) CheckSmmu(smmu);
                    else if (_topology.FunctionOf(d) is { } f) CheckEndpoint(d, f, i);
                }
                if (placeError is not null) throw placeError;
                MachineDone();
            }
            catch (QemuConfigException e)
            {
                return Result(e);
            }
            return Result(null);
        }

        private int FailingDevice(QemuConfigException e) =>
            e.Data[PciTopology.DeviceIndexKey] is int index ? index : spec.Devices.Count;

        // ------------------------------------------------------------------ arm-smmuv3

        private void CheckSmmu(ArmSmmuV3Device d)
        {
            string q = d.Quote();
            // virt_machine_device_pre_plug_cb: incompatible IOMMUs first, then KVM for accel.
            // (QEMU 11.1 sets both errors when both apply and aborts on an assertion; the first is reported.)
            if (spec.Machine.HasLegacySmmu)
                throw new QemuConfigException(q, "virt machine already has iommu=smmuv3 set. Doesn't support incompatible iommus");
            if (spec.Devices.TakeWhile(x => !ReferenceEquals(x, d)).Any(x => x.Driver.StartsWith("virtio-iommu", StringComparison.Ordinal)))
                throw new QemuConfigException(q, "virt machine already has virtio-iommu set. Doesn't support incompatible iommus");
            if (d.Accel && !spec.KvmRequested)
                throw new QemuConfigException(q, "SMMUv3 accel=on requires KVM with kernel-irqchip=on support");

            // smmuv3_realize (hw/arm/smmuv3.c): OAS words, then accel=off restrictions, then the bus.
            if (d.Oas.Bits is { } oas && !SmmuResolution.ImplementedOasBits.Contains(oas))
                throw new QemuConfigException(q, "QEMU SMMUv3 model only implements auto, 44 bit, or 48 bit OAS. Other OasMode values are not supported.");
            if (!d.Accel)
            {
                if (d.Ril == OnOffAuto.Off) throw new QemuConfigException(q, "ril can only be disabled if accel=on");
                if (d.Ats == OnOffAuto.On) throw new QemuConfigException(q, "ats can only be enabled if accel=on");
                if (d.Oas.Bits is { } bits && bits != SmmuResolution.AccelOffOasBits) throw new QemuConfigException(q, "oas must be 44 bits when accel=off");
                if (d.SsidSize.Bits is > 0) throw new QemuConfigException(q, "ssidsize can only be greater than 0 bits if accel=on");
                if (d.Cmdqv == OnOffAuto.On) throw new QemuConfigException(q, "cmdqv can only be enabled if accel=on");
            }
            if (d.PrimaryBus is not { } busName)
                throw new QemuConfigException(q, "SMMU is not attached to any PCI bus!");
            PciBus bus = _topology!.Bus(busName);
            if (!bus.IsRootBus)
                throw new QemuConfigException(q, "SMMU should be attached to a default PCIe root complex(pcie.0) or a pxb-pcie based root complex");
            if (_smmuOnBus.ContainsKey(bus.Name))
                throw new QemuConfigException(q, "An iommu is already attached to this bus");

            // virt_machine_device_plug_cb: bypass, then the device tree node, then accel's stage.
            if (_topology.Bypasses(bus))
                throw new QemuConfigException(q, "Bypass option cannot be set for SMMUv3 associated PCIe RC");
            if (DeviceTreeBoot)
            {
                if (d.Accel) throw new QemuConfigException(q, "SMMUv3 with accel=on not supported for DT");
                if (bus.Kind != PciBusKind.Root) warnings.Add($"{q}: warning: SMMUv3 device only supported with pcie.0 for DT");
            }
            if (d.Accel && d.Stage != "1")
                throw new QemuConfigException(q, "Only stage1 is supported for SMMUv3 with accel=on");
            _smmuOnBus[bus.Name] = d;
            if (!d.Accel) _resolved[d] = SmmuResolution.ResolveEmulated(d);
        }

        // ------------------------------------------------------------------ endpoints

        /// <summary>The SMMU created before this point whose primary bus is above <paramref name="f"/>.</summary>
        private ArmSmmuV3Device? SmmuAbove(PciFunction f) => _smmuOnBus.GetValueOrDefault(_topology!.Bus(f.Bus).RootBus);

        private void CheckEndpoint(DeviceSpec d, PciFunction f, int index)
        {
            string q = d.Quote();
            // virt_machine_device_pre_plug_cb for virtio-iommu-pci: the legacy SMMU is already the machine's IOMMU.
            if (d.Driver.StartsWith("virtio-iommu", StringComparison.Ordinal) && spec.Machine.HasLegacySmmu)
                throw new QemuConfigException(q, "virt machine does not support multiple IOMMUs");
            ArmSmmuV3Device? smmu = SmmuAbove(f);
            bool bridge = f.SecondaryBus is not null;
            if (smmu is { Accel: true } && !bridge)
            {
                // smmuv3-accel.c: only bridges, pxb-pcie, the GPEX root or vfio-pci with iommufd.
                if (d is VfioPciDevice { Iommufd: null })
                    throw new QemuConfigException(q, "vfio-pci endpoint devices without an iommufd backend not allowed when using arm-smmuv3,accel=on");
                if (d is not VfioPciDevice)
                    throw new QemuConfigException(q, "Emulated endpoint devices are not allowed when using arm-smmuv3,accel=on");
            }
            if (d is VfioPciDevice vfio) CheckVfio(vfio, smmu, f, index);
        }

        private void CheckVfio(VfioPciDevice d, ArmSmmuV3Device? smmu, PciFunction f, int index)
        {
            string q = d.Quote();
            if (d.Iommufd is { } link && spec.FindObject(link) is not IommufdObject)
                throw new QemuConfigException(q, $"Device '{link}' not found");
            // hw/vfio/device.c vfio_device_get_name: a device passed as an fd (no host, no sysfsdev) needs iommufd.
            if (d.Host is null && !d.Extra.Any(p => p.Key == "sysfsdev") && d.Extra.Any(p => p.Key == "fd") && d.Iommufd is null)
                throw new QemuConfigException(q, "Use FD passing only with iommufd backend");
            HostDeviceInfo? info = null;
            if (host is not null && d.Host is not null)
            {
                // hw/vfio/pci.c: the sysfs node must exist.
                info = host.FindDevice(d.Host);
                string sysfsName = HostView.CanonicalAddress(d.Host) ?? d.Host;
                if (info is null)
                    throw new QemuConfigException(q, $"vfio /sys/bus/pci/devices/{sysfsName}: no such host device: No such file or directory");
                if (info.Problem is { } problem)
                    throw new QemuConfigException(q, $"vfio {sysfsName}: {problem}");
                _hostOf[d] = info;
            }

            // Attaching to the container: behind an emulated SMMU the memory listener fails.
            bool translated = SmmuDeviceRegions.TranslatedAtRealize(_topology!, f, index);
            if (translated && smmu is not { Accel: true })
            {
                (string aliasBus, PciDevfn aliasDevfn) = _topology!.DmaAlias(f);
                int region = SmmuDeviceRegions.BeforeRealizeOf(_topology, index).Touch(aliasBus, aliasDevfn);
                byte busNumber = _topology.Numbering(PciNumberingView.Unenumerated).NumberOf(aliasBus);
                throw new QemuConfigException(q, EmulatedSmmuVfio.Refusal(d, info?.IommuGroup, busNumber, aliasDevfn, region));
            }
            if (info is null || host is null || smmu is not { Accel: true }) return;

            string address = HostView.CanonicalAddress(d.Host!) ?? d.Host!;
            string vname = smmu.Name;
            if (VsmmuBindingRules.HasIommu(d.Name, info, vname, host.Description) is { } noIommu)
                throw new QemuConfigException(q, noIommu);
            HostSmmuInfo hostSmmu = host.FindSmmu(info.PhysicalSmmu!)
                ?? throw new QemuConfigException(q, $"{d.Name} (host {address}): {host.Description} lists no SMMU '{info.PhysicalSmmu}'");

            if (!_firstDevice.TryGetValue(smmu, out var first))
            {
                // The first cold-plugged device binds the vSMMU to its physical SMMU and resolves auto.
                ResolvedSmmuProperties r = SmmuResolution.ResolveAccelerated(smmu, hostSmmu);
                if (SmmuResolution.CheckHostCompatibility(r, hostSmmu) is { } incompatible)
                    throw new QemuConfigException(q, incompatible);
                if (VsmmuBindingRules.CmdqvAvailable(smmu, d.Name, info, hostSmmu) is { } noCmdqv)
                    throw new QemuConfigException(q, noCmdqv);
                _firstDevice[smmu] = (d, info);
                _resolved[smmu] = r;
            }
            else
            {
                if (SmmuResolution.CheckHostCompatibility(_resolved[smmu], hostSmmu) is { } incompatible)
                    throw new QemuConfigException(q, incompatible);
                if (VsmmuBindingRules.SamePhysicalSmmu(d.Name, info, vname, first.Device.Name, first.Host) is { } otherSmmu)
                    throw new QemuConfigException(q, otherSmmu);
            }

            bool grouped = _groupOwner.TryGetValue(info.IommuGroup, out var owner);
            if (VsmmuBindingRules.GroupNotSplit(d.Name, info, vname, grouped ? owner.Device.Name : null, grouped ? owner.Vsmmu : null) is { } split)
                throw new QemuConfigException(q, split);
            _groupOwner.TryAdd(info.IommuGroup, (d, vname));
        }

        private void MachineDone()
        {
            // smmuv3-accel.c machine-done notifier: auto needs a cold-plugged device to resolve from.
            foreach (ArmSmmuV3Device smmu in _smmuOnBus.Values.Where(s => s.Accel))
            {
                bool hasDevice = _topology!.Functions.Any(f => f.Device is VfioPciDevice && SmmuAbove(f) == smmu);
                if (hasDevice) continue;
                bool anyAuto = smmu.Ats == OnOffAuto.Auto || smmu.Ril == OnOffAuto.Auto || smmu.SsidSize.IsAuto || smmu.Oas.IsAuto;
                if (anyAuto)
                    throw new QemuConfigException(null, "arm-smmuv3 accel=on with 'auto' properties requires at least one cold-plugged VFIO device");
                if (smmu.Cmdqv == OnOffAuto.On)
                    throw new QemuConfigException(null, "arm-smmuv3 cmdqv=on requires at least one cold-plugged VFIO device");
            }
        }

        private MachineCheck Result(QemuConfigException? error)
        {
            var vsmmus = new List<VsmmuCheck>();
            var devices = new List<DeviceCheck>();
            if (_topology is { } t)
            {
                PciBusNumbering fw = t.Numbering(PciNumberingView.FirmwareEnumerated);
                if (spec.Machine.HasLegacySmmu)
                {
                    // virt.c create_smmu: QEMU's emulated SMMUv3 with its defaults (stage 1, accel=off).
                    var legacy = new ArmSmmuV3Device { Text = "", Driver = "arm-smmuv3" };
                    vsmmus.Add(new VsmmuCheck(PciIommuOwner.LegacyName, null, PciBus.DefaultRootName,
                        fw.RangeOf(PciBus.DefaultRootName), SmmuResolution.ResolveEmulated(legacy)));
                }
                foreach ((string bus, ArmSmmuV3Device smmu) in _smmuOnBus)
                    vsmmus.Add(new VsmmuCheck(smmu.Name, smmu, bus, fw.RangeOf(bus), _resolved.GetValueOrDefault(smmu)));
                foreach (PciFunction f in t.Functions)
                {
                    ArmSmmuV3Device? smmu = SmmuAbove(f);
                    string? vsmmuName = smmu?.Name ?? (t.OwnerOf(f) is { IsLegacy: true } o ? o.Name : null);
                    HostDeviceInfo? h = f.Device is VfioPciDevice v ? _hostOf.GetValueOrDefault(v) : null;
                    bool? ats = f.Device is VfioPciDevice vd && h is not null ? SmmuResolution.DeviceAtsExposed(vd, h) : null;
                    devices.Add(new DeviceCheck(f.Device.Name, f.Device, f.Bus, f.Devfn, fw.RequesterIdOf(f).Value, vsmmuName,
                        h?.Address, h?.PhysicalSmmu, ats));
                }
            }
            return new MachineCheck(spec, _topology, vsmmus, devices, warnings, error);
        }
    }
}
