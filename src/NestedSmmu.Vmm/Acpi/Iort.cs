using NestedSmmu.Hardware.Firmware;
using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Vmm.Acpi;

/// <summary>A range of input IDs (requester IDs) and the IORT node offset it goes to.</summary>
public readonly record struct IortIdRange(uint InputBase, uint Count)
{
    public uint End => InputBase + Count;
}

/// <summary>
/// The IO Remapping Table (Arm DEN 0049E.f) of the virt board, as QEMU 11.1 builds it
/// (hw/arm/virt-acpi-build.c build_iort): an ITS group when the board has an ITS; one SMMUv3 node
/// per SMMU, sorted by the first bus range it serves; the root complex with its ID mappings (first
/// each SMMU's ranges, then the ranges nobody translates, straight to the ITS); one RMR node per
/// accel SMMU covering the host's MSI doorbell window.
/// </summary>
public static class Iort
{
    /// <summary>
    /// The IOVA window the host's arm-smmu-v3 driver maps MSI doorbells into (Linux
    /// drivers/iommu/arm/arm-smmu-v3: MSI_IOVA_BASE, MSI_IOVA_LENGTH); a nested guest must keep it flat.
    /// </summary>
    public const ulong MsiIovaBase = 0x800_0000, MsiIovaLength = 0x10_0000;

    /// <summary>Builds the table for a laid-out board.</summary>
    public static byte[] Build(VirtBoard board, AcpiOem? oem = null)
    {
        var spec = board.Spec;
        bool its = spec.HasIts;
        // populate_smmuv3_dev / _legacy_dev: sorted by the first range's input base; a stable sort
        // keeps creation order among equal keys, as GLib's g_array_sort (a merge sort) does.
        var smmus = board.Smmus.OrderBy(s => s.Ranges.Count == 0 ? 0 : s.Ranges[0].FirstRequesterId).ToList();
        var rcToSmmu = smmus.Select(s => s.Ranges.Select(r => new IortIdRange(r.FirstRequesterId, r.RequesterIdCount)).ToList()).ToList();
        var rcToIts = its ? Bypassed(rcToSmmu) : [];

        int nodeCount;
        int rcMappingCount;
        if (smmus.Count > 0)
        {
            nodeCount = smmus.Count + 1 + (its ? 1 : 0) + smmus.Count(s => s.Accel);
            rcMappingCount = rcToSmmu.Sum(r => r.Count) + rcToIts.Count;
        }
        else
        {
            nodeCount = its ? 2 : 1;
            rcMappingCount = its ? 1 : 0;
        }

        var table = AcpiTable.Begin(new ByteSink(), "IORT", IortLayout.TableRevision, oem ?? AcpiOem.Qemu);
        var sink = table.Sink;
        sink.U32((uint)nodeCount);
        sink.U32(IortLayout.FirstNode);
        sink.U32(0);

        uint identifier = 0;
        if (its)
        {
            NodeHeader(sink, IortNodeType.ItsGroup, IortLayout.ItsGroup.Identifiers + IortLayout.ItsGroup.IdentifierSize,
                IortLayout.ItsGroup.Revision, identifier++, 0, 0);
            sink.U32(1); // one ITS
            sink.U32(0); // its GIC ITS ID in the MADT
        }

        var smmuOffsets = new int[smmus.Count];
        for (int i = 0; i < smmus.Count; i++)
        {
            var s = smmus[i];
            smmuOffsets[i] = table.Offset;
            int mappings = its ? 1 : 0;
            NodeHeader(sink, IortNodeType.SmmuV3, IortLayout.SmmuV3.Size + mappings * IortLayout.IdMapping.Size,
                IortLayout.SmmuV3.Revision, s.Identifier, mappings, its ? IortLayout.SmmuV3.Size : 0);
            identifier++; // QEMU's running counter moves past every SMMU node, whatever identifier it carries
            uint gsiv = (uint)VirtIrqMap.Gsiv(s.Spi);
            sink.U64(s.Base);
            sink.U32(IortLayout.SmmuV3.CohaccOverride);
            sink.U32(0);
            sink.U64(0); // VATOS: none
            sink.U32(IortLayout.SmmuV3.ModelGeneric);
            // QEMU's SMMUv3 wires eventq, priq, cmdq-sync, gerror on consecutive lines.
            sink.U32(gsiv);
            sink.U32(gsiv + 1);
            sink.U32(gsiv + 3);
            sink.U32(gsiv + 2);
            sink.U32(0); // proximity domain
            sink.U32(0); // DeviceID mapping index: unused, the interrupts are wired GSIVs
            if (its) IdMapping(sink, new IortIdRange(0, IortLayout.RequesterIdSpace), IortLayout.FirstNode, 0);
        }

        NodeHeader(sink, IortNodeType.RootComplex, IortLayout.RootComplex.Size + rcMappingCount * IortLayout.IdMapping.Size,
            IortLayout.RootComplex.Revision, identifier++, rcMappingCount, IortLayout.RootComplex.Size);
        sink.U32(IortLayout.RootComplex.FullyCoherent);
        sink.U8(0); // allocation hints
        sink.U16(0);
        sink.U8(IortLayout.RootComplex.CoherentDeviceAttributes);
        sink.U32(smmus.Any(s => s.Ats) ? IortLayout.RootComplex.AtsSupported : 0);
        sink.U32(0); // PCI segment 0, as in the MCFG
        sink.U8(IortLayout.RootComplex.AddressSizeBits);
        sink.U16(0); // PASID capabilities
        sink.U8(0);
        if (smmus.Count > 0)
        {
            for (int i = 0; i < smmus.Count; i++)
                foreach (var range in rcToSmmu[i]) IdMapping(sink, range, smmuOffsets[i], 0);
            foreach (var range in rcToIts) IdMapping(sink, range, IortLayout.FirstNode, 0);
        }
        else if (its)
        {
            IdMapping(sink, new IortIdRange(0, IortLayout.RequesterIdSpace), IortLayout.FirstNode, 0);
        }

        for (int i = 0; i < smmus.Count; i++)
        {
            if (!smmus[i].Accel) continue;
            // DEN 0049E.d 3.1.1.5: the RMR's stream IDs are the SMMU's first root-complex range,
            // one memory range descriptor for the host's MSI window.
            const int idArray = IortLayout.Rmr.Size;
            const int rangeArray = idArray + IortLayout.IdMapping.Size;
            NodeHeader(sink, IortNodeType.ReservedMemoryRange, rangeArray + IortLayout.Rmr.RangeSize,
                IortLayout.Rmr.Revision, identifier++, 1, idArray);
            sink.U32(IortLayout.Rmr.FlagsDeviceNgnrne);
            sink.U32(1);
            sink.U32(rangeArray);
            IdMapping(sink, rcToSmmu[i][0], smmuOffsets[i], IortLayout.IdMapping.SingleMapping);
            sink.U64(MsiIovaBase);
            sink.U64(MsiIovaLength);
            sink.U32(0);
        }
        return table.End();
    }

    /// <summary>
    /// create_rc_its_idmaps: walking the SMMUs' ranges in table order, every stretch before a range
    /// that starts past the end of the previous one goes to the ITS, and so does the rest up to 0xFFFF.
    /// (Overlapping ranges, which unnumbered bridges make, are taken as QEMU takes them.)
    /// </summary>
    public static List<IortIdRange> Bypassed(IReadOnlyList<IReadOnlyList<IortIdRange>> smmuRanges)
    {
        var gaps = new List<IortIdRange>();
        uint next = 0;
        foreach (var ranges in smmuRanges)
            foreach (var range in ranges)
            {
                if (next < range.InputBase) gaps.Add(new IortIdRange(next, range.InputBase - next));
                next = range.End;
            }
        if (next < IortLayout.RequesterIdSpace) gaps.Add(new IortIdRange(next, IortLayout.RequesterIdSpace - next));
        return gaps;
    }

    private static void NodeHeader(ByteSink sink, IortNodeType type, int length, byte revision, uint identifier, int mappingCount, int mappingArrayOffset)
    {
        sink.U8((byte)type);
        sink.U16((ushort)length);
        sink.U8(revision);
        sink.U32(identifier);
        sink.U32((uint)mappingCount);
        sink.U32((uint)mappingArrayOffset);
    }

    // DEN 0049E.f Table 5: the count field holds the number of IDs minus one; identity output base.
    private static void IdMapping(ByteSink sink, IortIdRange range, int outputReference, uint flags)
    {
        sink.U32(range.InputBase);
        sink.U32(range.Count - 1);
        sink.U32(range.InputBase);
        sink.U32((uint)outputReference);
        sink.U32(flags);
    }
}
