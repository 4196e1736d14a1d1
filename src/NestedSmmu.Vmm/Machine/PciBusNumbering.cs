using NestedSmmu.Hardware.Pci;

namespace NestedSmmu.Vmm.Machine;

/// <summary>Which bus numbers a view of the PCI tree uses.</summary>
public enum PciNumberingView
{
    /// <summary>
    /// Before firmware runs (QEMU's view when it builds tables at startup): every bridge's
    /// secondary and subordinate bus number registers read 0, so devices behind a bridge are on
    /// bus 0, and a root bus's range is QEMU's pci_bus_range (hw/pci/pci.c): from
    /// min(own number, bridges' secondary = 0) to max(own number, bridges' subordinate = 0).
    /// </summary>
    Unenumerated,
    /// <summary>
    /// After the firmware's scan: under each root bus, depth first in slot order, every bridge
    /// takes the next bus number as its secondary and the last number below it as its subordinate.
    /// </summary>
    FirmwareEnumerated,
}

/// <summary>An inclusive range of bus numbers.</summary>
/// <param name="Min">First bus number.</param>
/// <param name="Max">Last bus number.</param>
public readonly record struct PciBusRange(byte Min, byte Max)
{
    /// <summary>Bus numbers in the range.</summary>
    public int Count => Max - Min + 1;

    /// <summary>True when <paramref name="bus"/> is in the range.</summary>
    public bool Contains(byte bus) => bus >= Min && bus <= Max;

    /// <summary>The first requester ID of the range (min_bus &lt;&lt; 8), as IORT's ID mappings start.</summary>
    public uint FirstRequesterId => (uint)Min << 8;

    /// <summary>Requester IDs in the range ((max - min + 1) &lt;&lt; 8).</summary>
    public uint RequesterIdCount => (uint)Count << 8;

    /// <summary><c>[0x10-0x11]</c>.</summary>
    public override string ToString() => $"[0x{Min:x2}-0x{Max:x2}]";
}

/// <summary>Bus numbers of every bus in one view, bridge windows, root-bus ranges and requester IDs.</summary>
public sealed class PciBusNumbering
{
    private readonly PciTopology _topology;
    private readonly Dictionary<string, byte> _numbers;
    private readonly Dictionary<string, (byte Secondary, byte Subordinate)> _bridges;

    internal PciBusNumbering(PciTopology topology, PciNumberingView view, Dictionary<string, byte> numbers,
        Dictionary<string, (byte, byte)> bridges)
    {
        _topology = topology;
        View = view;
        _numbers = numbers;
        _bridges = bridges;
    }

    /// <summary>Which view this is.</summary>
    public PciNumberingView View { get; }

    /// <summary>The bus number of bus <paramref name="bus"/> in this view.</summary>
    /// <exception cref="KeyNotFoundException">No such bus.</exception>
    public byte NumberOf(string bus) => _numbers.TryGetValue(bus, out byte n) ? n
        : throw new KeyNotFoundException($"No PCI bus '{bus}'.");

    /// <summary>A bridge's (secondary, subordinate) bus numbers: what its config registers hold in this view.</summary>
    /// <exception cref="KeyNotFoundException"><paramref name="bridgeBus"/> is not a bridge's secondary bus.</exception>
    public (byte Secondary, byte Subordinate) BridgeWindow(string bridgeBus) => _bridges.TryGetValue(bridgeBus, out var w) ? w
        : throw new KeyNotFoundException($"No bridge provides PCI bus '{bridgeBus}'.");

    /// <summary>
    /// The range of a root bus as QEMU's pci_bus_range computes it: its own number widened by the
    /// secondary and subordinate numbers of the bridges directly on it.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="rootBus"/> is not a root bus.</exception>
    public PciBusRange RangeOf(string rootBus)
    {
        PciBus bus = _topology.Bus(rootBus);
        if (!bus.IsRootBus) throw new ArgumentException($"'{rootBus}' is not a root bus.", nameof(rootBus));
        byte own = NumberOf(rootBus);
        byte min = own, max = own;
        foreach (PciFunction f in _topology.FunctionsOn(rootBus).Where(f => f.IsBridge))
        {
            (byte sec, byte sub) = _bridges[f.SecondaryBus!];
            min = Math.Min(min, sec);
            max = Math.Max(max, sub);
        }
        return new PciBusRange(min, max);
    }

    /// <summary>The requester ID of a function in this view: bus &lt;&lt; 8 | devfn.</summary>
    public RequesterId RequesterIdOf(PciFunction function) =>
        new((ushort)((NumberOf(function.Bus) << 8) | function.Devfn.Value));
}
