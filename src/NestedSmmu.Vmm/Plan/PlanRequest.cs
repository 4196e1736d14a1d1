using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Plan;

/// <summary>What a user asks <see cref="MachinePlanner"/> for.</summary>
public sealed record PlanRequest
{
    /// <summary>
    /// The firmware image upstream QEMU installs in its data directory (pc-bios/edk2-aarch64-code.fd), found by name:
    /// a UEFI boot with ACPI tables, which accel=on needs. Distributions that ship edk2 separately
    /// (Debian's qemu-efi-aarch64) do not install it under that name: pass their image's path.
    /// </summary>
    public const string DefaultFirmware = "edk2-aarch64-code.fd";

    /// <summary>The guest RAM when none is asked for.</summary>
    public const string DefaultMemory = "4G";

    /// <summary>Host PCI addresses to pass through; empty for every passthrough-capable function of the host.</summary>
    public IReadOnlyList<string> Devices { get; init; } = [];

    /// <summary>The <c>cmdqv</c> property of every vSMMU: on (refused where a physical SMMU has no CMDQV), off, or auto.</summary>
    public OnOffAuto Cmdqv { get; init; } = OnOffAuto.Auto;

    /// <summary>The <c>-bios</c> image (a UEFI build, so the guest boots with ACPI tables).</summary>
    public string Firmware { get; init; } = DefaultFirmware;

    /// <summary>The <c>-m</c> size, in QEMU's syntax (<c>4G</c>).</summary>
    public string Memory { get; init; } = DefaultMemory;
}
