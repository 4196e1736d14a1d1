namespace NestedSmmu.Vmm.Config;

/// <summary>
/// A command line QEMU would refuse (or this model cannot back): QEMU's message verbatim, and the
/// option it is about, quoted as QEMU quotes it (<c>-device arm-smmuv3,oas=40: QEMU SMMUv3 model only ...</c>).
/// </summary>
public sealed class QemuConfigException : Exception
{
    /// <summary>A refusal about one option (<paramref name="option"/> as written, with its dash), or about the whole line when null.</summary>
    public QemuConfigException(string? option, string qemuMessage)
        : base(option is null ? qemuMessage : $"{option}: {qemuMessage}")
    {
        OptionText = option;
        QemuMessage = qemuMessage;
    }

    /// <summary>The option quoted (<c>-device arm-smmuv3,accel=on</c>), or null when the message is about the machine as a whole.</summary>
    public string? OptionText { get; }

    /// <summary>The message alone, verbatim as QEMU prints it (or ours, past QEMU, naming what is wrong).</summary>
    public string QemuMessage { get; }
}
