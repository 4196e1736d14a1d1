using NestedSmmu.Hardware.Pci;
using NestedSmmu.Iommufd;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Vmm.Machine;

public sealed partial class Vm
{
    /// <summary>QEMU's QERR_DEVICE_NO_HOTPLUG (include/qapi/qmp/qerror.h), for device_add/device_del of a non-hotpluggable device.</summary>
    public static string NoHotplugMessage(string driver) => $"Device '{driver}' does not support hotplugging";

    // The device being plugged while its vSMMU's attach runs (the CMDQV hook names the vIOMMU's creator).
    private VmDevice? _plugging;

    /// <summary>
    /// Plugs a PCI function (QEMU's device realize and the vSMMU's set_iommu_device): a vfio device
    /// is bound to the iommufd by its host BDF and attached to its vSMMU at vSID = requester ID
    /// (the first one binds the vSMMU: vIOMMU, and with cmdqv the guest CMDQV); an emulated
    /// endpoint behind an emulated vSMMU gets a DMA port through that vSMMU's model.
    /// </summary>
    private VmDevice? Plug(DeviceCheck d, bool hotPlugged, PciTopology? topology = null)
    {
        topology ??= Check.Topology!;
        if (topology.FunctionOf(d.Device) is not { SecondaryBus: null }) return null; // bridges and expanders carry no DMA of their own
        VmVsmmu? v = d.Vsmmu is null ? null : _vsmmus.First(x => x.Name == d.Vsmmu);
        HostDeviceInfo? h = d.HostAddress is null ? null : _host.FindDevice(d.HostAddress);
        VmDeviceKind kind = (d.Device, v?.Device) switch
        {
            (VfioPciDevice, AcceleratedVSmmu) => VmDeviceKind.Vfio,
            (VfioPciDevice, null) => VmDeviceKind.VfioUntranslated,
            // Validation and HotPlug refuse VFIO behind an emulated vIOMMU as QEMU does (EmulatedSmmuVfio); it gets
            // here only when the SMMU came after it on the command line: QEMU then gave it system memory for DMA
            // while the firmware tables put it behind the SMMU, which this model does not run.
            (VfioPciDevice, EmulatedVSmmu) => VmDeviceKind.NotRun,
            (_, EmulatedVSmmu) => VmDeviceKind.Emulated,
            _ => VmDeviceKind.NotRun,
        };
        if (kind is VmDeviceKind.Vfio or VmDeviceKind.VfioUntranslated && h is null) kind = VmDeviceKind.NotRun;
        var dev = new VmDevice(d.Name, d.Device, kind, d.Bus, d.StreamId, v, h, hotPlugged, _options.PassthroughDma);
        switch (kind)
        {
            case VmDeviceKind.Vfio:
                AttachVfio(dev, v!, (AcceleratedVSmmu)v!.Device, h!);
                break;
            case VmDeviceKind.VfioUntranslated:
            {
                DeviceId id = Iommufd.BindDevice(h!.Address);
                dev.IommufdDevice = id;
                try
                {
                    Iommufd.AttachDevice(id, Ram.Ioas);
                }
                catch
                {
                    Iommufd.UnbindDevice(id);
                    throw;
                }
                break;
            }
            case VmDeviceKind.Emulated:
                dev.Endpoint = ((EmulatedVSmmu)v!.Device).CreateEndpoint(d.Name, new RequesterId(d.StreamId), dev.Vsid);
                break;
        }
        _devices.Add(dev);
        v?.Devices.Add(dev);
        Trace($"{(hotPlugged ? "hot-plug" : "plug")}: {dev}{(h is null ? "" : $", host {h.Address} behind {h.PhysicalSmmu ?? "no IOMMU"}")}");
        return dev;
    }

    private void AttachVfio(VmDevice dev, VmVsmmu v, AcceleratedVSmmu accel, HostDeviceInfo h)
    {
        DeviceId id = Iommufd.BindDevice(h.Address);
        dev.IommufdDevice = id;
        _plugging = dev;
        try
        {
            accel.AttachDevice(id, dev.Vsid);
        }
        catch
        {
            Iommufd.UnbindDevice(id);
            throw;
        }
        finally
        {
            _plugging = null;
        }
        if (v.CmdqvFailure is { } failure)
        {
            // The guest CMDQV could not be built on the new vIOMMU: undo the attach (which frees the vIOMMU).
            v.CmdqvFailure = null;
            accel.DetachDevice(dev.Vsid);
            Iommufd.UnbindDevice(id);
            throw failure;
        }
        v.BoundBy ??= (dev.Name, h);
    }

    /// <summary>
    /// device_add after boot: <paramref name="deviceOptions"/> is what follows <c>-device</c>
    /// (<c>vfio-pci,host=0009:01:00.0,bus=pcie.port2,id=dev9,iommufd=iommufd0</c>). The device is
    /// placed as QEMU places it; behind an accel vSMMU it must keep that vSMMU's physical SMMU and
    /// resolved properties, not split an IOMMU group, and have a CMDQV where cmdqv is on; behind an
    /// emulated vSMMU it is refused as QEMU refuses it (<see cref="EmulatedSmmuVfio"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">The guest has not booted yet.</exception>
    /// <exception cref="QemuConfigException">Refused; the message says why (QEMU's words where QEMU has them).</exception>
    /// <exception cref="IommufdException">The kernel refused the bind or attach; nothing is left behind.</exception>
    public VmDevice HotPlug(string deviceOptions)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!Booted) throw new InvalidOperationException("Hot-plug is for a running guest: call Boot first (cold-plugged devices come from the command line).");
        DeviceSpec one = QemuCommandLine.Parse(["-device", deviceOptions]).Devices.Single();
        string q = one.Quote();
        if (one is VfioPciDevice { Driver: VfioPciDevice.NoHotplugDriver })
            throw new QemuConfigException(q, NoHotplugMessage(one.Driver));
        if (one is not VfioPciDevice vfio)
            throw new QemuConfigException(q, $"hot-plug of '{one.Driver}' is not modelled: only vfio-pci devices are hot-plugged");
        if (one.Id is { } id && _spec.FindDevice(id) is not null)
            throw new QemuConfigException(q, $"Duplicate device ID '{id}'");
        if (vfio.Iommufd is { } link && _spec.FindObject(link) is not IommufdObject)
            throw new QemuConfigException(q, $"Device '{link}' not found");
        MachineSpec next = _spec with { Devices = [.. _spec.Devices, one] };
        PciTopology topology = PciTopology.Build(next); // QEMU's placement errors (bus, slot)
        PciFunction f = topology.FunctionOf(one)!;
        ushort rid = topology.Numbering(PciNumberingView.FirmwareEnumerated).RequesterIdOf(f).Value;
        PciIommuOwner? owner = topology.OwnerOf(f);
        VmVsmmu? v = owner is null ? null : _vsmmus.FirstOrDefault(x => x.Name == owner.Name);
        // Registering the function gives it its SMMU device region (hw/pci/pci.c do_pci_register_device), before vfio's realize.
        (string aliasBus, PciDevfn aliasDevfn) = topology.DmaAlias(f);
        int region = owner is null ? -1 : _smmuRegions.Touch(aliasBus, aliasDevfn);

        HostDeviceInfo? h = null;
        if (vfio.Host is { } address)
        {
            string canonical = HostView.CanonicalAddress(address) ?? address;
            h = _host.FindDevice(address)
                ?? throw new QemuConfigException(q, $"vfio /sys/bus/pci/devices/{canonical}: no such host device: No such file or directory");
            if (h.Problem is { } problem) throw new QemuConfigException(q, $"vfio {canonical}: {problem}");
            if (_devices.FirstOrDefault(d => d.Host?.Address == h.Address) is { } holder)
                throw new QemuConfigException(q, $"vfio {canonical}: host device is already assigned to {holder.Name}");
            if (v?.Device is AcceleratedVSmmu) CheckHotPlugBinding(q, vfio, h, v);
        }
        if (v?.Device is EmulatedVSmmu)
        {
            // The guest's firmware has numbered the buses by now: QEMU reads the bridge's register.
            byte busNumber = topology.Numbering(PciNumberingView.FirmwareEnumerated).NumberOf(aliasBus);
            throw new QemuConfigException(q, EmulatedSmmuVfio.Refusal(vfio, h?.IommuGroup, busNumber, aliasDevfn, region));
        }
        var check = new DeviceCheck(one.Name, one, f.Bus, f.Devfn, rid, v?.Name, h?.Address, h?.PhysicalSmmu,
            h is null ? null : SmmuResolution.DeviceAtsExposed(vfio, h));
        VmDevice dev = Plug(check, hotPlugged: true, topology)!;
        _spec = next;
        return dev;
    }

    /// <summary>The binding rules for a device hot-plugged under an accel vSMMU (validation ran them for cold-plugged ones).</summary>
    private void CheckHotPlugBinding(string q, VfioPciDevice vfio, HostDeviceInfo h, VmVsmmu v)
    {
        if (VsmmuBindingRules.HasIommu(vfio.Name, h, v.Name, _host.Description) is { } noIommu)
            throw new QemuConfigException(q, noIommu);
        HostSmmuInfo physical = _host.FindSmmu(h.PhysicalSmmu!)
            ?? throw new QemuConfigException(q, $"{vfio.Name} (host {h.Address}): {_host.Description} lists no SMMU '{h.PhysicalSmmu}'");
        if (v.BoundBy is { } bound && VsmmuBindingRules.SamePhysicalSmmu(vfio.Name, h, v.Name, bound.Device, bound.Host) is { } otherSmmu)
            throw new QemuConfigException(q, otherSmmu);
        if (v.BoundBy is null && v.Resolved?.PhysicalSmmu is { } resolvedOn && resolvedOn != h.PhysicalSmmu)
            throw new QemuConfigException(q, $"{vfio.Name} (host {h.Address}) is behind physical SMMU {h.PhysicalSmmu}, but vSMMU {v.Name} " +
                                             $"was resolved on physical SMMU {resolvedOn}: one vSMMU nests devices of one physical SMMU only");
        ResolvedSmmuProperties fresh = SmmuResolution.ResolveAccelerated(v.Check.Device!, physical);
        ResolvedSmmuProperties current = v.Resolved ?? fresh;
        if (SmmuResolution.CheckHostCompatibility(current, physical) is { } incompatible)
            throw new QemuConfigException(q, incompatible);
        if (VsmmuBindingRules.CmdqvAvailable(v.Check.Device!, vfio.Name, h, physical) is { } noCmdqv)
            throw new QemuConfigException(q, noCmdqv);
        // What the guest already probed must stay: the IDRs it read and whether a CMDQV is there.
        VSmmuProperties shown = v.Device.Properties;
        var changes = new List<string>();
        if (fresh.Ats != shown.Ats) changes.Add($"ats {OnOff(shown.Ats)} -> {OnOff(fresh.Ats)}");
        if (fresh.Ril != shown.Ril) changes.Add($"ril {OnOff(shown.Ril)} -> {OnOff(fresh.Ril)}");
        if (fresh.SsidSize != shown.SsidSize) changes.Add($"ssidsize {shown.SsidSize} -> {fresh.SsidSize}");
        if (fresh.OasBits != shown.OasBits) changes.Add($"oas {shown.OasBits} -> {fresh.OasBits}");
        if (fresh.Cmdqv != shown.Cmdqv) changes.Add($"cmdqv {OnOff(shown.Cmdqv)} -> {OnOff(fresh.Cmdqv)}");
        if (changes.Count > 0)
            throw new QemuConfigException(q, $"{vfio.Name} (host {h.Address}, physical SMMU {h.PhysicalSmmu}) would change the properties vSMMU {v.Name} " +
                                             $"showed the running guest ({string.Join(", ", changes)}): a hot-plugged device must keep them");
        VmDevice? mate = _devices.FirstOrDefault(d => d.Host is { } dh && dh.IommuGroup == h.IommuGroup);
        if (VsmmuBindingRules.GroupNotSplit(vfio.Name, h, v.Name, mate?.Name, mate?.Vsmmu?.Name) is { } split)
            throw new QemuConfigException(q, split);
        v.Resolved ??= fresh;
    }

    private static string OnOff(bool on) => on ? "on" : "off";

    /// <summary>
    /// device_del: a vfio device leaves its vSMMU (its nested HWPT and vDEVICE freed; the last one
    /// also frees the vIOMMU and with it the guest CMDQV) and is unbound. Refused by the CMDQV
    /// unplug policy, or for vfio-pci-nohotplug.
    /// </summary>
    /// <exception cref="ArgumentException">No such device.</exception>
    /// <exception cref="InvalidOperationException">Refused; the message says why.</exception>
    public void Unplug(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        VmDevice dev = Device(name) ?? throw new ArgumentException($"Device '{name}' not found", nameof(name));
        if (dev.Spec is VfioPciDevice { Driver: VfioPciDevice.NoHotplugDriver })
            throw new InvalidOperationException(NoHotplugMessage(dev.Spec.Driver));
        if (dev.Vsmmu?.Cmdqv is { } cmdqv && dev.Kind == VmDeviceKind.Vfio)
        {
            int onViommu = dev.Vsmmu.Devices.Count(d => d.Kind == VmDeviceKind.Vfio);
            if (cmdqv.CheckUnplug(dev.Name, onViommu) is { } refusal) throw new InvalidOperationException(refusal);
        }
        Release(dev);
        _devices.Remove(dev);
        dev.Vsmmu?.Devices.Remove(dev);
        _spec = _spec with { Devices = [.. _spec.Devices.Where(d => !ReferenceEquals(d, dev.Spec))] };
        Trace($"unplug: {dev}");
    }

    /// <summary>Takes a device off its vSMMU and the iommufd; kernel errors are traced (teardown goes on).</summary>
    private void Release(VmDevice dev)
    {
        try
        {
            if (dev.Kind == VmDeviceKind.Vfio && dev.Vsmmu?.Device is AcceleratedVSmmu accel) accel.DetachDevice(dev.Vsid);
            if (dev.IommufdDevice is { } id)
            {
                if (dev.Kind == VmDeviceKind.VfioUntranslated) Iommufd.DetachDevice(id);
                Iommufd.UnbindDevice(id);
            }
        }
        catch (IommufdException e)
        {
            Trace($"teardown: {dev.Name}: {e.Message}");
        }
        dev.IommufdDevice = null;
    }
}
