using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// A master's Context Descriptor table in host memory (arm_smmu_ctx_desc_cfg), made when the
/// first stage-1 domain is attached (arm_smmu_alloc_cd_ptr) and kept for the master's life.
/// S1CDMax is the master's SSID width; the table is linear when the SMMU has no 2-level CD
/// tables or when 2^S1CDMax CDs fit one leaf table of 1024, else 2-level with 64 KiB leaves
/// (STRTAB_STE_0_S1FMT_64K_L2), the leaf for a substream allocated on first use. Only substream
/// 0 is written here: iommufd's paging attachments use no PASID.
/// </summary>
internal sealed class ArmSmmuCdTable
{
    /// <summary>CDs per leaf table of a 2-level CD table (CTXDESC_L2_ENTRIES).</summary>
    public const int L2Entries = 1024;
    /// <summary>STE.S1Fmt: 0b00 linear, 0b10 2-level with 64 KiB leaf tables (IHI 0070 5.2).</summary>
    public const uint S1FmtLinear = 0, S1Fmt64KL2 = 2;

    private readonly ArmSmmuDevice _smmu;
    private readonly uint _sid;
    private readonly Dictionary<uint, ulong> _leaves = new();

    private ArmSmmuCdTable(ArmSmmuDevice smmu, uint sid, int s1CdMax, uint s1Fmt, ulong baseAddress, ulong bytes)
    {
        Bytes = bytes;
        _smmu = smmu;
        _sid = sid;
        S1CdMax = s1CdMax;
        S1Fmt = s1Fmt;
        BaseAddress = baseAddress;
    }

    /// <summary>Host memory the table holds (level 1 or linear, and leaf tables).</summary>
    public ulong Bytes { get; private set; }

    /// <summary>STE.S1CDMax: log2 of the CDs the table holds.</summary>
    public int S1CdMax { get; }
    /// <summary>STE.S1Fmt.</summary>
    public uint S1Fmt { get; }
    /// <summary>STE.S1ContextPtr: the linear table or the level-1 descriptors.</summary>
    public ulong BaseAddress { get; }

    /// <summary>arm_smmu_alloc_cd_tables: the table for a master with <paramref name="ssidBits"/> of SSID; null when host memory is exhausted.</summary>
    public static ArmSmmuCdTable? TryCreate(ArmSmmuDevice smmu, uint sid, int ssidBits)
    {
        ulong contexts = 1UL << ssidBits;
        bool linear = !smmu.Features.TwoLevelCd || contexts <= L2Entries;
        ulong bytes = linear ? contexts * ContextDescriptor.Size : (contexts + L2Entries - 1) / L2Entries * L1ContextDescriptor.Size;
        ulong? table = Allocate(smmu, bytes, $"CD table of SID 0x{sid:X}");
        return table is null ? null : new ArmSmmuCdTable(smmu, sid, ssidBits, linear ? S1FmtLinear : S1Fmt64KL2, table.Value, AllocationSize(bytes));
    }

    /// <summary>
    /// The host PA of substream <paramref name="ssid"/>'s CD, allocating its leaf table first when
    /// the table has two levels (then the level-1 descriptor is written and synced with a
    /// non-leaf CFGI_CD, as an invalid one may be cached). Null when host memory is exhausted.
    /// </summary>
    public ulong? CdAddress(uint ssid)
    {
        if (S1Fmt == S1FmtLinear) return BaseAddress + (ulong)ssid * ContextDescriptor.Size;
        uint index = ssid / L2Entries;
        if (!_leaves.TryGetValue(index, out ulong leaf))
        {
            if (Allocate(_smmu, (ulong)L2Entries * ContextDescriptor.Size, $"CD leaf table {index} of SID 0x{_sid:X}") is not { } fresh) return null;
            leaf = fresh;
            _leaves.Add(index, leaf);
            Bytes += AllocationSize((ulong)L2Entries * ContextDescriptor.Size);
            _smmu.Host.Memory.WriteUInt64(BaseAddress + (ulong)index * L1ContextDescriptor.Size, L1ContextDescriptor.Create(leaf).Word);
            _smmu.Submit([Command.CfgiCd(_sid, ssid, leaf: false)], sync: true);
        }
        return leaf + (ulong)(ssid % L2Entries) * ContextDescriptor.Size;
    }

    /// <summary>The host PA of substream <paramref name="ssid"/>'s CD without allocating; null when its leaf table does not exist.</summary>
    public ulong? ExistingCdAddress(uint ssid)
    {
        if (S1Fmt == S1FmtLinear) return BaseAddress + (ulong)ssid * ContextDescriptor.Size;
        return _leaves.TryGetValue(ssid / L2Entries, out ulong leaf) ? leaf + (ulong)(ssid % L2Entries) * ContextDescriptor.Size : null;
    }

    /// <summary>
    /// Writes substream <paramref name="ssid"/>'s CD as arm_smmu_write_entry does, each step that
    /// changes memory followed by CFGI_CD (leaf) and CMD_SYNC: a valid CD is first made invalid
    /// (word 0 cleared), then words 1-7 take their new values, then word 0 (V last).
    /// </summary>
    public void Write(uint ssid, in ContextDescriptor cd)
    {
        ulong address = CdAddress(ssid) ?? throw new InvalidOperationException($"SID 0x{_sid:X}: no CD for SSID {ssid}.");
        Span<ulong> old = stackalloc ulong[ContextDescriptor.Words];
        for (int i = 0; i < old.Length; i++) old[i] = _smmu.Host.Memory.ReadUInt64(address + (ulong)(i * sizeof(ulong)));
        ContextDescriptor current = ContextDescriptor.FromWords(old);
        if (current == cd) return;
        if (current.V)
        {
            old[0] = 0;
            _smmu.Host.Memory.WriteUInt64(address, 0);
            Sync(ssid);
        }
        ReadOnlySpan<ulong> words = [cd.W0, cd.W1, cd.W2, cd.W3, cd.W4, cd.W5, cd.W6, cd.W7];
        bool changed = false;
        for (int i = 1; i < words.Length; i++)
        {
            if (words[i] == old[i]) continue;
            _smmu.Host.Memory.WriteUInt64(address + (ulong)(i * sizeof(ulong)), words[i]);
            changed = true;
        }
        if (changed) Sync(ssid);
        if (words[0] == old[0]) return;
        _smmu.Host.Memory.WriteUInt64(address, words[0]);
        Sync(ssid);
    }

    /// <summary>arm_smmu_sync_cd with leaf = true for every StreamID of the master (one here).</summary>
    private void Sync(uint ssid) => _smmu.Submit([Command.CfgiCd(_sid, ssid)], sync: true);

    /// <summary>arm_smmu_clear_cd: makes substream <paramref name="ssid"/>'s CD all zero (invalid).</summary>
    public void Clear(uint ssid)
    {
        if (ExistingCdAddress(ssid) is not null) Write(ssid, default);
    }

    /// <summary>dma_alloc_coherent: at least a page, naturally aligned.</summary>
    private static ulong? Allocate(ArmSmmuDevice smmu, ulong bytes, string owner)
    {
        ulong size = AllocationSize(bytes);
        return smmu.Host.Allocator.TryAllocate(size, size, $"{smmu.Name} {owner}");
    }

    private static ulong AllocationSize(ulong bytes) => Math.Max(System.Numerics.BitOperations.RoundUpToPowerOf2(bytes), LpaePageTable.PageSize);
}
