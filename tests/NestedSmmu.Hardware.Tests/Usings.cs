global using NestedSmmu.Hardware;
global using NestedSmmu.Hardware.Memory;
global using NestedSmmu.Hardware.Smmu;
global using NestedSmmu.Hardware.Tests.Infrastructure;
