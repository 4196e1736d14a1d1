namespace NestedSmmu.Hardware.Firmware;

/// <summary>
/// IORT node types (Arm DEN 0049E.f, Table 4 "IORT node types"): declared once for the VMM's
/// IORT writer and the guest's IORT reader.
/// </summary>
public enum IortNodeType : byte
{
    ItsGroup = 0,
    NamedComponent = 1,
    RootComplex = 2,
    SmmuV1V2 = 3,
    SmmuV3 = 4,
    Pmcg = 5,
    ReservedMemoryRange = 6,
}
