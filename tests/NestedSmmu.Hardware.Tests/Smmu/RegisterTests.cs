namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>The SMMU register frame (IHI 0070 6.2, 6.3): ID registers, 64-bit registers and their halves, aliases, robustness.</summary>
public class RegisterTests
{
    [Fact]
    public void QemuVirtNestedIdRegistersMatchQemu()
    {
        // QEMU's virt SMMUv3 with stage=nested (QEMU hw/arm/smmuv3.c, smmuv3_init_id_regs; the probe scenarios' "idr").
        var smmu = new SmmuV3(new SparseMemory(), SmmuFeatures.QemuVirtNested);
        smmu.Read(0x00, 4).ShouldBe(0x0D44101BUL);
        smmu.Read(0x04, 4).ShouldBe(0x02730010UL);
        smmu.Read(0x0C, 4).ShouldBe(0x1414UL);
        smmu.Read(0x14, 4).ShouldBe(0x74UL);
        var f = SmmuFeatures.QemuVirtNested;
        (f.Stage1, f.Stage2, f.SidBits, f.SsidBits, f.OasBits, f.Ril, f.StallModel, f.TermModel, f.Httu)
            .ShouldBe((true, true, 16, 0, 44, true, 1, true, 0));
        f.Idrs.ShouldBe([0x0D44101Bu, 0x02730010u, 0u, 0x1414u, 0u, 0x74u]);
    }

    [Fact]
    public void FeaturesRoundTripThroughIdRegisters()
    {
        var rng = new Random(7);
        for (int i = 0; i < 200; i++)
        {
            var f = new SmmuFeatures
            {
                Stage1 = rng.Next(2) == 1, Stage2 = true, Ats = rng.Next(2) == 1, Hyp = rng.Next(2) == 1, Ril = rng.Next(2) == 1,
                Pri = rng.Next(2) == 1, Msi = rng.Next(2) == 1, Httu = rng.Next(3), Asid16 = rng.Next(2) == 1, Vmid16 = rng.Next(2) == 1,
                StallModel = rng.Next(3), SidBits = rng.Next(33), SsidBits = rng.Next(21), OasBits = new[] { 32, 36, 40, 42, 44, 48, 52 }[rng.Next(7)],
                Gran4K = rng.Next(2) == 1, Gran16K = rng.Next(2) == 1, Gran64K = true, CmdqLog2Max = rng.Next(20), EventqLog2Max = rng.Next(20),
                Vax = rng.Next(2),
            };
            var back = SmmuFeatures.FromIdrs(f.Idr0, f.Idr1, f.Idr3, f.Idr5);
            back.Idrs.ShouldBe(f.Idrs);
            back.ShouldBe(f);
        }
    }

    public static TheoryData<SmmuRegister, ulong> SixtyFourBitRegisters() => new()
    {
        // register, writable mask (IHI 0070 6.3)
        { SmmuRegister.GERROR_IRQ_CFG0, 0x000F_FFFF_FFFF_FFFC },
        { SmmuRegister.STRTAB_BASE, 0x400F_FFFF_FFFF_FFC0 },
        { SmmuRegister.CMDQ_BASE, 0x400F_FFFF_FFFF_FFFF },
        { SmmuRegister.EVENTQ_BASE, 0x400F_FFFF_FFFF_FFFF },
        { SmmuRegister.EVENTQ_IRQ_CFG0, 0x000F_FFFF_FFFF_FFFC },
        { SmmuRegister.PRIQ_BASE, 0x400F_FFFF_FFFF_FFFF },
        { SmmuRegister.PRIQ_IRQ_CFG0, 0x000F_FFFF_FFFF_FFFC },
    };

    [Theory]
    [MemberData(nameof(SixtyFourBitRegisters))]
    public void SixtyFourBitRegistersAreTwoIndependentlyWritableHalves(SmmuRegister register, ulong mask)
    {
        // PRI implemented, so the PRIQ registers exist (with IDR0.PRI = 0 they are RES0, 6.3.30-6.3.34).
        var smmu = new SmmuV3(new SparseMemory(), new SmmuFeatures { Pri = true, PriqLog2Max = 19 });
        ulong r = (ulong)register;
        const ulong value = 0xF7E6_D5C4_B3A2_9180;
        smmu.Write(r, 8, value);
        smmu.Read(r, 8).ShouldBe(value & mask);
        smmu.Read(r, 4).ShouldBe(value & mask & 0xFFFF_FFFF);
        smmu.Read(r + 4, 4).ShouldBe((value & mask) >> 32);
        // Low half, then high half (6.2: "All 64-bit fields are composed of two separately-writable 32-bit halves").
        smmu.Write(r, 8, 0);
        smmu.Write(r, 4, 0x1234_5678_FFFF_FFFF); // a 32-bit write takes the low 32 bits of the value
        smmu.Read(r, 8).ShouldBe(0xFFFF_FFFFUL & mask);
        smmu.Write(r + 4, 4, 0x0000_0000_0003_0001);
        smmu.Read(r, 8).ShouldBe(0x0003_0001_FFFF_FFFFUL & mask);
        smmu.Write(r, 4, 0);
        smmu.Read(r, 8).ShouldBe(0x0003_0001_0000_0000UL & mask, "writing one half keeps the other");
    }

    [Fact]
    public void SixtyFourBitAccessToAPairOfThirtyTwoBitRegisters()
    {
        var h = new SmmuHarness(enable: false);
        // IDR0 and IDR1 read together; CMDQ_PROD and CMDQ_CONS written together (6.2 permits either behaviour; the model does both halves).
        h.Smmu.Read(0x0, 8).ShouldBe(h.Features.Idr0 | ((ulong)h.Features.Idr1 << 32));
        h.Smmu.Write((ulong)SmmuRegister.CMDQ_PROD, 8, 0x0000_0003_0000_0002);
        h.CmdqProd.ShouldBe(2u);
        h.CmdqCons.ShouldBe(3u);
        h.Smmu.Read((ulong)SmmuRegister.CMDQ_PROD, 8).ShouldBe(0x0000_0003_0000_0002UL);
    }

    [Fact]
    public void ReadOnlyRegistersIgnoreWrites()
    {
        var smmu = new SmmuV3(new SparseMemory(), SmmuFeatures.QemuVirtNested);
        foreach (var r in new[] { SmmuRegister.IDR0, SmmuRegister.IDR1, SmmuRegister.IDR2, SmmuRegister.IDR3, SmmuRegister.IDR4,
                     SmmuRegister.IDR5, SmmuRegister.IIDR, SmmuRegister.AIDR, SmmuRegister.CR0ACK, SmmuRegister.IRQ_CTRLACK,
                     SmmuRegister.GERROR, SmmuRegister.STATUSR })
        {
            ulong before = smmu.Read((ulong)r, 4);
            smmu.Write((ulong)r, 4, 0xFFFF_FFFF);
            smmu.Read((ulong)r, 4).ShouldBe(before, r.ToString());
        }
    }

    [Theory]
    [InlineData(SmmuRegister.PRIQ_BASE, 8)]
    [InlineData(SmmuRegister.PRIQ_PROD, 4)]
    [InlineData(SmmuRegister.PRIQ_CONS, 4)]
    [InlineData(SmmuRegister.PRIQ_IRQ_CFG0, 8)]
    [InlineData(SmmuRegister.PRIQ_IRQ_CFG1, 4)]
    [InlineData(SmmuRegister.PRIQ_IRQ_CFG2, 4)]
    public void Priq_registers_are_res0_without_pri(SmmuRegister register, int width)
    {
        // IHI 0070 6.3.30-6.3.34: the PRI queue registers are RES0 when SMMU_IDR0.PRI == 0.
        var smmu = new SmmuV3(new SparseMemory(), new SmmuFeatures { Pri = false });
        smmu.Write((ulong)register, width, 0x5);
        smmu.Read((ulong)register, width).ShouldBe(0UL);
    }

    [Fact]
    public void Page1AliasesTheQueuePointers()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, Pri = true, PriqLog2Max = 19 }, eventqLog2: 4);
        h.Write(SmmuRegister.EVENTQ_CONS_PAGE1, 5);
        h.Read(SmmuRegister.EVENTQ_CONS).ShouldBe(5u);
        h.Write(SmmuRegister.EVENTQ_CONS, 6);
        h.Read(SmmuRegister.EVENTQ_CONS_PAGE1).ShouldBe(6u);
        h.Write(SmmuRegister.PRIQ_CONS_PAGE1, 7);
        h.Read(SmmuRegister.PRIQ_CONS).ShouldBe(7u);
        // The rest of page 1 is reserved: RAZ/WI.
        h.Smmu.Write(0x10000 + (ulong)SmmuRegister.CR0, 4, 0);
        h.Read(SmmuRegister.CR0).ShouldNotBe(0u);
        h.Smmu.Read(0x10000 + (ulong)SmmuRegister.IDR0, 4).ShouldBe(0UL);
    }

    [Fact]
    public void GuardedRegistersKeepTheirValueWhileEnabled()
    {
        var h = new SmmuHarness();
        ulong strtab = h.Read64(SmmuRegister.STRTAB_BASE), cmdq = h.Read64(SmmuRegister.CMDQ_BASE), evtq = h.Read64(SmmuRegister.EVENTQ_BASE);
        uint cfg = h.Read(SmmuRegister.STRTAB_BASE_CFG);
        h.Write64(SmmuRegister.STRTAB_BASE, 0x7000_0000);
        h.Write(SmmuRegister.STRTAB_BASE_CFG, 0x1_0208);
        h.Write64(SmmuRegister.CMDQ_BASE, 0x7100_0003);
        h.Write64(SmmuRegister.EVENTQ_BASE, 0x7200_0003);
        (h.Read64(SmmuRegister.STRTAB_BASE), h.Read(SmmuRegister.STRTAB_BASE_CFG), h.Read64(SmmuRegister.CMDQ_BASE), h.Read64(SmmuRegister.EVENTQ_BASE))
            .ShouldBe((strtab, cfg, cmdq, evtq));
    }

    [Fact]
    public void GerrornAcknowledgesOnlyActiveErrors()
    {
        var h = new SmmuHarness();
        h.Submit(new Command(0x7F, 0));
        uint gerror = h.Read(SmmuRegister.GERROR);
        (gerror & SmmuHarness.GERROR_CMDQ_ERR).ShouldBe(SmmuHarness.GERROR_CMDQ_ERR);
        h.Write(SmmuRegister.GERRORN, 0); // acknowledges nothing: GERRORN already 0
        h.Smmu.GlobalErrors.ShouldBe(SmmuHarness.GERROR_CMDQ_ERR);
        h.WriteCommandAt(0, Command.Sync());
        h.Write(SmmuRegister.GERRORN, gerror);
        h.Read(SmmuRegister.GERRORN).ShouldBe(gerror);
        h.Smmu.GlobalErrors.ShouldBe(0u);
        // A second error toggles GERROR back.
        h.Submit(new Command(0x7E, 0));
        (h.Read(SmmuRegister.GERROR) ^ h.Read(SmmuRegister.GERRORN)).ShouldBe(SmmuHarness.GERROR_CMDQ_ERR);
    }

    [Fact]
    public void EveryOffsetOfTheFrameToleratesRandomAccessesOfEveryWidth()
    {
        var rng = new Random(0x5EED);
        foreach (var features in new[] { SmmuFeatures.QemuVirtNested, new SmmuFeatures { OasBits = 52, Hyp = true, Ats = true, Pri = true, SsidBits = 20, Httu = 2 } })
        {
            var memory = new SparseMemory();
            var smmu = new SmmuV3(memory, features);
            for (ulong offset = 0; offset < SmmuRegisters.FrameSize; offset += 4)
            {
                smmu.Write(offset, 4, (ulong)rng.NextInt64());
                _ = smmu.Read(offset, 4);
                _ = smmu.Read(offset, 8);
                smmu.Write(offset, 8, (ulong)rng.NextInt64());
                smmu.Write(offset + 1, 4, (ulong)rng.NextInt64()); // unaligned
                smmu.Write(offset, 2, 0xFFFF);                      // width the SMMU does not take
                _ = smmu.Read(offset + 2, 8);
            }
            foreach (ulong beyond in new ulong[] { SmmuRegisters.FrameSize, SmmuRegisters.FrameSize + 4, ulong.MaxValue - 3 })
            {
                smmu.Write(beyond, 4, 1);
                smmu.Read(beyond, 4).ShouldBe(0UL);
            }
            // After the storm the device still translates (or faults) without throwing.
            for (int i = 0; i < 200; i++) _ = smmu.Translate((uint)rng.Next(), rng.Next(3) == 0 ? (uint)rng.Next(1 << 20) : null, (ulong)rng.NextInt64(), (AccessKind)rng.Next(2));
        }
    }

    [Fact]
    public void RandomStructuresInMemoryNeverThrow()
    {
        // Random STEs, CDs, L1 descriptors and page tables: every translation ends as a success, a fault or an abort.
        var rng = new Random(1234);
        for (int round = 0; round < 20; round++)
        {
            var features = new SmmuFeatures
            {
                OasBits = new[] { 40, 44, 48, 52 }[rng.Next(4)], SsidBits = rng.Next(2) * 8, Hyp = rng.Next(2) == 1, Ats = rng.Next(2) == 1,
                Httu = rng.Next(3), StallModel = rng.Next(3), Ril = rng.Next(2) == 1,
            };
            var h = new SmmuHarness(features, twoLevelStreamTable: rng.Next(2) == 1, streamIdBits: 10, split: 6 + 2 * rng.Next(3),
                cr2: (uint)rng.Next(8));
            // Region of "structures": random words, with plausible bits forced on often.
            var words = new ulong[0x8000];
            for (int i = 0; i < words.Length; i++)
            {
                ulong w = (ulong)rng.NextInt64() & ((1UL << rng.Next(20, 64)) - 1);
                // Point addresses back into the region (0x1000_0000..) half of the time, keep the low type bits random.
                if (rng.Next(2) == 0) w = (w & 0xFFF0_0000_0000_0FFF) | (0x1000_0000UL + ((ulong)rng.Next(0x40) << 12));
                words[i] = w;
            }
            h.Memory.WriteUInt64s(SmmuHarness.StrtabBase, words);
            for (int i = 0; i < 500; i++)
            {
                uint sid = (uint)rng.Next(1200);
                uint? ssid = rng.Next(3) == 0 ? (uint)rng.Next(256) : null;
                ulong iova = rng.Next(2) == 0 ? (ulong)rng.NextInt64() : (ulong)rng.Next() << 12;
                var r = h.Translate(sid, iova, (AccessKind)rng.Next(2), ssid);
                switch (r.Status)
                {
                    case TranslationStatus.Success:
                        Bits.FitsIn(r.PhysicalAddress, features.OasBits).ShouldBeTrue($"PA 0x{r.PhysicalAddress:X} beyond the OAS");
                        break;
                    case TranslationStatus.Fault:
                        Enum.IsDefined(r.Event.Type).ShouldBeTrue();
                        r.Event.SID.ShouldBe(sid);
                        break;
                }
                if (i % 50 == 0) h.TakeEvents();
                if (i % 97 == 0) h.Submit(Command.CfgiAll(), Command.TlbiNsnhAll(), Command.Sync());
            }
        }
    }
}
