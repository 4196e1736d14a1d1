using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// The checks a profile must pass before a host can be built from it. Paths are the JSON paths
/// the values have in a profile document, so profiles built in code get the same messages.
/// </summary>
internal static class HostProfileValidator
{
    /// <summary>Alignment of SMMU and CMDQV register frames: one 64 KiB MMIO page (IHI 0070 6.1).</summary>
    public const ulong MmioPageSize = 0x10000;

    /// <summary>Largest linear stream table the host driver builds: 2^20 STEs (64 MiB); larger SIDSIZEs need two levels.</summary>
    public const int MaxLinearSidBits = 20;

    public static void Validate(HostProfile profile, string? source)
    {
        try
        {
            ValidateCore(profile);
        }
        catch (HostProfileException e) when (source is not null && e.Source is null)
        {
            throw e.WithSource(source);
        }
    }

    private static void ValidateCore(HostProfile p)
    {
        if (string.IsNullOrWhiteSpace(p.Name)) throw new HostProfileException("$.name", "must not be empty");
        ValidateMemory(p.Memory);

        if (p.Smmus.Count == 0) throw new HostProfileException("$.smmus", "a host needs at least one SMMU");
        var frames = new List<(ulong Start, ulong End, string Path)>
        {
            (p.Memory.Base, p.Memory.End, "$.memory"),
        };
        var smmuNames = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < p.Smmus.Count; i++)
        {
            SmmuProfile s = p.Smmus[i];
            string path = $"$.smmus[{i}]";
            if (string.IsNullOrWhiteSpace(s.Name)) throw new HostProfileException($"{path}.name", "must not be empty");
            if (!smmuNames.TryAdd(s.Name, i))
                throw new HostProfileException($"{path}.name", $"SMMU name '{s.Name}' is already used by $.smmus[{smmuNames[s.Name]}]");
            ValidateFeatures(s.Features, path);
            AddFrame(frames, s.MmioBase, SmmuRegisters.FrameSize, $"{path}.base", $"SMMU '{s.Name}'");
            if (s.Cmdqv is { } c)
            {
                if (c.NumVcmdqLog2 < c.NumVintfLog2)
                    throw new HostProfileException($"{path}.cmdqv.numVcmdqLog2",
                        $"{c.NumVcmdqLog2} is below numVintfLog2 {c.NumVintfLog2}: every VINTF needs at least one VCMDQ");
                AddFrame(frames, c.MmioBase, Tegra241CmdqvHostDriver.FrameSize(c), $"{path}.cmdqv.base", $"the CMDQV of '{s.Name}'");
            }
            if (p.Memory.End - 1 >> s.Features.OasBits != 0)
                throw new HostProfileException($"{path}.features.oasBits",
                    $"host memory ends at 0x{p.Memory.End:X}, above the {s.Features.OasBits}-bit output address size of '{s.Name}'");
        }

        var names = new Dictionary<string, int>(StringComparer.Ordinal);
        var addresses = new Dictionary<PciAddress, int>();
        var streams = new Dictionary<(string, uint), int>();
        for (int i = 0; i < p.Devices.Count; i++)
        {
            PciDeviceProfile d = p.Devices[i];
            string path = $"$.devices[{i}]";
            if (string.IsNullOrWhiteSpace(d.Name)) throw new HostProfileException($"{path}.name", "must not be empty");
            if (!names.TryAdd(d.Name, i))
                throw new HostProfileException($"{path}.name", $"device name '{d.Name}' is already used by $.devices[{names[d.Name]}]");
            if (!addresses.TryAdd(d.Address, i))
                throw new HostProfileException($"{path}.bdf", $"PCI address {d.Address} is already used by $.devices[{addresses[d.Address]}]");
            SmmuProfile? smmu = p.FindSmmu(d.Smmu);
            if (smmu is null)
                throw new HostProfileException($"{path}.smmu",
                    $"no SMMU is named '{d.Smmu}'; SMMUs: {string.Join(", ", p.Smmus.Select(s => s.Name))}");
            if (d.StreamId >> smmu.Features.SidBits != 0 && smmu.Features.SidBits < 32)
                throw new HostProfileException($"{path}.streamId",
                    $"StreamID 0x{d.StreamId:X} does not fit the {smmu.Features.SidBits}-bit SIDSIZE of '{smmu.Name}'");
            int reachable = ArmSmmuDevice.StreamTableGeometry(smmu.Features).Log2Size;
            if (reachable < 32 && d.StreamId >> reachable != 0)
                throw new HostProfileException($"{path}.streamId",
                    $"StreamID 0x{d.StreamId:X} is beyond the 2^{reachable}-entry stream table the host driver builds for '{smmu.Name}' (Linux caps the level-1 table at 2^{ArmSmmuDevice.StrtabMaxL1Log2} descriptors)");
            if (!streams.TryAdd((smmu.Name, d.StreamId), i))
                throw new HostProfileException($"{path}.streamId",
                    $"StreamID 0x{d.StreamId:X} on '{smmu.Name}' is already used by $.devices[{streams[(smmu.Name, d.StreamId)]}]");
            if (d.PasidBits is < 0 or > PciDeviceProfile.MaxPasidBits)
                throw new HostProfileException($"{path}.pasidBits", $"{d.PasidBits} is out of range (0..{PciDeviceProfile.MaxPasidBits})");
        }
    }

    private static void ValidateMemory(HostMemoryProfile m)
    {
        const ulong page = SparseMemory.PageSize;
        if (m.Size == 0) throw new HostProfileException("$.memory.size", "host memory must not be empty");
        if ((m.Base & (page - 1)) != 0) throw new HostProfileException("$.memory.base", $"0x{m.Base:X} is not aligned to the {page}-byte page");
        if ((m.Size & (page - 1)) != 0) throw new HostProfileException("$.memory.size", $"0x{m.Size:X} is not a whole number of {page}-byte pages");
        if (m.Base > SparseMemory.AddressLimit || m.Size > SparseMemory.AddressLimit - m.Base)
            throw new HostProfileException("$.memory.size", $"memory at 0x{m.Base:X} of 0x{m.Size:X} bytes leaves the {SparseMemory.AddressBits}-bit physical address space");
    }

    private static void ValidateFeatures(SmmuFeatures f, string path)
    {
        string fp = $"{path}.features";
        if (!f.Stage1 && !f.Stage2)
            throw new HostProfileException($"{fp}.stage2", "the emulated host driver's paging domains translate at stage 1 or stage 2: the SMMU must implement stage 1 or stage 2");
        if (!f.Gran4K)
            throw new HostProfileException($"{fp}.gran4K", "the emulated host driver's translation tables use the 4 KiB granule: the SMMU must implement it");
        if (!AddressSize.TryEncode(f.OasBits, out _))
            throw new HostProfileException($"{fp}.oasBits", $"{f.OasBits} is not an architected address size (32, 36, 40, 42, 44, 48, 52)");
        if (f.SidBits is < 0 or > 32) throw new HostProfileException($"{fp}.sidBits", $"{f.SidBits} is out of range (0..32)");
        if (f.SsidBits is < 0 or > 20) throw new HostProfileException($"{fp}.ssidBits", $"{f.SsidBits} is out of range (0..20)");
        bool linear = !f.TwoLevelStreamTable || f.SidBits <= ArmSmmuDevice.StrtabSplit;
        if (linear && f.SidBits > MaxLinearSidBits)
            throw new HostProfileException($"{fp}.sidBits",
                $"a {f.SidBits}-bit SIDSIZE needs a two-level stream table (twoLevelStreamTable), or at most {MaxLinearSidBits} bits for a linear one");
    }

    private static void AddFrame(List<(ulong Start, ulong End, string Path)> frames, ulong start, ulong size, string path, string what)
    {
        if ((start & (MmioPageSize - 1)) != 0)
            throw new HostProfileException(path, $"0x{start:X} is not aligned to the 64 KiB MMIO page ({what})");
        if (start > SparseMemory.AddressLimit - size)
            throw new HostProfileException(path, $"{what} at 0x{start:X} leaves the {SparseMemory.AddressBits}-bit physical address space");
        ulong end = start + size;
        foreach (var f in frames)
        {
            if (start < f.End && f.Start < end)
                throw new HostProfileException(path, $"{what} [0x{start:X}, 0x{end:X}) overlaps {f.Path} [0x{f.Start:X}, 0x{f.End:X})");
        }
        frames.Add((start, end, path));
    }
}
