namespace NestedSmmu.Vmm.Config;

/// <summary>Turns each option into its typed record, in order (the parsing half of <see cref="QemuCommandLine"/>).</summary>
internal sealed class SpecBuilder
{
    /// <summary>Options this model types.</summary>
    public static readonly IReadOnlySet<string> Modelled = new HashSet<string>(StringComparer.Ordinal)
    {
        "machine", "accel", "cpu", "smp", "m", "object", "numa", "device",
    };

    /// <summary>OasMode's words (qapi/misc-arm.json as QEMU 11.1 lists them).</summary>
    private static readonly int[] OasWords = [32, 36, 40, 42, 44, 48, 52, 56];

    /// <summary>SsidSizeMode's words: 0..20.</summary>
    private static readonly int[] SsidSizeWords = [.. Enumerable.Range(0, 21)];

    // Properties every qdev device takes (hw/core/qdev.c, qdev-monitor.c) beyond its own.
    private static readonly string[] CommonDeviceKeys = ["driver", "id", "bus", "failover_pair_id"];
    private static readonly string[] PciDeviceKeys = ["addr", "acpi-index", "busnr", "multifunction", "rombar", "romfile", "romsize",
        "sriov-pf", "x-max-bounce-buffer-size", "x-pcie-ari-nextfn-1", "x-pcie-err-unc-mask", "x-pcie-ext-tag", "x-pcie-lnksta-dllla"];

    // Property lists from QEMU 11.1's "-device X,help".
    private static readonly HashSet<string> ArmSmmuV3Keys = Keys(CommonDeviceKeys, ["primary-bus", "stage", "identifier", "accel",
        "msi-gpa", "ril", "ats", "oas", "ssidsize", "cmdqv", "bus_num", "memory", "secure-memory", "smmu_per_bus"]);
    private static readonly HashSet<string> PxbKeys = Keys(CommonDeviceKeys, PciDeviceKeys, ["bus_nr", "numa_node", "bypass_iommu"]);
    private static readonly HashSet<string> RootPortKeys = Keys(CommonDeviceKeys, PciDeviceKeys, ["aer_log_max", "bus-reserve",
        "chassis", "hotplug", "io-reserve", "mem-reserve", "port", "power_controller_present", "pref32-reserve", "pref64-reserve",
        "slot", "x-do-not-expose-native-hotplug-cap", "x-pci-express-writeable-slt-bug", "x-speed", "x-width"]);
    private static readonly HashSet<string> VfioKeys = Keys(CommonDeviceKeys, PciDeviceKeys, ["ats", "bootindex", "display",
        "enable-migration", "fd", "host", "iommufd", "migration-events", "ramfb", "skip-vsc-check", "sysfsdev",
        "use-legacy-x86-rom", "vf-token", "x-balloon-allowed", "x-device-dirty-page-tracking", "x-igd-gms", "x-igd-legacy-mode",
        "x-igd-lpc", "x-igd-opregion", "x-intx-mmap-timeout-ms", "x-migration-load-config-after-iter",
        "x-migration-max-queued-buffers-size", "x-migration-multifd-transfer", "x-msix-relocation", "x-no-geforce-quirks",
        "x-no-kvm-intx", "x-no-kvm-ioeventfd", "x-no-kvm-msi", "x-no-kvm-msix", "x-no-mmap", "x-no-vfio-ioeventfd",
        "x-nv-gpudirect-clique", "x-pci-class-code", "x-pci-device-id", "x-pci-sub-device-id", "x-pci-sub-vendor-id",
        "x-pci-vendor-id", "x-pre-copy-dirty-page-tracking", "x-ramfb-migrate", "x-req", "x-vga", "x-vpasid-cap-offset",
        "xres", "yres"]);
    private static readonly HashSet<string> IommufdKeys = Keys(["qom-type", "id", "fd"]);
    private static readonly HashSet<string> GenericInitiatorKeys = Keys(["qom-type", "id", "pci-dev", "node"]);

    private static HashSet<string> Keys(params string[][] lists) => new(lists.SelectMany(l => l), StringComparer.Ordinal);

    private readonly List<string> _warnings;
    private MachineOptions? _machine;
    private readonly List<AccelSpec> _accels = [];
    private CpuSpec? _cpu;
    private SmpSpec? _smp;
    private MemorySpec? _memory;
    private readonly List<ObjectSpec> _objects = [];
    private readonly List<NumaSpec> _numa = [];
    private readonly List<DeviceSpec> _devices = [];
    private readonly List<UnmodelledOption> _unmodelled = [];

    public SpecBuilder(List<string> warnings) => _warnings = warnings;

    public void Flag(string name, int position) =>
        _unmodelled.Add(new UnmodelledOption { Name = name, Text = "", Position = position });

    public void Option(string name, string text, int position)
    {
        string quote = $"-{name} {text}";
        switch (name)
        {
            case "machine": Machine(text, quote, position); break;
            case "accel": _accels.Add(Accel(text, quote, position)); break;
            case "cpu": _cpu = Cpu(text, quote, position); break;
            case "smp": _smp = Smp(text, quote, position); break;
            case "m": _memory = Memory(text, quote, position); break;
            case "object": _objects.Add(Object(text, quote, position)); break;
            case "numa": _numa.Add(Numa(text, quote, position)); break;
            case "device": _devices.Add(Device(text, quote, position)); break;
            default: _unmodelled.Add(new UnmodelledOption { Name = name, Text = text, Position = position }); break;
        }
    }

    public MachineSpec Build() => new()
    {
        Machine = _machine ?? new MachineOptions { Text = MachineOptions.DefaultType, Position = -1 },
        Accels = _accels, Cpu = _cpu, Smp = _smp, Memory = _memory,
        Objects = _objects, Numa = _numa, Devices = _devices, Unmodelled = _unmodelled,
    };

    private PropertyReader Reader(string text, string? impliedKey, string quote) =>
        new(quote, QemuOpts.Split(text, impliedKey, _warnings, quote));

    private void Machine(string text, string quote, int position)
    {
        // Several -machine options merge into one (vl.c keeps one "machine" QemuOpts).
        string merged = _machine is null ? text : _machine.Text + "," + text;
        int pos = _machine?.Position ?? position;
        PropertyReader r = Reader(merged, "type", quote);
        string type = r.String("type") ?? MachineOptions.DefaultType;
        if (type != MachineOptions.DefaultType && !type.StartsWith("virt-", StringComparison.Ordinal))
            throw r.Error($"unsupported machine type '{type}': this model builds the arm virt board only (-machine virt)");
        string? iommu = r.String("iommu");
        if (iommu is not null and not "smmuv3" and not "none")
            throw new QemuConfigException(null, "Invalid iommu value\nValid values are none, smmuv3."); // virt.c virt_set_iommu
        _machine = new MachineOptions
        {
            Text = merged, Position = pos, Type = type,
            Accel = r.String("accel"),
            GicVersion = r.String("gic-version"),
            Its = r.Bool("its", true),
            Iommu = iommu,
            HighmemMmioSize = r.Size("highmem-mmio-size"),
            Ras = r.Bool("ras", false),
            DefaultBusBypassIommu = r.Bool("default-bus-bypass-iommu", false),
            Acpi = r.OnOffAuto("acpi", OnOffAuto.Auto),
            Given = r.GivenKeys,
            Extra = r.RemainingAsExtra(),
        };
    }

    private AccelSpec Accel(string text, string quote, int position)
    {
        PropertyReader r = Reader(text, "accel", quote);
        return new AccelSpec
        {
            Text = text, Position = position,
            Type = r.String("accel") ?? throw r.Error("Parameter 'accel' is missing"),
            KernelIrqchip = r.String("kernel-irqchip"),
            Given = r.GivenKeys, Extra = r.RemainingAsExtra(),
        };
    }

    private static CpuSpec Cpu(string text, string quote, int position)
    {
        // -cpu is "model[,feature=value...]" (target/arm cpu model parsing, not QemuOpts).
        string[] parts = text.Split(',', 2);
        var features = parts.Length > 1
            ? QemuOpts.Split(parts[1], null, [], quote)
            : [];
        return new CpuSpec
        {
            Text = text, Position = position, Model = parts[0],
            Given = [.. features.Select(f => f.Key)], Extra = features,
        };
    }

    private SmpSpec Smp(string text, string quote, int position)
    {
        PropertyReader r = Reader(text, "cpus", quote);
        return new SmpSpec
        {
            Text = text, Position = position,
            Cpus = (uint?)r.Unsigned("cpus", 32), MaxCpus = (uint?)r.Unsigned("maxcpus", 32),
            Sockets = (uint?)r.Unsigned("sockets", 32), Clusters = (uint?)r.Unsigned("clusters", 32),
            Cores = (uint?)r.Unsigned("cores", 32), Threads = (uint?)r.Unsigned("threads", 32),
            Given = r.GivenKeys, Extra = r.RemainingAsExtra(),
        };
    }

    private MemorySpec Memory(string text, string quote, int position)
    {
        PropertyReader r = Reader(text, "size", quote);
        // hw/core/machine.c / vl.c parse_memory_options: a bare number is MiB.
        const ulong MiB = 1UL << 20;
        return new MemorySpec
        {
            Text = text, Position = position,
            Size = r.Size("size", MiB) ?? 0, Slots = r.Unsigned("slots", 64), MaxMem = r.Size("maxmem", MiB),
            Given = r.GivenKeys, Extra = r.RemainingAsExtra(),
        };
    }

    private NumaSpec Numa(string text, string quote, int position)
    {
        PropertyReader r = Reader(text, "type", quote);
        return new NumaSpec
        {
            Text = text, Position = position,
            Type = r.String("type") ?? "node",
            NodeId = (uint?)r.Unsigned("nodeid", 16),
            MemDev = r.String("memdev"),
            Cpus = r.All("cpus"),
            Given = r.GivenKeys, Extra = r.RemainingAsExtra(),
        };
    }

    private ObjectSpec Object(string text, string quote, int position)
    {
        PropertyReader r = Reader(text, "qom-type", quote);
        string type = r.String("qom-type") ?? throw r.Error("Parameter 'qom-type' is missing");
        string id = r.String("id") ?? throw r.Error("Parameter 'id' is missing");
        switch (type)
        {
            case "iommufd":
                return new IommufdObject
                {
                    Text = text, Position = position, QomType = type, Id = id, Fd = r.String("fd"),
                    Given = r.GivenKeys, Extra = r.RefuseUnknown(type, IommufdKeys),
                };
            case "acpi-generic-initiator":
                return new AcpiGenericInitiatorObject
                {
                    Text = text, Position = position, QomType = type, Id = id,
                    PciDev = r.String("pci-dev") ?? "",
                    Node = (uint)(r.Unsigned("node", 32) ?? 0),
                    Given = r.GivenKeys, Extra = r.RefuseUnknown(type, GenericInitiatorKeys),
                };
            case "memory-backend-ram" or "memory-backend-file" or "memory-backend-memfd":
                return new MemoryBackendObject
                {
                    Text = text, Position = position, QomType = type, Id = id,
                    Size = r.Size("size") ?? 0,
                    Share = r.Bool("share", type == "memory-backend-memfd"),
                    MemPath = r.String("mem-path"),
                    Hugetlb = r.Bool("hugetlb", false),
                    HugetlbSize = r.Size("hugetlbsize"),
                    Prealloc = r.Bool("prealloc", false),
                    Given = r.GivenKeys, Extra = r.RemainingAsExtra(),
                };
            default:
                return new OtherObject
                {
                    Text = text, Position = position, QomType = type, Id = id, Given = r.GivenKeys, Extra = r.RemainingAsExtra(),
                };
        }
    }

    private DeviceSpec Device(string text, string quote, int position)
    {
        PropertyReader r = Reader(text, "driver", quote);
        string driver = r.String("driver") ?? throw r.Error("Parameter 'driver' is missing");
        string? id = r.String("id");
        string? bus = r.String("bus");
        switch (driver)
        {
            case "arm-smmuv3":
                return new ArmSmmuV3Device
                {
                    Text = text, Position = position, Driver = driver, Id = id, Bus = bus,
                    PrimaryBus = r.String("primary-bus"),
                    Stage = r.String("stage") ?? "1",
                    Identifier = (byte)(r.Unsigned("identifier", 8) ?? 0),
                    Accel = r.Bool("accel", false),
                    MsiGpa = r.Unsigned("msi-gpa", 64) ?? 0,
                    Ril = r.OnOffAuto("ril", OnOffAuto.Auto),
                    Ats = r.OnOffAuto("ats", OnOffAuto.Auto),
                    Oas = r.AutoBits("oas", OasWords),
                    SsidSize = r.AutoBits("ssidsize", SsidSizeWords),
                    Cmdqv = r.OnOffAuto("cmdqv", OnOffAuto.Auto),
                    Given = r.GivenKeys, Extra = r.RefuseUnknown(driver, ArmSmmuV3Keys),
                };
            case "pxb-pcie":
                return new PxbPcieDevice
                {
                    Text = text, Position = position, Driver = driver, Id = id, Bus = bus, Addr = r.Devfn(driver),
                    BusNr = (byte)(r.Unsigned("bus_nr", 8) ?? 0),
                    NumaNode = (ushort?)r.Unsigned("numa_node", 16),
                    BypassIommu = r.Bool("bypass_iommu", false),
                    Given = r.GivenKeys, Extra = r.RefuseUnknown(driver, PxbKeys),
                };
            case "pcie-root-port":
                return new PcieRootPortDevice
                {
                    Text = text, Position = position, Driver = driver, Id = id, Bus = bus, Addr = r.Devfn(driver),
                    Chassis = (byte)(r.Unsigned("chassis", 8) ?? 0),
                    Slot = (ushort)(r.Unsigned("slot", 16) ?? 0),
                    Given = r.GivenKeys, Extra = r.RefuseUnknown(driver, RootPortKeys),
                };
            case VfioPciDevice.HotplugDriver or VfioPciDevice.NoHotplugDriver:
                if (!r.Has("host") && !r.Has("sysfsdev") && !r.Has("fd"))
                    throw r.Error($"No provided host device\nUse -device {driver},host=DDDD:BB:DD.F or -device {driver},fd=DEVICE_FD " +
                        $"or -device {driver},sysfsdev=PATH_TO_DEVICE");
                return new VfioPciDevice
                {
                    Text = text, Position = position, Driver = driver, Id = id, Bus = bus, Addr = r.Devfn(driver),
                    Host = r.String("host"),
                    Iommufd = r.String("iommufd"),
                    Ats = r.OnOffAuto("ats", OnOffAuto.Auto),
                    RomBar = r.Int32("rombar") ?? -1,
                    Given = r.GivenKeys, Extra = r.RefuseUnknown(driver, VfioKeys),
                };
            default:
                return new OtherDevice
                {
                    Text = text, Position = position, Driver = driver, Id = id, Bus = bus, Addr = r.Devfn(driver),
                    Given = r.GivenKeys, Extra = r.RemainingAsExtra(),
                };
        }
    }
}
