namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>The command queue (IHI 0070 3.5, 4.1.3, 7.1): consumption, errors and recovery, wrap, CMD_SYNC completion.</summary>
public class CommandQueueTests
{
    private const ulong MsiA = 0x0800_0000, MsiB = 0x0800_0010, MsiC = 0x0800_0020;

    private static Command SyncMsi(ulong address, uint data) => Command.Sync(SyncSignal.Irq, address, data);

    public static TheoryData<string> BadCommands() => new(BadCommandTable.Keys);

    private static readonly Dictionary<string, (SmmuFeatures Features, Command Command)> BadCommandTable = new()
    {
        ["unknown opcode 0x7F"] = (new SmmuFeatures(), new Command(0x7F, 0)),
        ["opcode 0x00"] = (new SmmuFeatures(), new Command(0, 0)),
        ["CFGI_VMS_PIDM (not implemented)"] = (new SmmuFeatures(), new Command(0x07, 0)),
        ["CFGI_STE with SSID bits set"] = (new SmmuFeatures(), Command.CfgiSte(1) with { W0 = Command.CfgiSte(1).W0 | (5UL << 12) }),
        ["CFGI_STE with RES0 word-1 bits"] = (new SmmuFeatures(), Command.CfgiSte(1) with { W1 = 0x10 }),
        ["CFGI_STE with SSec = 1"] = (new SmmuFeatures(), Command.CfgiSte(1) with { W0 = Command.CfgiSte(1).W0 | (1UL << 10) }),
        ["TLBI_NH_ALL with an ASID"] = (new SmmuFeatures(), Command.TlbiNhAll(1) with { W0 = Command.TlbiNhAll(1).W0 | (1UL << 48) }),
        ["TLBI_S2_IPA on a stage-1-only SMMU"] = (new SmmuFeatures { Stage2 = false }, Command.TlbiS2Ipa(1, 0x1000)),
        ["TLBI_S12_VMALL on a stage-1-only SMMU"] = (new SmmuFeatures { Stage2 = false }, Command.TlbiS12Vmall(1)),
        ["TLBI_NH_ALL on a stage-2-only SMMU"] = (new SmmuFeatures { Stage1 = false }, Command.TlbiNhAll(0)),
        ["CFGI_CD on a stage-2-only SMMU"] = (new SmmuFeatures { Stage1 = false }, Command.CfgiCd(1, 0)),
        ["TLBI_EL2_ALL without IDR0.Hyp"] = (new SmmuFeatures(), Command.TlbiEl2All()),
        ["ATC_INV without ATS"] = (new SmmuFeatures(), Command.AtcInv(1, null, 0, 0)),
        ["ATC_INV with a SubstreamID and no substreams"] = (new SmmuFeatures { Ats = true }, Command.AtcInv(1, 3, 0, 0)),
        ["PRI_RESP without PRI"] = (new SmmuFeatures(), Command.PriResp(1, null, 0, 0)),
        ["CMD_SYNC with CS = 0b11"] = (new SmmuFeatures(), new Command(0x46 | (3UL << 12), 0)),
        ["TLBI_NH_VA range with NUM = SCALE = TTL = 0 (4.4.1.1)"] = (new SmmuFeatures(), Command.TlbiNhVa(1, 1, 0x1000, tg: 1)),
        ["TLBI_S2_IPA range with NUM = SCALE = TTL = 0 (4.4.1.1)"] = (new SmmuFeatures(), Command.TlbiS2Ipa(1, 0x1000, tg: 3)),
    };

    [Theory]
    [MemberData(nameof(BadCommands))]
    public void IllegalCommandStopsTheQueueUntilAcknowledged(string name)
    {
        var (features, bad) = BadCommandTable[name];
        var h = new SmmuHarness(features with { OasBits = 48, Msi = true });
        h.Submit(SyncMsi(MsiA, 1), bad, SyncMsi(MsiB, 2));
        SmmuHarness.ReadLe32(h.Memory, MsiA).ShouldBe(1u, "commands before the bad one completed");
        SmmuHarness.ReadLe32(h.Memory, MsiB).ShouldBe(0u, "commands after it did not run");
        uint cons = h.CmdqCons;
        (cons & h.CmdqMask).ShouldBe(1u, "CONS points at the bad command");
        ((cons >> 24) & 0x7F).ShouldBe(1u, "CMDQ_CONS.ERR = CERROR_ILL");
        h.Smmu.CommandQueueError.ShouldBe(CommandError.CERROR_ILL);
        uint gerror = h.Read(SmmuRegister.GERROR);
        ((gerror ^ h.Read(SmmuRegister.GERRORN)) & SmmuHarness.GERROR_CMDQ_ERR).ShouldBe(SmmuHarness.GERROR_CMDQ_ERR);

        // More commands published while the error is active are not consumed.
        h.Submit(SyncMsi(MsiC, 3));
        SmmuHarness.ReadLe32(h.Memory, MsiC).ShouldBe(0u);
        (h.CmdqCons & h.CmdqMask).ShouldBe(1u);

        // Recovery as Linux does it: replace the bad command by a CMD_SYNC, then acknowledge GERROR.CMDQ_ERR.
        h.WriteCommandAt(1, Command.Sync());
        h.Write(SmmuRegister.GERRORN, gerror);
        SmmuHarness.ReadLe32(h.Memory, MsiB).ShouldBe(2u);
        SmmuHarness.ReadLe32(h.Memory, MsiC).ShouldBe(3u);
        h.CmdqCons.ShouldBe(h.CmdqProd, "drained, ERR clear");
        h.Smmu.GlobalErrors.ShouldBe(0u);
    }

    [Fact]
    public void AcknowledgingWithoutFixingStopsAgainOnTheSameCommand()
    {
        var h = new SmmuHarness();
        h.Submit(new Command(0x7F, 0), Command.Sync());
        uint gerror = h.Read(SmmuRegister.GERROR);
        h.Write(SmmuRegister.GERRORN, gerror);
        ((h.Read(SmmuRegister.GERROR) ^ h.Read(SmmuRegister.GERRORN)) & SmmuHarness.GERROR_CMDQ_ERR).ShouldBe(SmmuHarness.GERROR_CMDQ_ERR);
        (h.CmdqCons & h.CmdqMask).ShouldBe(0u);
        ((h.CmdqCons >> 24) & 0x7F).ShouldBe(1u);
        h.Smmu.Counters.CommandErrors.ShouldBe(2);
    }

    [Fact]
    public void CommandFetchAbortIsCerrorAbt()
    {
        var h = new SmmuHarness(cmdqLog2: 4);
        h.Memory.AddAbortRange(SmmuHarness.CmdqBase + 2 * 16, 16);
        h.Submit(Command.Sync(), Command.Sync(), Command.Sync());
        (h.CmdqCons & h.CmdqMask).ShouldBe(2u);
        ((h.CmdqCons >> 24) & 0x7F).ShouldBe(2u, "CERROR_ABT");
    }

    [Fact]
    public void QueueOfFourWrapsOverSeveralRounds()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, Msi = true }, cmdqLog2: 2);
        uint expectedPointer = 0;
        uint data = 0;
        for (int round = 0; round < 7; round++)
        {
            int n = 1 + round % 4;
            var commands = new Command[n];
            for (int i = 0; i < n; i++) commands[i] = SyncMsi(MsiA + (ulong)(4 * i), ++data);
            h.Submit(commands);
            expectedPointer = (expectedPointer + (uint)n) & 0b111; // index [1:0], wrap bit [2]
            h.CmdqProd.ShouldBe(expectedPointer, $"round {round}");
            h.CmdqCons.ShouldBe(expectedPointer, $"round {round}");
            SmmuHarness.ReadLe32(h.Memory, MsiA + (ulong)(4 * (n - 1))).ShouldBe(data);
        }
        h.Smmu.Counters.Syncs.ShouldBe(data);
    }

    [Fact]
    public void ProdBeyondTheQueueSizeIsMasked()
    {
        var h = new SmmuHarness(cmdqLog2: 2);
        h.Write(SmmuRegister.CMDQ_PROD, 0xFFF0_0001);
        h.CmdqProd.ShouldBe(1u);
    }

    [Fact]
    public void QueueDoesNotRunWhileDisabledAndCatchesUpWhenEnabled()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, Msi = true }, enable: false);
        h.Submit(SyncMsi(MsiA, 9));
        SmmuHarness.ReadLe32(h.Memory, MsiA).ShouldBe(0u);
        h.CmdqCons.ShouldBe(0u);
        h.Write(SmmuRegister.CR0, SmmuHarness.CR0_CMDQEN);
        h.Read(SmmuRegister.CR0ACK).ShouldBe(SmmuHarness.CR0_CMDQEN);
        SmmuHarness.ReadLe32(h.Memory, MsiA).ShouldBe(9u);
        // CONS is the SMMU's: software writes are ignored while the queue is enabled, accepted while disabled.
        h.Write(SmmuRegister.CMDQ_CONS, 0);
        h.CmdqCons.ShouldBe(1u);
        h.Write(SmmuRegister.CR0, 0);
        h.Write(SmmuRegister.CMDQ_CONS, 0);
        h.CmdqCons.ShouldBe(0u);
    }

    [Fact]
    public void CmdSyncSignals()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, Msi = true });
        var raised = new List<SmmuInterrupt>();
        h.Smmu.InterruptRaised += raised.Add;
        h.Submit(Command.Sync(SyncSignal.None, MsiA, 5), Command.Sync(SyncSignal.Sev, MsiB, 6));
        SmmuHarness.ReadLe32(h.Memory, MsiA).ShouldBe(0u);
        SmmuHarness.ReadLe32(h.Memory, MsiB).ShouldBe(0u);
        h.Submit(Command.Sync(SyncSignal.Irq, MsiC, 0xDEAD_BEEF));
        SmmuHarness.ReadLe32(h.Memory, MsiC).ShouldBe(0xDEAD_BEEFu);
        raised.ShouldBeEmpty();
        h.Smmu.Counters.Syncs.ShouldBe(3);

        // Without MSI support, CS = SIG_IRQ raises the wired CMD_SYNC interrupt.
        var wired = new SmmuHarness(new SmmuFeatures { OasBits = 48, Msi = false });
        var wiredRaised = new List<SmmuInterrupt>();
        wired.Smmu.InterruptRaised += wiredRaised.Add;
        wired.Submit(Command.Sync(SyncSignal.Irq));
        wiredRaised.ShouldBe([SmmuInterrupt.CmdSync]);
    }

    [Fact]
    public void CmdSyncMsiToAnAbortingAddressRaisesMsiCmdqAbtErr()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, Msi = true });
        h.Memory.AddAbortRange(MsiA, 4);
        h.Submit(SyncMsi(MsiA, 1));
        (h.Smmu.GlobalErrors & SmmuV3.GERROR_MSI_CMDQ_ABT_ERR).ShouldBe(SmmuV3.GERROR_MSI_CMDQ_ABT_ERR);
        h.CmdqCons.ShouldBe(h.CmdqProd, "the sync itself completed");
    }

    [Fact]
    public void ResponsesAndPrefetchesAreAccepted()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, Pri = true, Ats = true, SsidBits = 8 });
        h.SubmitAndSync(
            Command.PriResp(3, 5, 0x1FF, 1),
            Command.PriResp(3, null, 7, 2),
            Command.Resume(3, 0x1234, 1),
            new Command(0x45 | (3UL << 32), 0), // STALL_TERM
            Command.PrefetchConfig(3),
            new Command(0x02 | (3UL << 32), 0x4000_0000 | 5)); // PREFETCH_ADDR
        h.Smmu.Counters.CommandsExecuted.ShouldBe(7);
        h.Smmu.CachedStreamCount.ShouldBe(0, "prefetches are hints: nothing fetched");
        h.Smmu.Tlb.Count.ShouldBe(0);
    }
}
