using System.Text.Json.Serialization;

namespace NestedSmmu.Vmm.Config;

/// <summary>
/// A virt machine as the user described it: what QEMU's command line (or its JSON form) says,
/// parsed and typed, and nothing else (VMM.md "Parse"). Plain immutable records: the machine
/// options, accelerators, CPU, SMP, memory, objects (iommufd, memory backends, ACPI generic
/// initiators), NUMA nodes and devices in command-line order, each with its given and its
/// defaulted typed properties, and the options kept but not modelled.
/// </summary>
/// <remarks>
/// Build one with <see cref="QemuCommandLine.Parse(IReadOnlyList{string})"/> or
/// <see cref="MachineSpecJson.Read(string)"/>; check it with the validator.
/// Every option record keeps its <see cref="OptionRecord.Text"/> as written and its
/// <see cref="OptionRecord.Position"/> on the command line, so <see cref="QemuCommandLine.Format"/>
/// gives back an equivalent command line and messages quote the option as QEMU does.
/// </remarks>
public sealed record MachineSpec
{
    /// <summary><c>-machine</c> (all of them merged, as QemuOpts merges <c>-machine</c>).</summary>
    public MachineOptions Machine { get; init; } = new() { Text = MachineOptions.DefaultType };

    /// <summary>Every <c>-accel</c>, in order.</summary>
    public IReadOnlyList<AccelSpec> Accels { get; init; } = [];

    /// <summary><c>-cpu</c>, or null for the board's default.</summary>
    public CpuSpec? Cpu { get; init; }

    /// <summary><c>-smp</c>, or null for one CPU.</summary>
    public SmpSpec? Smp { get; init; }

    /// <summary><c>-m</c>, or null for the board's default RAM.</summary>
    public MemorySpec? Memory { get; init; }

    /// <summary>Every <c>-object</c>, in order.</summary>
    public IReadOnlyList<ObjectSpec> Objects { get; init; } = [];

    /// <summary>Every <c>-numa</c>, in order.</summary>
    public IReadOnlyList<NumaSpec> Numa { get; init; } = [];

    /// <summary>Every <c>-device</c>, in command-line order (QEMU creates them in this order).</summary>
    public IReadOnlyList<DeviceSpec> Devices { get; init; } = [];

    /// <summary>Options kept as written but not modelled (<c>-bios</c>, <c>-drive</c>, <c>-netdev</c>, <c>-nographic</c>, ...).</summary>
    public IReadOnlyList<UnmodelledOption> Unmodelled { get; init; } = [];

    /// <summary>
    /// True when KVM is the accelerator QEMU would use (what arm-smmuv3 accel=on needs): the
    /// first <c>-accel</c>, else the first of <c>-machine accel=a:b</c>, is <c>kvm</c>, or
    /// <c>-enable-kvm</c> is given. QEMU takes the first accelerator that initialises, so
    /// <c>-accel qtest -accel kvm</c> runs qtest. On the emulated host, KVM means the emulated vCPU side.
    /// </summary>
    [JsonIgnore]
    public bool KvmRequested =>
        Unmodelled.Any(u => u.Name == "enable-kvm")
        || (Accels.Count > 0 ? Accels[0].Type == "kvm" : Machine.Accel?.Split(':')[0] == "kvm");

    /// <summary>The arm-smmuv3 devices in creation order.</summary>
    [JsonIgnore]
    public IEnumerable<ArmSmmuV3Device> Smmus => Devices.OfType<ArmSmmuV3Device>();

    /// <summary>The vfio-pci and vfio-pci-nohotplug devices in creation order.</summary>
    [JsonIgnore]
    public IEnumerable<VfioPciDevice> VfioDevices => Devices.OfType<VfioPciDevice>();

    /// <summary>The device with <c>id=</c><paramref name="id"/>, or null.</summary>
    public DeviceSpec? FindDevice(string id) => Devices.FirstOrDefault(d => d.Id == id);

    /// <summary>The object with <c>id=</c><paramref name="id"/>, or null.</summary>
    public ObjectSpec? FindObject(string id) => Objects.FirstOrDefault(o => o.Id == id);

    /// <summary>Every option record in command-line order (by <see cref="OptionRecord.Position"/>).</summary>
    public IEnumerable<OptionRecord> AllOptions()
    {
        IEnumerable<OptionRecord> all = [Machine, .. Accels];
        if (Cpu is not null) all = all.Append(Cpu);
        if (Smp is not null) all = all.Append(Smp);
        if (Memory is not null) all = all.Append(Memory);
        return all.Concat(Objects).Concat(Numa).Concat(Devices).Concat(Unmodelled).OrderBy(o => o.Position);
    }
}

/// <summary>
/// What every option record has: its option name, its argument as written, where it stood on
/// the command line, the keys the user gave (in order) and the given properties this model
/// keeps but does not interpret.
/// </summary>
public abstract record OptionRecord
{
    /// <summary>The option without its dash: <c>device</c>, <c>object</c>, <c>machine</c>, ...</summary>
    [JsonIgnore]
    public abstract string Option { get; }

    /// <summary>The option's argument exactly as written (QemuOpts syntax), or empty for a flag.</summary>
    public required string Text { get; init; }

    /// <summary>Index of the option on the command line (0 = first option after the program name).</summary>
    public int Position { get; init; }

    /// <summary>The property keys the user gave, in order (defaulted properties are absent).</summary>
    public IReadOnlyList<string> Given { get; init; } = [];

    /// <summary>Given properties kept as written but not modelled (e.g. pcie-root-port's <c>io-reserve</c>).</summary>
    public IReadOnlyList<OptionProperty> Extra { get; init; } = [];

    /// <summary>True when the user gave <paramref name="key"/> (rather than it taking its default).</summary>
    public bool IsGiven(string key) => Given.Contains(key);

    /// <summary>The option as QEMU quotes it in messages: <c>-device arm-smmuv3,accel=on</c>.</summary>
    public string Quote() => Text.Length == 0 ? $"-{Option}" : $"-{Option} {Text}";
}

/// <summary><c>-machine</c>: the virt board's options that concern the IOMMU system.</summary>
public sealed record MachineOptions : OptionRecord
{
    /// <summary>The board this model builds.</summary>
    public const string DefaultType = "virt";

    /// <inheritdoc/>
    public override string Option => "machine";

    /// <summary><c>type</c> (the implied first key): <c>virt</c> or a versioned <c>virt-11.1</c>.</summary>
    public string Type { get; init; } = DefaultType;

    /// <summary><c>accel</c>: accelerators to try, colon separated (<c>kvm</c>, <c>kvm:tcg</c>), or null.</summary>
    public string? Accel { get; init; }

    /// <summary><c>gic-version</c> (2, 3, 4, host, max), or null for the default.</summary>
    public string? GicVersion { get; init; }

    /// <summary><c>its</c>: a GICv3 ITS (default on).</summary>
    public bool Its { get; init; } = true;

    /// <summary><c>iommu</c>: <c>smmuv3</c> (the legacy machine-wide SMMU on pcie.0), <c>none</c>, or null.</summary>
    public string? Iommu { get; init; }

    /// <summary><c>highmem-mmio-size</c> in bytes, or null for the default.</summary>
    public ulong? HighmemMmioSize { get; init; }

    /// <summary><c>ras</c>: the RAS extension's error records (default off).</summary>
    public bool Ras { get; init; }

    /// <summary><c>default-bus-bypass-iommu</c>: pcie.0 bypasses the IOMMU (default off).</summary>
    public bool DefaultBusBypassIommu { get; init; }

    /// <summary><c>acpi</c> (on, off, auto).</summary>
    public OnOffAuto Acpi { get; init; } = OnOffAuto.Auto;

    /// <summary>True with the legacy machine-wide SMMUv3 (<c>iommu=smmuv3</c>).</summary>
    [JsonIgnore]
    public bool HasLegacySmmu => Iommu == "smmuv3";
}

/// <summary><c>-accel</c>.</summary>
public sealed record AccelSpec : OptionRecord
{
    /// <inheritdoc/>
    public override string Option => "accel";

    /// <summary><c>accel</c> (the implied key): <c>kvm</c>, <c>tcg</c>, <c>qtest</c>, ...</summary>
    public required string Type { get; init; }

    /// <summary><c>kernel-irqchip</c> (on, off, split), or null.</summary>
    public string? KernelIrqchip { get; init; }
}

/// <summary><c>-cpu</c>: a model and its features (features kept as <see cref="OptionRecord.Extra"/>).</summary>
public sealed record CpuSpec : OptionRecord
{
    /// <inheritdoc/>
    public override string Option => "cpu";

    /// <summary>The CPU model: <c>host</c>, <c>max</c>, <c>cortex-a57</c>, ...</summary>
    public required string Model { get; init; }
}

/// <summary><c>-smp</c>.</summary>
public sealed record SmpSpec : OptionRecord
{
    /// <inheritdoc/>
    public override string Option => "smp";

    /// <summary><c>cpus</c> (the implied key), or null when only the topology is given.</summary>
    public uint? Cpus { get; init; }

    /// <summary><c>maxcpus</c>, or null.</summary>
    public uint? MaxCpus { get; init; }

    /// <summary><c>sockets</c>, or null.</summary>
    public uint? Sockets { get; init; }

    /// <summary><c>clusters</c>, or null.</summary>
    public uint? Clusters { get; init; }

    /// <summary><c>cores</c>, or null.</summary>
    public uint? Cores { get; init; }

    /// <summary><c>threads</c>, or null.</summary>
    public uint? Threads { get; init; }
}

/// <summary><c>-m</c>.</summary>
public sealed record MemorySpec : OptionRecord
{
    /// <inheritdoc/>
    public override string Option => "m";

    /// <summary><c>size</c> (the implied key) in bytes; a bare number means MiB, as in QEMU.</summary>
    public ulong Size { get; init; }

    /// <summary><c>slots</c>, or null.</summary>
    public ulong? Slots { get; init; }

    /// <summary><c>maxmem</c> in bytes, or null.</summary>
    public ulong? MaxMem { get; init; }
}

/// <summary><c>-numa</c>.</summary>
public sealed record NumaSpec : OptionRecord
{
    /// <inheritdoc/>
    public override string Option => "numa";

    /// <summary><c>type</c> (the implied key): <c>node</c>, <c>dist</c>, <c>cpu</c>, <c>hmat-lb</c>, ...</summary>
    public required string Type { get; init; }

    /// <summary><c>nodeid</c>, or null.</summary>
    public uint? NodeId { get; init; }

    /// <summary><c>memdev</c>: the id of the memory backend of this node, or null.</summary>
    public string? MemDev { get; init; }

    /// <summary>Every <c>cpus</c> range (<c>0-3</c>; the key may repeat).</summary>
    public IReadOnlyList<string> Cpus { get; init; } = [];
}

/// <summary>An option this model keeps as written but does not interpret (<c>-bios</c>, <c>-drive</c>, <c>-nographic</c>).</summary>
public sealed record UnmodelledOption : OptionRecord
{
    /// <summary>The option name without its dash.</summary>
    public required string Name { get; init; }

    /// <inheritdoc/>
    public override string Option => Name;
}
