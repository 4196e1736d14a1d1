namespace NestedSmmu.Vmm.VCmdqv;

/// <summary>
/// One edge-triggered interrupt line from a device to the interrupt controller (QEMU's qemu_irq
/// with qemu_irq_pulse). The CMDQV's line is the SMMU's fifth, an edge SPI (qemu.md §4, the DSDT
/// node's Interrupt resource). The VM connects <see cref="Pulsed"/> to its GIC model; the count
/// is kept for the run report.
/// </summary>
public sealed class IrqLine(string name)
{
    /// <summary>A label for messages and reports, e.g. <c>smmuv3.0 cmdqv</c>.</summary>
    public string Name { get; } = name;

    /// <summary>Edges sent so far.</summary>
    public long Pulses { get; private set; }

    /// <summary>Raised on every edge.</summary>
    public event Action<IrqLine>? Pulsed;

    /// <summary>Sends one edge (raise and lower).</summary>
    public void Pulse()
    {
        Pulses++;
        Pulsed?.Invoke(this);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({Pulses} pulses)";
}
