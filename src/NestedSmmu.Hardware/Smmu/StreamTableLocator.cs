using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Hardware.Smmu;

/// <summary>Where a StreamID's STE lookup ended (IHI 0070 3.3, 5.1).</summary>
public enum StreamLookupStatus
{
    /// <summary>The STE is at <see cref="StreamLookup.SteAddress"/> and can be fetched.</summary>
    Found,
    /// <summary>The StreamID is beyond STRTAB_BASE_CFG.LOG2SIZE or IDR1.SIDSIZE: C_BAD_STREAMID.</summary>
    BeyondTable,
    /// <summary>The L1 descriptor cannot be fetched (outside OAS or aborting): F_STE_FETCH at <see cref="StreamLookup.L1Address"/>.</summary>
    L1FetchFault,
    /// <summary>L1STD.Span is 0 or the index is past its 2^(Span-1) STEs (5.1.1): C_BAD_STREAMID.</summary>
    OutsideSpan,
    /// <summary>The STE cannot be fetched (outside OAS or aborting): F_STE_FETCH at <see cref="StreamLookup.SteAddress"/>.</summary>
    SteFetchFault,
}

/// <summary>The outcome of <see cref="StreamTableLocator.Locate"/>, with what a trace or an event record needs.</summary>
public readonly record struct StreamLookup(
    StreamLookupStatus Status, ulong SteAddress, int Log2Size, int Split, bool TwoLevel, ulong L1Address, L1StreamTableDescriptor L1, ulong L2Index)
{
    /// <summary>True when the STE was located and can be fetched.</summary>
    public bool Found => Status == StreamLookupStatus.Found;
}

/// <summary>
/// Finds a StreamID's STE in a linear or 2-level stream table (IHI 0070 3.3.1, 3.3.2, 6.3.24):
/// the one lookup used by the SMMUv3 model and by the VMM reading a guest's stream table.
/// </summary>
public static class StreamTableLocator
{
    /// <param name="memory">Where the table lives (host PA for the SMMU, guest PA for a vSMMU).</param>
    /// <param name="strtabBase">SMMU_STRTAB_BASE.</param>
    /// <param name="strtabBaseCfg">SMMU_STRTAB_BASE_CFG.</param>
    /// <param name="features">IDR1.SIDSIZE, IDR0.ST_LEVEL (a 2-level FMT without it is read as linear) and the OAS that fetches must fit.</param>
    /// <param name="sid">The StreamID.</param>
    public static StreamLookup Locate(IPhysicalMemory memory, ulong strtabBase, uint strtabBaseCfg, SmmuFeatures features, uint sid)
    {
        ulong table = strtabBase & SmmuV3.STRTAB_BASE_ADDR.Mask;
        int log2Size = (int)SmmuV3.STRTAB_BASE_CFG_LOG2SIZE.Get(strtabBaseCfg);
        uint fmt = (uint)SmmuV3.STRTAB_BASE_CFG_FMT.Get(strtabBaseCfg);
        int split = (int)SmmuV3.STRTAB_BASE_CFG_SPLIT.Get(strtabBaseCfg);
        bool twoLevel = fmt == SmmuV3.STRTAB_FMT_2LEVEL && features.TwoLevelStreamTable;
        if (sid >= 1UL << Math.Min(log2Size, features.SidBits))
            return new(StreamLookupStatus.BeyondTable, 0, log2Size, split, twoLevel, 0, default, 0);
        if (!twoLevel)
        {
            ulong linear = table + (ulong)sid * StreamTableEntry.Size;
            return new(CanFetch(memory, features, linear, StreamTableEntry.Size) ? StreamLookupStatus.Found : StreamLookupStatus.SteFetchFault,
                linear, log2Size, split, false, 0, default, 0);
        }
        // SPLIT is 6, 8 or 10 (6.3.24); other values behave as the nearest legal one below.
        split = split >= 10 ? 10 : split >= 8 ? 8 : 6;
        ulong l1Address = table + (sid >> split) * (ulong)L1StreamTableDescriptor.Size;
        if (!CanFetch(memory, features, l1Address, L1StreamTableDescriptor.Size))
            return new(StreamLookupStatus.L1FetchFault, 0, log2Size, split, true, l1Address, default, 0);
        var l1 = new L1StreamTableDescriptor(memory.ReadUInt64(l1Address));
        ulong l2Index = sid & ((1u << split) - 1);
        // Span 0 is an invalid descriptor; otherwise the L2 array holds 2^(Span-1) STEs (5.1.1).
        if (l1.Span == 0 || l1.Span > split + 1 || l2Index >= 1UL << (int)(l1.Span - 1))
            return new(StreamLookupStatus.OutsideSpan, 0, log2Size, split, true, l1Address, l1, l2Index);
        ulong steAddress = l1.L2Ptr + l2Index * StreamTableEntry.Size;
        return new(CanFetch(memory, features, steAddress, StreamTableEntry.Size) ? StreamLookupStatus.Found : StreamLookupStatus.SteFetchFault,
            steAddress, log2Size, split, true, l1Address, l1, l2Index);
    }

    /// <summary>Reads the STE a successful lookup found.</summary>
    public static StreamTableEntry ReadSte(IPhysicalMemory memory, ulong steAddress)
    {
        Span<ulong> words = stackalloc ulong[StreamTableEntry.Words];
        memory.ReadUInt64s(steAddress, words);
        return StreamTableEntry.FromWords(words);
    }

    /// <summary>The SMMU can fetch [address, address + length): inside OAS and backed by memory.</summary>
    public static bool CanFetch(IPhysicalMemory memory, SmmuFeatures features, ulong address, ulong length) =>
        Bits.FitsIn(address + length - 1, features.OasBits) && !memory.IsAbort(address, length);
}
