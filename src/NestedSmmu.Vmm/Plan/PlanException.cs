namespace NestedSmmu.Vmm.Plan;

/// <summary>A plan that cannot be made: the message names the device, its SMMU or group and what to change.</summary>
public sealed class PlanException(string message) : Exception(message);
