#:project ../src/NestedSmmu.Vmm/NestedSmmu.Vmm.csproj
using NestedSmmu.Vmm.Acpi;
using NestedSmmu.Vmm.Machine;
var spec = new VirtBoardSpec
{
    Gic = GicVersion.V3, Cpus = 2,
    RootComplexes = [new("pcie.0", 0, false, new PciBusRange(0, 0), 0xFF), new("pcie.1", 0x10, false, new PciBusRange(0x10, 0x10), 0x10)],
    Smmus = [new("s0", "pcie.0", Accel: true, Cmdqv: true, Ats: true), new("s1", "pcie.1", Accel: true, Cmdqv: true)],
};
var board = VirtBoard.Layout(spec);
Directory.CreateDirectory(args[0]);
File.WriteAllBytes(Path.Combine(args[0], "IORT.dat"), Iort.Build(board));
File.WriteAllBytes(Path.Combine(args[0], "DSDT.dat"), Dsdt.Build(board));
