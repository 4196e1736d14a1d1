// The Hardware SMMUv3 model class carries the architected register field constants (CR0, GBPA,
// GERROR ...). One alias here, so a rename of that class touches one line of the guest.
global using SmmuModel = NestedSmmu.Hardware.Smmu.Smmu;
// The product's one VMSAv8-64 table writer and the space it allocates tables from.
global using PageTable = NestedSmmu.Hardware.Scenarios.Tables;
global using ITableSpace = NestedSmmu.Hardware.Scenarios.ITableSpace;
global using NestedSmmu.Hardware.Memory;
