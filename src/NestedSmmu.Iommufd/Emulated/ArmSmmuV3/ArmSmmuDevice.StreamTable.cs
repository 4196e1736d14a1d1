using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Iommufd.Emulated;

internal sealed partial class ArmSmmuDevice
{
    /// <summary>ATC_INV Size = 52: the whole address space (IHI 0070 4.6.1).</summary>
    private const uint AtcInvSizeAll = 52;
    /// <summary>
    /// Without range invalidation, unmaps of this many 4 KiB pages or more invalidate the whole
    /// VMID or ASID instead: arm_smmu_inv_size_too_big's 1 &lt;&lt; (log2(granule) - 3) operations.
    /// </summary>
    private const ulong MaxTlbiOps = 1UL << (LpaePageTable.PageShift - 3);
    /// <summary>Command TG = 1: the 4 KiB translation granule.</summary>
    private const uint TlbiTg4K = 1;
    /// <summary>TLBI range NUM is 5 bits (the chunk count minus one); Linux takes 5 bits of the page count at a time.</summary>
    private const ulong TlbiRangeNumMax = 31;

    private readonly Dictionary<uint, ArmSmmuMaster> _masters = new();
    private readonly Dictionary<uint, ulong> _l2Tables = new();
    private readonly TagAllocator _vmids = new();

    public bool TwoLevel { get; private set; }
    public int StreamTableLog2Size { get; private set; }
    public ulong StreamTableBase { get; private set; }
    public ushort MaxVmid { get; }

    /// <summary>The largest ASID: 16-bit with IDR0.ASID16, else 8-bit (smmu->asid_bits).</summary>
    public ushort MaxAsid { get; }

    /// <summary>VMIDs in use on this SMMU, ascending.</summary>
    public IReadOnlyCollection<ushort> VmidsInUse => _vmids.InUse;

    /// <summary>The masters (devices) behind this SMMU, by StreamID.</summary>
    public IReadOnlyDictionary<uint, ArmSmmuMaster> Masters => _masters;

    private void InitStreamTable()
    {
        (TwoLevel, StreamTableLog2Size) = StreamTableGeometry(Features);
        if (TwoLevel)
        {
            ulong l1Bytes = (ulong)L1StreamTableDescriptor.Size << (StreamTableLog2Size - StrtabSplit);
            // Level-1 descriptors start invalid (zero): StreamIDs without a level-2 table are C_BAD_STREAMID.
            StreamTableBase = AllocateOrThrow(l1Bytes, l1Bytes, "stream table L1");
        }
        else
        {
            ulong bytes = (ulong)StreamTableEntry.Size << StreamTableLog2Size;
            StreamTableBase = AllocateOrThrow(bytes, bytes, "linear stream table");
            // arm_smmu_init_initial_stes: every STE aborts until a domain is attached.
            for (ulong sid = 0; sid < 1UL << StreamTableLog2Size; sid++) WriteSteWords(StreamTableBase + sid * StreamTableEntry.Size, AbortSte);
        }
    }

    /// <summary>STE word 0 [0] V.</summary>
    private const ulong SteValid = 1;

    /// <summary>The abort STE (arm_smmu_make_abort_ste): V = 1, Config = abort, nothing else (arm-smmu-v3.c; the KUnit vector in arm-smmu-v3-test.c: word 0 = 0x1).</summary>
    public static StreamTableEntry AbortSte => new(SteValid, 0, 0, 0);

    /// <summary>arm_smmu_probe_device: makes the master's StreamID usable (level-2 table) and aborting.</summary>
    public ArmSmmuMaster AddMaster(HostPciDevice device)
    {
        uint sid = device.Profile.StreamId;
        if (sid >> StreamTableLog2Size != 0 && StreamTableLog2Size < 32)
            throw new InvalidOperationException($"StreamID 0x{sid:X} of '{device.Name}' is beyond the 2^{StreamTableLog2Size}-entry stream table of SMMU '{Name}'.");
        if (TwoLevel) EnsureL2(sid);
        var master = new ArmSmmuMaster(this, device);
        // An ATS-capable endpoint registers its ATC with the SMMU itself (ATC_INV reaches it by StreamID).
        _masters.Add(sid, master);
        return master;
    }

    private void EnsureL2(uint sid)
    {
        uint l1Index = sid >> StrtabSplit;
        if (_l2Tables.ContainsKey(l1Index)) return;
        ulong l2Bytes = (ulong)StreamTableEntry.Size << StrtabSplit;
        ulong l2 = AllocateOrThrow(l2Bytes, l2Bytes, $"stream table L2[{l1Index}]");
        for (ulong i = 0; i < 1UL << StrtabSplit; i++) WriteSteWords(l2 + i * StreamTableEntry.Size, AbortSte);
        _l2Tables.Add(l1Index, l2);
        // Span = SPLIT + 1: the level-2 table holds 2^SPLIT STEs.
        var l1 = L1StreamTableDescriptor.Create(l2, StrtabSplit + 1);
        _host.Memory.WriteUInt64(StreamTableBase + (ulong)l1Index * L1StreamTableDescriptor.Size, l1.Word);
    }

    /// <summary>Host PA of the STE for <paramref name="sid"/>, or null when no level-2 table covers it.</summary>
    public ulong? SteAddress(uint sid)
    {
        if (sid >> StreamTableLog2Size != 0 && StreamTableLog2Size < 32) return null;
        if (!TwoLevel) return StreamTableBase + (ulong)sid * StreamTableEntry.Size;
        return _l2Tables.TryGetValue(sid >> StrtabSplit, out ulong l2)
            ? l2 + (ulong)(sid & ((1u << StrtabSplit) - 1)) * StreamTableEntry.Size
            : null;
    }

    /// <summary>The STE in the stream table for <paramref name="sid"/> (as the SMMU would fetch it), or null.</summary>
    public StreamTableEntry? ReadSte(uint sid)
    {
        if (SteAddress(sid) is not { } a) return null;
        Span<ulong> w = stackalloc ulong[StreamTableEntry.Words];
        for (int i = 0; i < w.Length; i++) w[i] = _host.Memory.ReadUInt64(a + (ulong)(i * sizeof(ulong)));
        return StreamTableEntry.FromWords(w);
    }

    /// <summary>
    /// arm_smmu_write_ste: installs <paramref name="ste"/> for <paramref name="sid"/>. A live STE
    /// is first made invalid and synced (break before make), then the new words are written with
    /// word 0 last, then CFGI_STE + CMD_SYNC.
    /// </summary>
    public void InstallSte(uint sid, in StreamTableEntry ste)
    {
        ulong address = SteAddress(sid) ?? throw new InvalidOperationException($"StreamID 0x{sid:X} has no STE on SMMU '{Name}'.");
        StreamTableEntry old = ReadSte(sid)!.Value;
        if (old == ste) return;
        if (old.V)
        {
            _host.Memory.WriteUInt64(address, 0);
            Submit([Command.CfgiSte(sid)], sync: true);
        }
        Span<ulong> words = stackalloc ulong[StreamTableEntry.Words];
        ste.CopyTo(words);
        for (int i = 1; i < words.Length; i++) _host.Memory.WriteUInt64(address + (ulong)(i * sizeof(ulong)), words[i]);
        _host.Memory.WriteUInt64(address, words[0]);
        Submit([Command.CfgiSte(sid)], sync: true);
    }

    private void WriteSteWords(ulong address, in StreamTableEntry ste)
    {
        Span<ulong> words = stackalloc ulong[StreamTableEntry.Words];
        ste.CopyTo(words);
        for (int i = 0; i < words.Length; i++)
        {
            if (words[i] != 0) _host.Memory.WriteUInt64(address + (ulong)(i * sizeof(ulong)), words[i]);
        }
    }

    // ------------------------------------------------------------------ VMIDs

    /// <summary>The lowest free VMID from 1 (0 is never used for a domain), or null when every VMID is taken.</summary>
    public ushort? AllocVmid() => _vmids.Allocate(MaxVmid);

    /// <summary>Frees a VMID after flushing every TLB entry tagged with it (TLBI_S12_VMALL + CMD_SYNC).</summary>
    public void FreeVmid(ushort vmid)
    {
        Submit([Command.TlbiS12Vmall(vmid)], sync: true);
        _vmids.Free(vmid);
    }

    // ------------------------------------------------------------------ invalidation

    /// <summary>
    /// The stage-2 part of arm_smmu_domain_inv_range (INV_TYPE_S2_VMID): invalidates
    /// translations of <c>[ipa, ipa + size)</c> tagged with <paramref name="vmid"/>: TLBI_S2_IPA
    /// per range (RIL) or per page, or TLBI_S12_VMALL when the range is large and RIL is absent.
    /// For a nest parent, every nested stage-1 translation combined with it is stale too:
    /// TLBI_NH_ALL for the VMID (INV_TYPE_S2_VMID_S1_CLEAR). Then CMD_SYNC.
    /// </summary>
    public void InvalidateStage2(ushort vmid, ulong ipa, ulong size, bool nestParent)
    {
        // On the stack: an IOAS unmap calls this once per area, a million times for a million
        // mappings. At most MaxTlbiOps page commands, or one range command per set bit of the page
        // count (each clears at least its lowest one), plus TLBI_NH_ALL.
        Span<Command> buffer = stackalloc Command[(int)MaxTlbiOps + 1];
        var commands = new CommandBuffer(buffer);
        RangeInvalidation(ref commands, RangeKind.S2Ipa, vmid, ipa, size, Command.TlbiS12Vmall(vmid));
        if (nestParent) commands.Add(Command.TlbiNhAll(vmid));
        SubmitBatched(commands.Written);
    }

    /// <summary>
    /// The stage-1 part of arm_smmu_domain_inv_range (INV_TYPE_S1_ASID): invalidates VAs of
    /// <c>[iova, iova + size)</c> tagged with <paramref name="asid"/>: TLBI_NH_VA (VMID 0, which
    /// the host's stage-1 STEs use) or TLBI_EL2_VA with E2H, per range or per page, or the whole
    /// ASID (TLBI_NH_ASID / TLBI_EL2_ASID) when the range is large and RIL is absent. Then CMD_SYNC.
    /// </summary>
    public void InvalidateStage1(ushort asid, ulong iova, ulong size)
    {
        Span<Command> buffer = stackalloc Command[(int)MaxTlbiOps + 1];
        var commands = new CommandBuffer(buffer);
        RangeInvalidation(ref commands, E2h ? RangeKind.El2Va : RangeKind.NhVa, asid, iova, size, AsidFlush(asid));
        SubmitBatched(commands.Written);
    }

    /// <summary>arm_smmu_inv_flush_iotlb_tag for INV_TYPE_S1_ASID: every entry of the ASID, then CMD_SYNC.</summary>
    public void FlushAsid(ushort asid) => Submit([AsidFlush(asid)], sync: true);

    private Command AsidFlush(ushort asid) => E2h ? Command.TlbiEl2Asid(asid) : Command.TlbiNhAsid(Stage1Vmid, asid);

    /// <summary>VMID 0: what the host's stage-1 STEs carry in S2VMID (arm_smmu_make_cdtable_ste), reserved for them.</summary>
    public const ushort Stage1Vmid = 0;

    /// <summary>Which address-based TLBI a range invalidation issues (an enum, not a delegate: no closure per call).</summary>
    private enum RangeKind { S2Ipa, NhVa, El2Va }

    private static Command RangeCommand(RangeKind kind, ushort tag, ulong address, bool leaf, uint tg, uint num, uint scale) => kind switch
    {
        RangeKind.S2Ipa => Command.TlbiS2Ipa(tag, address, leaf, tg, num: num, scale: scale),
        RangeKind.El2Va => Command.TlbiEl2Va(tag, address, leaf, tg, num: num, scale: scale),
        _ => Command.TlbiNhVa(Stage1Vmid, tag, address, leaf, tg, num: num, scale: scale),
    };

    /// <summary>
    /// The commands arm_smmu_inv_to_cmdq_batch issues for one tag (a VMID or an ASID): the whole
    /// tag when the range is too large without RIL (arm_smmu_inv_size_too_big), else
    /// arm_smmu_cmdq_batch_add_range's range or per-page commands.
    /// </summary>
    private void RangeInvalidation(ref CommandBuffer commands, RangeKind kind, ushort tag, ulong address, ulong size, Command whole)
    {
        ulong pages = size >> LpaePageTable.PageShift;
        if (!Features.Ril && pages >= MaxTlbiOps)
        {
            commands.Add(whole);
        }
        else if (Features.Ril)
        {
            // Range invalidation: each command covers (NUM + 1) * 2^SCALE pages from its address.
            // As arm_smmu_cmdq_batch_add_range does: SCALE is the lowest set bit of the remaining
            // page count and NUM its next five bits, so every command clears at least one of them.
            // The mappings may be blocks, so no TTL is given (non-leaf scope); NUM = SCALE = TTL = 0
            // with TG set is reserved (IHI 0070 4.4.1.1), so a lone page is widened to two, as
            // Linux does for the same case.
            if ((pages & TlbiRangeNumMax) == 1) pages++;
            ulong va = address;
            while (pages > 0)
            {
                int scale = System.Numerics.BitOperations.TrailingZeroCount(pages);
                ulong num = (pages >> scale) & TlbiRangeNumMax;
                commands.Add(RangeCommand(kind, tag, va, false, TlbiTg4K, (uint)(num - 1), (uint)scale));
                ulong covered = num << scale;
                pages -= covered;
                va += covered << LpaePageTable.PageShift;
            }
        }
        else
        {
            for (ulong p = 0; p < pages; p++) commands.Add(RangeCommand(kind, tag, address + (p << LpaePageTable.PageShift), true, 0, 0, 0));
        }
    }

    /// <summary>Commands appended into caller-provided memory.</summary>
    private ref struct CommandBuffer(Span<Command> memory)
    {
        private readonly Span<Command> _memory = memory;
        private int _count;

        public readonly ReadOnlySpan<Command> Written => _memory[.._count];

        public void Add(Command c) => _memory[_count++] = c;
    }

    /// <summary>ATC_INV of everything the master's ATC holds (every PASID), then CMD_SYNC.</summary>
    public void InvalidateAtc(uint sid) =>
        Submit([Command.AtcInv(sid, null, 0, AtcInvSizeAll, global: true)], sync: true);

    /// <summary>Submits commands in batches of <see cref="CmdqBatchEntries"/> - 1, each followed by CMD_SYNC.</summary>
    public void SubmitBatched(ReadOnlySpan<Command> commands)
    {
        const int perBatch = CmdqBatchEntries - 1;
        Span<Command> batch = stackalloc Command[perBatch];
        int n = 0;
        foreach (Command c in commands)
        {
            batch[n++] = c;
            if (n == perBatch)
            {
                Submit(batch, sync: true);
                n = 0;
            }
        }
        if (n > 0) Submit(batch[..n], sync: true);
    }

    /// <summary>Number of level-2 stream tables allocated (diagnostics).</summary>
    public int Level2Tables => _l2Tables.Count;
}
