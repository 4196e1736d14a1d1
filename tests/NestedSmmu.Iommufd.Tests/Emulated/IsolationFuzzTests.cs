using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;
using NestedSmmu.Scenarios.SelfChecks;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// Isolation between two VMs on one emulated host: two VMMs (two iommufd contexts) each nest a device
/// of the same physical SMMU (smmu0: gpu0 for VM A, nic0 for VM B). A seeded generator issues DMA and
/// random invalidation batches (valid, malformed, other VMs' VMIDs and ASIDs, foreign and out-of-range
/// StreamIDs) from either VM. Checked after every step: the other VM's TLB entries and physical STE
/// are unchanged; each VM's DMA reaches exactly its own data (never the other VM's RAM); an
/// invalidation answers with a result or an errno, never another exception.
/// </summary>
public sealed class IsolationFuzzTests
{
    private const int Steps = 600;
    private const ushort VsidA = 0x10, VsidB = 0x20;
    private static readonly ushort[] Asids = [1, 2, 3];
    private static readonly ulong[] Vas = [0x10_0000, 0x20_0000, 0x20_1000, 0x7F_F000];
    private const ulong DataIpa = TestBed.GuestRamBase + 0x10_0000;

    private sealed record Guest(string Name, string Device, Vm Vm, IIommufd Fd, ViommuId Viommu, ushort Vsid, ulong Tag)
    {
        /// <summary>The value VM <see cref="Name"/> keeps at the page VA <paramref name="va"/> maps to for <paramref name="asid"/>.</summary>
        public ulong Data(ushort asid, ulong va) => Tag | ((ulong)asid << 32) | va;
    }

    private static Guest Setup(TestBed bed, IIommufd fd, string name, string device, ushort vsid, ulong tag)
    {
        var vm = new Vm(bed, GuestVm.Create(fd, TestBed.GuestRamSize, "ram-" + name, TestBed.GuestRamBase));
        var (dev, _, viommu) = vm.Guest.NestedSetup(device);
        fd.AllocVdevice(viommu, dev, vsid);
        var cds = new List<ContextDescriptor>();
        int page = 0;
        foreach (ushort asid in Asids)
        {
            GuestAddressSpace space = vm.CreateAddressSpace(asid);
            foreach (ulong va in Vas)
            {
                ulong ipa = DataIpa + (ulong)page++ * TestBed.Page;
                space.Map(va, ipa);
                vm.WriteGuest(ipa, tag | ((ulong)asid << 32) | va);
            }
            cds.Add(space.Cd);
        }
        var vste = TestBed.TranslateVste(vm.WriteCdTable([.. cds]));
        // S1CDMax = 2 (four CD slots, three used), S1DSS = 0b10: untagged traffic uses CD 0.
        vste = vste with { Word0 = vste.Word0 | (2UL << 59), Word1 = vste.Word1 | 2 };
        fd.AttachDevice(dev, fd.AllocNestedHwpt(dev, viommu, vste));
        return new Guest(name, device, vm, fd, viommu, vsid, tag);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Commands_of_one_VM_never_touch_the_other_VMs_TLB_STE_or_memory(int seed)
    {
        var rng = new Random(seed);
        using var bed = new TestBed(selftest: false);
        using IIommufd fdB = bed.Host.Open();
        Guest a = Setup(bed, bed.Fd, "a", "gpu0", VsidA, 0xA000_0000_0000_0000);
        Guest b = Setup(bed, fdB, "b", "nic0", VsidB, 0xB000_0000_0000_0000);
        ushort vmidA = bed.Diag.ReadSte("gpu0").S2VMID, vmidB = bed.Diag.ReadSte("nic0").S2VMID;
        vmidA.ShouldNotBe(vmidB);
        bed.Diag.SmmuOf("gpu0").ShouldBe(bed.Diag.SmmuOf("nic0"), "both VMs share one physical SMMU");
        uint psidA = 0x100, psidB = 0x200; // the small profile's StreamIDs of gpu0 and nic0
        int dmas = 0, batches = 0, refused = 0, invariants = 0, guarded = 0;

        for (int step = 0; step < Steps; step++)
        {
            Guest self = rng.Next(2) == 0 ? a : b, other = self == a ? b : a;
            ushort otherVmid = other == a ? vmidA : vmidB;
            string where = $"seed {seed} step {step} ({self.Name})";
            if (rng.Next(3) > 0)
            {
                // DMA: a mapped VA reads this VM's own value; an unmapped one faults.
                ushort asidIndex = (ushort)rng.Next(Asids.Length + 1);
                // CD 0 is reached without a PASID: with S1DSS = 0b10 a transaction with SubstreamID 0
                // is terminated (F_STREAM_DISABLED, IHI 0070 5.2 S1DSS).
                uint? pasid = asidIndex == 0 ? null : asidIndex < Asids.Length ? asidIndex : 7u;
                bool mapped = rng.Next(4) > 0;
                ulong va = mapped ? Vas[rng.Next(Vas.Length)] : 0x40_0000 + (ulong)rng.Next(16) * TestBed.Page;
                var (result, value) = bed.DmaRead(self.Device, va, pasid);
                dmas++;
                if (mapped && asidIndex < Asids.Length)
                {
                    result.IsSuccess.ShouldBeTrue($"{where}: 0x{va:X} pasid {pasid}: {result}");
                    value.ShouldBe(self.Data(Asids[asidIndex], va), where);
                }
                else
                {
                    result.IsSuccess.ShouldBeFalse($"{where}: 0x{va:X} pasid {pasid} is not mapped");
                }
                continue;
            }

            Command[] batch = [.. Enumerable.Range(0, rng.Next(1, 5)).Select(_ => RandomCommand(rng, otherVmid, other.Vsid, psidA, psidB))];
            var otherTlb = bed.Diag.TlbEntries("smmu0").Where(e => e.Vmid == otherVmid).ToHashSet();
            StreamTableEntry otherSte = bed.Diag.ReadSte(other.Device);
            if (otherTlb.Count > 0) guarded++;
            try
            {
                InvalidateResult r = self.Fd.InvalidateArmSmmuV3(self.Viommu, batch);
                if (!r.Succeeded) refused++;
            }
            catch (IommufdException)
            {
                refused++;
            }
            batches++;
            var after = bed.Diag.TlbEntries("smmu0").Where(e => e.Vmid == otherVmid).ToHashSet();
            after.SetEquals(otherTlb).ShouldBeTrue($"{where}: {string.Join("; ", batch)} changed VM {other.Name}'s TLB entries");
            bed.Diag.ReadSte(other.Device).ShouldBe(otherSte, $"{where}: {string.Join("; ", batch)} changed VM {other.Name}'s STE");
            invariants += 2;
        }
        // Both VMs still translate their own pages after the campaign.
        foreach (Guest g in new[] { a, b })
            foreach (ulong va in Vas)
                bed.DmaRead(g.Device, va).Value.ShouldBe(g.Data(Asids[0], va));
        // The campaign did what it claims: DMA filled the TLB, so most batches ran with the other VM's entries present.
        (dmas > Steps / 2 && batches > Steps / 5 && refused > 0 && guarded > batches / 2 && invariants == 2 * batches)
            .ShouldBeTrue($"dmas {dmas}, batches {batches}, refused {refused}, guarded {guarded}");
    }

    /// <summary>
    /// An invalidation a hostile guest might send: the vIOMMU's commands with the other VM's VMID,
    /// its ASIDs, its vSID and physical StreamIDs, out-of-range IDs, commands a guest may not issue
    /// (EL2, S2, NSNH), and random words.
    /// </summary>
    private static Command RandomCommand(Random rng, ushort otherVmid, ushort otherVsid, uint psidA, uint psidB)
    {
        ushort vmid = rng.Next(3) switch { 0 => 0, 1 => otherVmid, _ => (ushort)rng.Next(ushort.MaxValue + 1) };
        ushort asid = rng.Next(2) == 0 ? Asids[rng.Next(Asids.Length)] : (ushort)rng.Next(ushort.MaxValue + 1);
        uint sid = rng.Next(5) switch { 0 => VsidA, 1 => VsidB, 2 => otherVsid, 3 => rng.Next(2) == 0 ? psidA : psidB, _ => (uint)rng.Next() };
        ulong va = Vas[rng.Next(Vas.Length)];
        return rng.Next(16) switch
        {
            0 => Command.TlbiNhAll(vmid),
            1 => Command.TlbiNhAsid(vmid, asid),
            2 => Command.TlbiNhVa(vmid, asid, va, rng.Next(2) == 0),
            3 => Command.TlbiNhVaa(vmid, va),
            4 => Command.TlbiS12Vmall(vmid),
            5 => Command.TlbiS2Ipa(vmid, DataIpa),
            6 => Command.TlbiEl2All(),
            7 => Command.TlbiNsnhAll(),
            8 => Command.CfgiSte(sid),
            9 => Command.CfgiCd(sid, (uint)rng.Next(4)),
            10 => Command.CfgiCdAll(sid),
            11 => Command.CfgiAll(),
            12 => Command.AtcInv(sid, null, 0, 52),
            13 => Command.Sync(),
            14 => Command.TlbiNhVa(vmid, asid, va, tg: 1, num: (uint)rng.Next(32), scale: (uint)rng.Next(64)),
            _ => new Command((ulong)rng.NextInt64(), (ulong)rng.NextInt64()),
        };
    }

    // ------------------------------------------------------------------ through guest VCMDQs

    /// <summary>Where each guest keeps its 256-entry VCMDQ: guest RAM, clear of the data and table pages.</summary>
    private const ulong QueueIpa = TestBed.GuestRamBase + 0x40_0000;
    private const int QueueLog2Entries = 8;

    private sealed record VintfGuest(string Name, string Device, EmulatedIommufd Fd, ViommuId Viommu, ushort Vsid, GuestVcmdq Queue, IMmioMapping Page);

    private static VintfGuest SetupVintf(TestBed bed, EmulatedIommufd fd, string name, string device, ushort vsid)
    {
        var vm = new Vm(bed, GuestVm.Create(fd, TestBed.GuestRamSize, "ram-" + name, TestBed.GuestRamBase));
        DeviceId dev = fd.BindDevice(device);
        HwptId parent = fd.AllocPagingHwpt(dev, vm.Ioas, HwptAllocFlags.NestParent);
        var (viommu, vintf) = fd.AllocTegra241CmdqvViommu(dev, parent);
        fd.AllocVdevice(viommu.Id, dev, vsid);
        GuestAddressSpace space = vm.CreateAddressSpace(Asids[0]);
        ulong page = 0;
        foreach (ulong va in Vas) space.Map(va, DataIpa + page++ * TestBed.Page);
        fd.AttachDevice(dev, fd.AllocNestedHwpt(dev, viommu.Id, TestBed.TranslateVste(vm.WriteCdTable(space.Cd))));
        fd.AllocHwQueue(viommu.Id, HwQueueType.Tegra241Cmdqv, 0, QueueIpa, 1UL << (QueueLog2Entries + 4));
        IMmioMapping mapping = fd.MapVintfPage(vintf);
        var queue = new GuestVcmdq(vm, mapping, 0, QueueIpa, QueueLog2Entries);
        queue.Enable();
        return new VintfGuest(name, device, fd, viommu.Id, vsid, queue, mapping);
    }

    /// <summary>What a guest VINTF may pass to the SMMU: TLBI_NH_ASID/VA, CMD_SYNC, and ATC_INV for one of its own vSIDs.</summary>
    private static bool Admitted(Command c, ushort ownVsid) => c.Opcode switch
    {
        CommandOpcode.TLBI_NH_ASID or CommandOpcode.TLBI_NH_VA or CommandOpcode.CMD_SYNC => true,
        CommandOpcode.ATC_INV => c.SID == ownVsid,
        _ => false,
    };

    /// <summary>
    /// Two VMMs with a TEGRA241_CMDQV vIOMMU each on smmu0 (one VINTF each, one CMDQV): random
    /// commands go straight into the guests' VCMDQs. Checked after every command: the other VM's TLB
    /// entries and STE are unchanged; a command outside the VINTF's set, or an ATC_INV naming a vSID the
    /// VINTF was not given, is refused (CERROR_ILL) and never executed; the other VINTF's counters do not move.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void A_guest_VINTF_executes_only_its_allowed_commands_and_SIDs_and_never_touches_the_other_VM(int seed)
    {
        var rng = new Random(seed);
        using var bed = new TestBed(selftest: false);
        using EmulatedIommufd fdB = bed.Host.Open();
        VintfGuest a = SetupVintf(bed, bed.Fd, "a", "gpu0", VsidA);
        VintfGuest b = SetupVintf(bed, fdB, "b", "nic0", VsidB);
        ushort vmidA = bed.Diag.ReadSte("gpu0").S2VMID, vmidB = bed.Diag.ReadSte("nic0").S2VMID;
        int refusedAsExpected = 0, admitted = 0;

        for (int step = 0; step < Steps; step++)
        {
            VintfGuest self = rng.Next(2) == 0 ? a : b, other = self == a ? b : a;
            ushort otherVmid = other == a ? vmidA : vmidB;
            foreach (ulong va in Vas) bed.DmaRead(other.Device, va);
            bed.DmaRead(self.Device, Vas[rng.Next(Vas.Length)]);
            Command cmd = RandomCommand(rng, otherVmid, other.Vsid, 0x100, 0x200);
            string where = $"seed {seed} step {step} ({self.Name}): {cmd}";
            var otherTlb = bed.Diag.TlbEntries("smmu0").Where(e => e.Vmid == otherVmid).ToHashSet();
            StreamTableEntry otherSte = bed.Diag.ReadSte(other.Device);
            CmdqvCounters selfCounters = bed.Diag.CmdqvVintfOf(self.Fd, self.Viommu)!.Counters;
            long executedBefore = selfCounters.CommandsExecuted;
            long otherExecuted = bed.Diag.CmdqvVintfOf(other.Fd, other.Viommu)!.Counters.CommandsExecuted;
            uint index = self.Queue.Prod;

            self.Queue.Submit(cmd);

            if (!Admitted(cmd, self.Vsid))
            {
                self.Queue.ConsErr.ShouldBe((uint)CommandError.CERROR_ILL, where);
                bed.Diag.CmdqvVintfOf(self.Fd, self.Viommu)!.Counters.CommandsExecuted.ShouldBe(executedBefore, where);
                refusedAsExpected++;
            }
            else
            {
                admitted++;
            }
            if (self.Queue.ConsErr != 0)
            {
                // The guest's error handler: replace the bad command by a CMD_SYNC and acknowledge.
                self.Queue.Replace(index, Command.Sync());
                self.Queue.Acknowledge();
                self.Queue.ConsErr.ShouldBe(0u, where);
            }
            bed.Diag.TlbEntries("smmu0").Where(e => e.Vmid == otherVmid).ToHashSet().SetEquals(otherTlb)
                .ShouldBeTrue($"{where} changed VM {other.Name}'s TLB entries");
            bed.Diag.ReadSte(other.Device).ShouldBe(otherSte, where);
            bed.Diag.CmdqvVintfOf(other.Fd, other.Viommu)!.Counters.CommandsExecuted.ShouldBe(otherExecuted, where);
        }
        (refusedAsExpected > Steps / 4 && admitted > Steps / 10).ShouldBeTrue($"refused {refusedAsExpected}, admitted {admitted}");
        a.Page.Dispose();
        b.Page.Dispose();
    }
}
