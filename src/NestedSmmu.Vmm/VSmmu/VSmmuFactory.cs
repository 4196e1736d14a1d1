using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Vmm.VSmmu;

/// <summary>Builds the vSMMU a <c>-device arm-smmuv3</c> asks for: accelerated or emulated, by its accel property.</summary>
public static class VSmmuFactory
{
    /// <summary>
    /// An <see cref="AcceleratedVSmmu"/> when <see cref="VSmmuProperties.Accel"/> (then
    /// <paramref name="host"/> is required), else an <see cref="EmulatedVSmmu"/>.
    /// </summary>
    /// <param name="name">The device id.</param>
    /// <param name="properties">Resolved properties.</param>
    /// <param name="guestMemory">The guest physical address space (guest RAM).</param>
    /// <param name="host">The VM's host context; needed for accel=on only.</param>
    /// <param name="viommuProvider">For accel=on: overrides the vIOMMU type chosen from <see cref="VSmmuProperties.Cmdqv"/>.</param>
    /// <exception cref="ArgumentException">accel=on without a host context, or properties the device cannot take.</exception>
    public static IVSmmu Create(string name, VSmmuProperties properties, IPhysicalMemory guestMemory, VSmmuHostContext? host = null,
        IViommuProvider? viommuProvider = null)
    {
        ArgumentNullException.ThrowIfNull(properties);
        if (!properties.Accel) return new EmulatedVSmmu(name, properties, guestMemory);
        if (host is null)
            throw new ArgumentException($"vSMMU '{name}' has accel=on and needs the VM's iommufd host context.", nameof(host));
        return new AcceleratedVSmmu(name, properties, guestMemory, host, viommuProvider);
    }
}
