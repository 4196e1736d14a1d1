using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Vmm.VSmmu;

/// <summary>
/// The guest's stream table as the vSMMU reads it from guest RAM (IHI 0070 3.3): linear, or two
/// level with L1 descriptors (<see cref="L1StreamTableDescriptor"/>) and L2 arrays of STEs.
/// </summary>
internal static class GuestStreamTable
{
    // SMMU_STRTAB_BASE_CFG (IHI 0070 6.3.24): LOG2SIZE [5:0], SPLIT [10:6], FMT [17:16].
    internal const int LOG2SIZE_HI = 5, LOG2SIZE_LO = 0, SPLIT_HI = 10, SPLIT_LO = 6, FMT_HI = 17, FMT_LO = 16;

    /// <summary>The writable bits of STRTAB_BASE_CFG.</summary>
    internal static readonly uint WritableMask =
        (uint)(Bits.Mask(LOG2SIZE_HI, LOG2SIZE_LO) | Bits.Mask(SPLIT_HI, SPLIT_LO) | Bits.Mask(FMT_HI, FMT_LO));

    /// <summary>
    /// Reads the STE of <paramref name="sid"/>; false when the SID is beyond the table (or
    /// SIDSIZE), the L1 descriptor is invalid or too short, or a fetch leaves guest RAM. Those are
    /// the cases where the SMMU would not find an STE (C_BAD_STREAMID, F_STE_FETCH).
    /// </summary>
    public static bool TryRead(IPhysicalMemory memory, ulong strtabBase, uint strtabBaseCfg, int sidBits, uint sid,
        out StreamTableEntry ste, out ulong steAddress)
    {
        ste = default;
        steAddress = 0;
        ulong table = strtabBase & Smmu.STRTAB_BASE_ADDR_MASK;
        int log2Size = (int)Bits.Get(strtabBaseCfg, LOG2SIZE_HI, LOG2SIZE_LO);
        int split = (int)Bits.Get(strtabBaseCfg, SPLIT_HI, SPLIT_LO);
        uint fmt = (uint)Bits.Get(strtabBaseCfg, FMT_HI, FMT_LO);
        if (sid >= 1UL << Math.Min(log2Size, sidBits)) return false;
        if (fmt == Smmu.STRTAB_FMT_2LEVEL)
        {
            // SPLIT is 6, 8 or 10 (IHI 0070 6.3.24); other values behave as the nearest legal one below.
            split = split >= 10 ? 10 : split >= 8 ? 8 : 6;
            ulong l1Address = table + (sid >> split) * L1StreamTableDescriptor.Size;
            if (memory.IsAbort(l1Address, L1StreamTableDescriptor.Size)) return false;
            var l1 = new L1StreamTableDescriptor(memory.ReadUInt64(l1Address));
            ulong l2Index = sid & ((1u << split) - 1);
            // Span 0 is invalid; otherwise the L2 array holds 2^(Span-1) STEs (IHI 0070 5.1).
            if (l1.Span == 0 || l1.Span > split + 1 || l2Index >= 1UL << (int)(l1.Span - 1)) return false;
            steAddress = l1.L2Ptr + l2Index * StreamTableEntry.Size;
        }
        else
        {
            steAddress = table + (ulong)sid * StreamTableEntry.Size;
        }
        if (memory.IsAbort(steAddress, StreamTableEntry.Size)) return false;
        Span<ulong> words = stackalloc ulong[StreamTableEntry.Words];
        memory.ReadUInt64s(steAddress, words);
        ste = StreamTableEntry.FromWords(words);
        return true;
    }
}
