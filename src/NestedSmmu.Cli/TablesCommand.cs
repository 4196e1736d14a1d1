using System.CommandLine;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Acpi;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.Fdt;
using NestedSmmu.Vmm.Machine;
using CliCommand = System.CommandLine.Command;

namespace NestedSmmu.Cli;

/// <summary>
/// `nestedsmmu tables`: the firmware tables a virt machine's guest would get (IORT, DSDT and,
/// where QEMU gives one, the device tree), for any QEMU command line the validator accepts.
/// Pure: nothing is realized; the host (as in `check`, an emulated host profile) is only read,
/// to judge the line and resolve accel 'auto' properties.
/// </summary>
internal static class TablesCommand
{
    public const string IortFile = "IORT.dat", DsdtFile = "DSDT.dat", DtbFile = "virt.dtb";

    public static CliCommand Create(TextWriter stdout, TextWriter stderr)
    {
        var outDir = new Option<DirectoryInfo?>("--out", "-o") { Description = $"Write {IortFile}, {DsdtFile} and (where QEMU writes one) {DtbFile} into this folder instead of printing a summary." };
        var enumerated = new Option<bool>("--enumerated")
        {
            Description = "Number PCI bridges as firmware does (depth first under each root bus) before building the IORT; " +
                          "by default bridges keep secondary bus 0, as when QEMU builds the tables at startup.",
        };
        // The same host choice as `check`, so tables are built exactly for the lines check accepts.
        var hostOption = new Option<string>("--host")
        {
            Description = $"The host to check against and resolve accel 'auto' properties (cmdqv, ats) from: an embedded emulated host profile ({string.Join(", ", HostProfile.EmbeddedNames)}) or a host profile JSON file.",
            DefaultValueFactory = _ => HostProfile.DefaultName,
        };
        var qemuArgs = new Argument<string[]>("qemu-arguments")
        {
            Description = "QEMU's arguments after `--` (qemu-system-aarch64 -machine virt ...).",
            Arity = ArgumentArity.OneOrMore,
        };
        var cmd = new CliCommand("tables", "Build the IORT, DSDT and device tree QEMU 11.1's virt board would give the guest of a command line.\n" +
            "Examples:\n  nestedsmmu tables -- -machine virt -device pxb-pcie,id=pcie.1,bus=pcie.0,bus_nr=0x10 -device arm-smmuv3,primary-bus=pcie.1\n" +
            "  nestedsmmu tables --out tables/ -- -machine virt,iommu=smmuv3")
        {
            outDir, enumerated, hostOption, qemuArgs,
        };
        cmd.SetAction(parse =>
        {
            string hostName = parse.GetValue(hostOption) ?? HostProfile.DefaultName;
            HostView host;
            try
            {
                host = ProfileHostView.From(HostProfileArgument.Load(hostName));
            }
            catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                stderr.WriteLine($"error: host profile '{hostName}': {e.Message}");
                return 2;
            }

            MachineCheck check = MachineValidator.Check(parse.GetValue(qemuArgs) ?? [], host);
            foreach (string warning in check.Warnings) stderr.WriteLine(warning);
            if (check.Error is { } error)
            {
                stderr.WriteLine($"error: {error.Message}");
                return 2;
            }

            var view = parse.GetValue(enumerated) ? PciNumberingView.FirmwareEnumerated : PciNumberingView.Unenumerated;
            VirtBoard board;
            try
            {
                board = VirtBoard.Layout(VirtBoardSpec.From(check, view));
            }
            catch (InvalidOperationException e)
            {
                // The platform bus is full (QEMU's "Platform Bus: Can not fit ..." messages).
                stderr.WriteLine($"error: {e.Message}");
                return 2;
            }
            byte[] iort = Iort.Build(board);
            byte[] dsdt = Dsdt.Build(board);
            byte[]? dtb = VirtDeviceTree.Supports(board) ? VirtDeviceTree.Build(board) : null;

            if (parse.GetValue(outDir) is { } dir)
            {
                try
                {
                    dir.Create();
                    Write(stdout, dir, IortFile, iort);
                    Write(stdout, dir, DsdtFile, dsdt);
                    if (dtb is not null) Write(stdout, dir, DtbFile, dtb);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    stderr.WriteLine($"error: cannot write the tables into '{dir.FullName}': {e.Message}");
                    return 2;
                }
                return 0;
            }
            Summarize(stdout, board, view, iort, dsdt, dtb);
            return 0;
        });
        return cmd;
    }

    private static void Write(TextWriter stdout, DirectoryInfo dir, string name, byte[] bytes)
    {
        string path = Path.Combine(dir.FullName, name);
        File.WriteAllBytes(path, bytes);
        stdout.WriteLine($"{path} ({bytes.Length} bytes)");
    }

    private static void Summarize(TextWriter o, VirtBoard board, PciNumberingView view, byte[] iort, byte[] dsdt, byte[]? dtb)
    {
        var spec = board.Spec;
        string msi = spec.HasIts ? "ITS" : spec.HasV2m ? "GICv2m" : "no MSI controller";
        o.WriteLine($"virt board: GICv{(int)spec.Gic} with {msi}, {spec.RamSize >> 20} MiB RAM, {spec.Cpus} CPU(s), " +
                    $"bus numbering: {(view == PciNumberingView.Unenumerated ? "unenumerated (QEMU at startup)" : "firmware-enumerated")}");
        foreach (var rc in spec.RootComplexes)
            o.WriteLine($"  {rc.Id}: bus 0x{rc.BusNumber:x2}, IORT range {rc.Range}{(rc.BypassIommu ? ", bypasses the IOMMU" : "")}");
        foreach (var s in board.Smmus)
        {
            string cmdqv = s.CmdqvBase is { } cb ? $", CMDQV 0x{cb:x8} GSIV {VirtIrqMap.Gsiv(s.CmdqvSpi!.Value)}" : "";
            o.WriteLine($"  SMMUv3 {s.Id}: id {s.Identifier}, 0x{s.Base:x8}, GSIV {VirtIrqMap.Gsiv(s.Spi)}-{VirtIrqMap.Gsiv(s.Spi) + VirtBoard.SmmuIrqCount - 1}" +
                        $"{(s.Accel ? ", accel" : "")}{cmdqv}, serves {string.Join(", ", s.Ranges)}");
        }
        o.WriteLine($"IORT: revision {iort[AcpiHeader.Revision]}, {iort.Length} bytes");
        foreach (string line in IortText.Describe(iort)) o.WriteLine($"  {line}");
        var cmdqvs = board.Smmus.Where(s => s.CmdqvBase is not null && !spec.LegacySmmu).Select(s => $"CV{s.Identifier:D2}").ToList();
        var pxbs = spec.RootComplexes.Where(rc => rc.BusNumber != 0).OrderBy(rc => rc.BusNumber).Select(rc => $"PC{rc.BusNumber:X2}").ToList();
        o.WriteLine($"DSDT: {dsdt.Length} bytes; \\_SB: {spec.Cpus} processor(s), COM0, PCI0{(pxbs.Count > 0 ? ", " + string.Join(", ", pxbs) : "")}" +
                    $"{(cmdqvs.Count > 0 ? ", " + string.Join(", ", cmdqvs) + $" ({Dsdt.CmdqvHid})" : "")}");
        if (dtb is null)
        {
            o.WriteLine("device tree: none (SMMUv3 with accel=on not supported for DT)");
            return;
        }
        var tree = FdtReader.Read(dtb);
        var pcie = tree.Children.First(c => c.Name.StartsWith("pcie@", StringComparison.Ordinal));
        var smmuNode = tree.Children.FirstOrDefault(c => c.Name.StartsWith("smmuv3@", StringComparison.Ordinal));
        o.WriteLine($"device tree: {dtb.Length} bytes; {(smmuNode is null ? "no smmuv3 node" : "/" + smmuNode.Name)}; " +
                    $"{pcie.Name} iommu-map {Cells(pcie, "iommu-map")}, msi-map {Cells(pcie, "msi-map")}");
    }

    private static string Cells(FdtNode node, string property) =>
        node.Property(property) is { } p ? "<" + string.Join(" ", p.Cells().Select(c => $"0x{c:x}")) + ">" : "none";
}
