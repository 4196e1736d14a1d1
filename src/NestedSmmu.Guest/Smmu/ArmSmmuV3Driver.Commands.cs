using System.Numerics;
using NestedSmmu.Hardware.Smmu;
using static NestedSmmu.Guest.Smmu.LinuxSmmuV3Constants;

namespace NestedSmmu.Guest.Smmu;

public sealed partial class ArmSmmuV3Driver
{
    /// <summary>Counters of the SMMU's own queue (the trapped path in a VM).</summary>
    public CommandPathCounters SmmuQueueCounters => _cmdq?.Counters ?? new CommandPathCounters();

    /// <summary>Queue errors seen and recovered, in order (CONS.ERR, the command at CONS).</summary>
    public List<(string Queue, CommandError Error, Command Command)> QueueErrors { get; } = new();

    /// <summary>
    /// Issues <paramref name="commands"/> in batches and ends with a CMD_SYNC, as Linux's
    /// arm_smmu_cmdq_batch_add/submit: a batch goes to the queue chosen for its first command (a
    /// secondary VCMDQ when one takes it, else the SMMU's queue); a command that queue cannot carry
    /// closes the batch with a sync and opens a new one; a full batch is published without a sync
    /// and the batch carries on in the same queue.
    /// False when a sync did not complete.
    /// </summary>
    public bool IssueCommandsWithSync(ReadOnlySpan<Command> commands)
    {
        if (_cmdq is null) throw new InvalidOperationException($"{Name}: commands before Reset().");
        if (commands.IsEmpty) return true;
        bool ok = true;
        Span<Command> batch = stackalloc Command[CMDQ_BATCH_ENTRIES];
        int n = 0;
        GuestCommandQueue queue = SelectQueue(commands[0]);
        foreach (var cmd in commands)
        {
            if (!queue.Supports(cmd))
            {
                ok &= queue.Issue(batch[..n], sync: true);
                n = 0;
                queue = SelectQueue(cmd);
            }
            if (n == CMDQ_BATCH_ENTRIES)
            {
                // Published without a sync, so the batch stays on this queue: the sync that ends it
                // must follow these commands on the same queue.
                ok &= queue.Issue(batch[..n], sync: false);
                n = 0;
            }
            batch[n++] = cmd;
        }
        ok &= queue.Issue(batch[..n], sync: true);
        if (!ok) Log.Error(Name, $"CMD_SYNC timeout on {queue.Name} (prod 0x{queue.Prod:X})");
        return ok;
    }

    private GuestCommandQueue SelectQueue(in Command first) => SecondaryQueues?.GetSecondaryQueue(first) ?? _cmdq!;

    /// <summary>
    /// TLB invalidation of [iova, iova + size) in a stage-1 domain after its tables changed
    /// (arm_smmu_tlb_inv_range_domain), then ATC_INV for its ATS masters.
    /// With IDR3.RIL: range TLBI_NH_VA commands, TG = the 4 KiB leaf granule, TTL from the
    /// <paramref name="granule"/> of the removed leaves, and NUM/SCALE covering up to 32 x 2^SCALE
    /// pages each (IHI 0070 4.4.1.1). Without it: one TLBI_NH_VA per <paramref name="granule"/>.
    /// </summary>
    public bool InvalidateRange(SmmuDomain domain, ulong iova, ulong size, ulong granule, bool leaf = true)
    {
        ArgumentNullException.ThrowIfNull(domain);
        var cmds = BuildTlbiRange(domain.Asid, iova, size, granule, leaf, Features.Ril);
        bool ok = IssueCommandsWithSync(cmds.ToArray());
        return InvalidateAtc(domain, iova, size) && ok;
    }

    /// <summary>Every TLB entry of the domain's ASID (arm_smmu_tlb_inv_context: TLBI_NH_ASID + sync), then its ATCs.</summary>
    public bool InvalidateAsid(SmmuDomain domain)
    {
        ArgumentNullException.ThrowIfNull(domain);
        bool ok = IssueCommandsWithSync([Command.TlbiNhAsid(0, domain.Asid)]);
        return InvalidateAtc(domain, 0, 0) && ok;
    }

    /// <summary>
    /// ATC_INV for every ATS master of the domain (arm_smmu_atc_inv_domain): the smallest naturally
    /// aligned power-of-two span of 4 KiB pages covering the range, or everything (Size = 52) when
    /// <paramref name="size"/> is 0.
    /// </summary>
    public bool InvalidateAtc(SmmuDomain domain, ulong iova, ulong size)
    {
        var cmds = new List<Command>();
        foreach (var m in domain.Masters)
        {
            if (m.AtsEnabled) cmds.Add(BuildAtcInv(m.StreamId, iova, size));
        }
        return cmds.Count == 0 || IssueCommandsWithSync(cmds.ToArray());
    }

    /// <summary>The ATC_INV command for a range (arm_smmu_atc_inv_to_cmd); size 0 means the whole space.</summary>
    public static Command BuildAtcInv(uint sid, ulong iova, ulong size)
    {
        const int atcGrainShift = 12;
        const uint atcInvalidateAll = 52;
        if (size == 0) return Command.AtcInv(sid, null, 0, atcInvalidateAll);
        ulong pageStart = iova >> atcGrainShift;
        ulong pageEnd = (iova + size - 1) >> atcGrainShift;
        // The span is the highest bit where the first and last pages differ: a power-of-two,
        // naturally aligned block of pages that holds both.
        int log2Span = 64 - BitOperations.LeadingZeroCount(pageStart ^ pageEnd);
        ulong spanMask = log2Span >= 64 ? ulong.MaxValue : (1UL << log2Span) - 1;
        pageStart &= ~spanMask;
        return Command.AtcInv(sid, null, pageStart << atcGrainShift, (uint)log2Span);
    }

    /// <summary>
    /// The TLBI_NH_VA commands for a range, as __arm_smmu_tlb_inv_range builds them. Range form: the
    /// leaf granule TG (4 KiB: 1), TTL = 4 - (log2(granule) - 3) / (log2(page) - 3) for leaf
    /// invalidations, and per command SCALE = the lowest set bit of the remaining page count and
    /// NUM + 1 = the next up-to-5 bits of it.
    /// </summary>
    public static List<Command> BuildTlbiRange(ushort asid, ulong iova, ulong size, ulong granule, bool leaf, bool rangeInvalidation)
    {
        const int pageShift = GuestPageAllocator.PageShift;
        const uint numMax = 0x1F; // CMDQ_TLBI_RANGE_NUM_MAX: NUM is five bits
        var cmds = new List<Command>();
        if (size == 0) return cmds;
        if (!BitOperations.IsPow2(granule) || granule < GuestPageAllocator.PageSize)
            throw new ArgumentOutOfRangeException(nameof(granule), $"Granule 0x{granule:X} is not a power of two of at least 4 KiB.");
        ulong end = iova + size;
        if (!rangeInvalidation)
        {
            for (ulong a = iova; a < end; a += granule) cmds.Add(Command.TlbiNhVa(0, asid, a, leaf));
            return cmds;
        }
        uint tg = (pageShift - 10) / 2;
        uint ttl = 0;
        ulong numPages = size >> pageShift;
        if (leaf) ttl = (uint)(4 - ((BitOperations.Log2(granule) - 3) / (pageShift - 3)));
        // A non-leaf range of exactly one page per chunk with TTL = 0 would encode NUM = SCALE = TTL = 0,
        // which is Reserved; Linux widens it by a page.
        else if ((numPages & numMax) == 1) numPages++;
        ulong address = iova;
        while (numPages != 0)
        {
            int scale = BitOperations.TrailingZeroCount(numPages);
            ulong num = (numPages >> scale) & numMax;
            cmds.Add(Command.TlbiNhVa(0, asid, address, leaf, tg, ttl, (uint)(num - 1), (uint)scale));
            ulong pages = num << scale;
            address += pages << pageShift;
            numPages -= pages;
        }
        return cmds;
    }

    /// <summary>
    /// Recovers a stopped command queue (arm_smmu_cmdq_skip_err, then the GERROR acknowledgement
    /// of arm_smmu_gerror_handler): an illegal command is overwritten by a CMD_SYNC so the queue can
    /// move on; a fetch abort or ATC invalidation timeout is retried as is.
    /// </summary>
    private void OnCommandQueueError(GuestCommandQueue queue, CommandError error, uint cons)
    {
        RecordQueueError(queue, error, cons);
        HandleGlobalErrors();
    }

    /// <summary>The common part of arm_smmu_cmdq_skip_err, shared with the CMDQV driver's VCMDQs.</summary>
    public void RecordQueueError(GuestCommandQueue queue, CommandError error, uint cons)
    {
        var bad = queue.ReadEntry(cons);
        QueueErrors.Add((queue.Name, error, bad));
        string reason = error switch
        {
            CommandError.CERROR_ILL => "Illegal command",
            CommandError.CERROR_ABT => "Abort on command fetch",
            CommandError.CERROR_ATC_INV_SYNC => "ATC invalidate timeout",
            _ => "Unknown",
        };
        Log.Error(Name, $"{queue.Name}: CMDQ error (cons 0x{cons:X8}): {reason}");
        switch (error)
        {
            case CommandError.CERROR_ABT:
                Log.Error(Name, "retrying command fetch");
                return;
            case CommandError.CERROR_ATC_INV_SYNC:
                // CONS points at the CMD_SYNC: repeating it retries the completion.
                return;
        }
        Log.Error(Name, $"skipping command in error state: 0x{bad.W0:X16} 0x{bad.W1:X16}");
        queue.WriteEntry(cons, Command.Sync(SyncSignal.None));
    }
}
