namespace NestedSmmu.Vmm.VCmdqv;

/// <summary>What the unplug policy needs to know about one device of an accelerated vSMMU.</summary>
/// <param name="Device">The device to unplug (its -device id), for messages.</param>
/// <param name="Viommu">The vSMMU whose vIOMMU the device is attached to, for messages.</param>
/// <param name="CreatedViommu">The device is the one whose attach allocated the vIOMMU.</param>
/// <param name="CmdqvActive">The vIOMMU is of type TEGRA241_CMDQV (the vSMMU's CMDQV is in use).</param>
/// <param name="DevicesOnViommu">Devices attached to the vIOMMU now, this one included.</param>
/// <param name="EnabledQueues">The guest VCMDQs the VINTF has enabled (allocated on the host and CONFIG.EN set).</param>
public sealed record CmdqvUnplugRequest(
    string Device, string Viommu, bool CreatedViommu, bool CmdqvActive, int DevicesOnViommu, IReadOnlyList<int> EnabledQueues);

/// <summary>
/// When a device of an accelerated vSMMU may not be unplugged. Pure checks; the machine's unplug
/// path calls <see cref="Check"/> and refuses with its message.
/// </summary>
public static class CmdqvUnplugPolicy
{
    /// <summary>QEMU's unplug blocker (smmuv3-accel.c, set on the device that allocated a CMDQV vIOMMU).</summary>
    public const string CreatorMessage =
        "CMDQV is active: removing the device that established the viommu association would break the guest CMDQV";

    /// <summary>
    /// Null when the unplug may go ahead, else why not. First QEMU's rule: the device that created
    /// a CMDQV vIOMMU stays while CMDQV is active. Then one QEMU leaves as a ToDo (seed 000,
    /// "Prevent hot-unplug of the last device associated with vIOMMU"): the last device of a vIOMMU
    /// whose VINTF has enabled queues stays, since the vIOMMU (and the VINTF under the guest's
    /// queues) goes with it, and a later device could bring a different host SMMU.
    /// </summary>
    public static string? Check(CmdqvUnplugRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.CmdqvActive && request.CreatedViommu) return CreatorMessage;
        if (request.DevicesOnViommu <= 1 && request.EnabledQueues.Count > 0)
        {
            string queues = string.Join(", ", request.EnabledQueues.Select(q => $"VCMDQ{q}"));
            return $"Cannot unplug '{request.Device}': it is the last device of vIOMMU '{request.Viommu}', whose VINTF has " +
                $"enabled queues ({queues}); the vIOMMU would be freed under them. The guest must disable those queues first";
        }
        return null;
    }
}
