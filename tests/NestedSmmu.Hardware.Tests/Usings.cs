global using NestedSmmu.Hardware;
global using NestedSmmu.Hardware.Memory;
global using NestedSmmu.Hardware.Smmu;
global using NestedSmmu.Hardware.Tests.Infrastructure;
// Inside NestedSmmu.Hardware.* the simple name "Smmu" is a namespace: name the device type once.
global using SmmuDevice = NestedSmmu.Hardware.Smmu.Smmu;
