// The Hardware SMMUv3 model class carries the architected register field constants (CR0, GBPA,
// GERROR ...). One alias here, so a rename of that class touches one line of the guest.
global using SmmuModel = NestedSmmu.Hardware.Smmu.SmmuV3;
global using NestedSmmu.Hardware.Memory;
// The product's one VMSAv8-64 table writer.
global using NestedSmmu.Guest.PageTables;
