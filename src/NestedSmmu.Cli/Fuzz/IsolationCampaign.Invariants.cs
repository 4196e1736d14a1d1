using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Machine;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Cli.Fuzz;

internal static partial class IsolationCampaign
{
    /// <summary>Faults one step's DMA raised, by what must become of them.</summary>
    private struct StepFaults
    {
        /// <summary>Faults the SMMU recorded in its event queue (the host's event thread must see each).</summary>
        public int Recorded;
        /// <summary>Of those, the ones the host hands to the VM's vIOMMU, which must reach the guest's event queue or be marked lost.</summary>
        public int ForGuest;
        /// <summary>Ones for the VM while it had no vEVENTQ (its event queue off): the host must log each.</summary>
        public int HostLogged;
    }

    /// <summary>
    /// Whether the host hands this event to the guest of a nested device: the event types Linux's
    /// arm_smmu_handle_event reports to a vmaster (arm-smmu-v3.c), not stalls, not stage-2 faults (the
    /// host's own), IHI 0070 7.3 for the types.
    /// </summary>
    private static bool ForwardedToGuest(in EventRecord e) =>
        !e.Stall && !e.S2 && e.Type is EventType.C_BAD_STE or EventType.F_STREAM_DISABLED or EventType.C_BAD_SUBSTREAMID
            or EventType.C_BAD_CD or EventType.F_TRANSLATION or EventType.F_ADDR_SIZE or EventType.F_ACCESS or EventType.F_PERMISSION;

    private static IEnumerable<AcceleratedVSmmu> Accelerated(Guest g) => g.Vm.Vsmmus.Select(v => v.Device).OfType<AcceleratedVSmmu>();

    private sealed partial class CampaignRun
    {
        private string SmmuOf(VmDevice d) => _diag.SmmuOf(d.Host!.Address);

        private uint PhysicalSid(VmDevice d) => _profile.Devices.First(p => p.Address == PciAddress.Parse(d.Host!.Address)).StreamId;

        /// <summary>Records the VMIDs the guest's stage-2 domains have now (an abort STE shows none, so they are remembered).</summary>
        private void Learn(Guest g)
        {
            foreach (VmDevice d in g.Devices)
            {
                StreamTableEntry ste = _diag.ReadSte(d.Host!.Address);
                if (!ste.V || !ste.TranslatesStage2) continue;
                string smmu = SmmuOf(d);
                if (!g.Vmids.TryGetValue(smmu, out HashSet<ushort>? set)) g.Vmids[smmu] = set = [];
                set.Add(ste.S2VMID);
            }
        }

        private HashSet<ushort> VmidsOn(Guest g, string smmu) => g.Vmids.TryGetValue(smmu, out HashSet<ushort>? set) ? set : [];

        /// <summary>What the other VM (and the acting one's event counters) looked like before a step.</summary>
        private sealed class Snapshot
        {
            public required Guest Self { get; init; }
            public required Guest Other { get; init; }
            public required List<StreamTableEntry> Stes { get; init; }
            public required List<(string Smmu, HashSet<TlbEntry>? Entries)> Tlbs { get; init; }
            public required List<(string Smmu, HashSet<WalkCacheEntry> Entries)>? Walks { get; init; }
            public required List<(int Entries, long Invalidations)> Atcs { get; init; }
            public required (long Delivered, long Lost) SelfEvents { get; init; }
            public required (long Delivered, long Lost) OtherEvents { get; init; }
            public required long HostSeen { get; init; }
            public required long HostLost { get; init; }
            public required long LogLines { get; init; }
            /// <summary>The acting VM's guest VINTFs: (physical SMMU, VINTF index).</summary>
            public required HashSet<(string Smmu, int Vintf)> SelfVintfs { get; init; }

            public static Snapshot Take(CampaignRun run, Guest self, Guest other, bool watchWalkCache)
            {
                EmulatedHostDiagnostics diag = run._diag;
                var smmus = other.Devices.Select(run.SmmuOf).Distinct().ToList();
                return new Snapshot
                {
                    Self = self,
                    Other = other,
                    Stes = [.. other.Devices.Select(d => diag.ReadSte(d.Host!.Address))],
                    Tlbs = [.. smmus.Select(s => (s, diag.TlbEntries(s).Count >= new Iotlb().Capacity - TlbHeadroom ? null : run.OtherTlbEntries(s, other)))],
                    Walks = watchWalkCache ? [.. smmus.Select(s => (s, run.OtherWalkEntries(s, other)))] : null,
                    Atcs = [.. other.Devices.Select(d => (diag.AtcEntries(d.Host!.Address), diag.AtcInvalidations(d.Host!.Address)))],
                    SelfEvents = EventCounts(self),
                    OtherEvents = EventCounts(other),
                    HostSeen = diag.SmmuNames.Sum(s => diag.Smmu(s).EventsSeen),
                    HostLost = diag.SmmuNames.Sum(s => diag.Counters(s).EventsLost),
                    LogLines = diag.KernelLogLinesWritten,
                    SelfVintfs = run.VintfsOf(self),
                };
            }

            /// <summary>The other VM's STEs, TLB, walk-cache and ATC entries are as they were.</summary>
            public void Check(CampaignRun run, Action<int, string> fail)
            {
                EmulatedHostDiagnostics diag = run._diag;
                for (int i = 0; i < Stes.Count; i++)
                {
                    StreamTableEntry after = diag.ReadSte(Other.Devices[i].Host!.Address);
                    if (Stes[i] != after) fail(2, $"{Other.Devices[i].Name}: {Stes[i]} -> {after}");
                }
                foreach (var (smmu, before) in Tlbs)
                {
                    if (before is null) continue;
                    run.Count("(other VM's TLB entries watched)", before.Count);
                    var after = run.OtherTlbEntries(smmu, Other);
                    if (!before.SetEquals(after))
                        fail(3, $"{smmu}: {before.Count} entries of {Other.Name} before, {after.Count} after, {before.Except(after).Count()} gone, {after.Except(before).Count()} new");
                }
                foreach (var (smmu, before) in Walks ?? [])
                {
                    run.Count("(other VM's walk-cache entries watched)", before.Count);
                    var after = run.OtherWalkEntries(smmu, Other);
                    if (!before.SetEquals(after))
                        fail(6, $"{smmu}: {before.Count} walk-cache entries of {Other.Name} before, {after.Count} after, {before.Except(after).Count()} gone, {after.Except(before).Count()} new");
                }
                for (int i = 0; i < Atcs.Count; i++)
                {
                    string host = Other.Devices[i].Host!.Address;
                    (int entries, long invalidations) = (diag.AtcEntries(host), diag.AtcInvalidations(host));
                    run.Count("(other VM's ATC entries watched)", Atcs[i].Entries);
                    if ((entries, invalidations) != Atcs[i])
                        fail(7, $"{Other.Devices[i].Name}: ATC {Atcs[i].Entries} entries, {Atcs[i].Invalidations} invalidations before; {entries}, {invalidations} after");
                }
            }
        }

        private static (long Delivered, long Lost) EventCounts(Guest g) =>
            (Accelerated(g).Sum(a => a.Counters.EventsDelivered), Accelerated(g).Sum(a => a.Counters.EventsLost));

        private HashSet<TlbEntry> OtherTlbEntries(string smmu, Guest other)
        {
            HashSet<ushort> vmids = VmidsOn(other, smmu);
            return [.. _diag.TlbEntries(smmu).Where(e => e.Regime != TlbRegime.El2 && vmids.Contains(e.Vmid))];
        }

        private HashSet<WalkCacheEntry> OtherWalkEntries(string smmu, Guest other)
        {
            HashSet<ushort> vmids = VmidsOn(other, smmu);
            return [.. _diag.WalkCacheEntries(smmu).Where(e => e.Tags.Regime != TlbRegime.El2 && vmids.Contains(e.Tags.Vmid))];
        }

        private HashSet<(string, int)> VintfsOf(Guest g)
        {
            var set = new HashSet<(string, int)>();
            foreach (VmVsmmu v in g.Vm.Vsmmus)
                if (v.Cmdqv is { } c && v.PhysicalSmmu is { } smmu && _diag.CmdqvVintfOf(g.Context, c.Viommu) is { } vintf)
                    set.Add((smmu, vintf.Index));
            return set;
        }

        /// <summary>
        /// Every fault the step's DMA raised went somewhere visible: the host saw each recorded one; the
        /// ones for the guest reached its event queue or left a loss mark (the vSMMU's EventsLost, which
        /// toggles EVENTQ_PROD.OVFLG or GERROR.EVENTQ_ABT_ERR, a vEVENTQ LOST_EVENTS record, a host event
        /// queue overflow); the ones for a guest without a vEVENTQ were logged by the host (IHI 0070 7.4;
        /// iommufd_viommu_report_event; arm_smmu_evtq_thread). And no event reached a VM that caused none.
        /// </summary>
        private void CheckEvents(Guest self, Guest other, Snapshot before, Action<int, string> fail)
        {
            // The VMM's fd handler runs between guest exits: deliver what the vEVENTQs hold now.
            foreach (AcceleratedVSmmu a in Accelerated(self)) a.ServiceHostEvents();
            long seen = _diag.SmmuNames.Sum(s => _diag.Smmu(s).EventsSeen) - before.HostSeen;
            long hostLost = _diag.SmmuNames.Sum(s => _diag.Counters(s).EventsLost) - before.HostLost;
            var (delivered, lost) = EventCounts(self);
            delivered -= before.SelfEvents.Delivered;
            lost -= before.SelfEvents.Lost;
            long logged = _diag.KernelLogLinesWritten - before.LogLines;
            Count("(faults for the guest)", _faults.ForGuest);
            if (seen != _faults.Recorded)
                fail(9, $"the SMMUs recorded {_faults.Recorded} fault(s) but the host's event thread saw {seen}");
            if (delivered > _faults.ForGuest)
                fail(9, $"{delivered} event(s) reached {self.Name}'s event queue for {_faults.ForGuest} fault(s) of its devices");
            if (delivered < _faults.ForGuest && lost == 0 && hostLost == 0)
                fail(9, $"{_faults.ForGuest} fault(s) for {self.Name}, {delivered} event(s) delivered and no loss marked");
            if (_faults.HostLogged > logged)
                fail(9, $"{_faults.HostLogged} fault(s) for {self.Name} without a vEVENTQ, {logged} host log line(s)");
            if (EventCounts(other) != before.OtherEvents)
                fail(9, $"{other.Name}'s event counters moved while {self.Name} acted: {before.OtherEvents} -> {EventCounts(other)}");
        }

        /// <summary>
        /// Every command a guest VINTF let through during the step belongs to the acting VM's VINTF and is
        /// one a guest may issue: TLBI_NH_ASID and TLBI_NH_VA with the VM's own VMID, ATC_INV on a StreamID
        /// of one of its devices behind that SMMU, CMD_SYNC without an IRQ signal (NVIDIA's Tegra241 CMDQV:
        /// Linux's tegra241_guest_vcmdq_supports_cmd and the VINTF's SID_MATCH/SID_REPLACE, VMID).
        /// </summary>
        private void CheckVintfCommands(Snapshot before, Action<int, string> fail)
        {
            foreach (var (smmu, c) in _admitted)
            {
                if (c.HypOwn) continue;
                Count("(guest VINTF commands checked)");
                Command cmd = c.Admitted;
                string what = $"{smmu} VINTF{c.Vintf} ran {cmd.Opcode} 0x{cmd.W0:X16} 0x{cmd.W1:X16}";
                if (!before.SelfVintfs.Contains((smmu, c.Vintf)))
                {
                    fail(8, $"{what}, but that VINTF is not {before.Self.Name}'s");
                    continue;
                }
                var mine = before.Self.Devices.Where(d => SmmuOf(d) == smmu).ToList();
                HashSet<ushort> vmids = VmidsOn(before.Self, smmu);
                switch (cmd.Opcode)
                {
                    case CommandOpcode.TLBI_NH_ASID or CommandOpcode.TLBI_NH_VA:
                        if (vmids.Count > 0 && !vmids.Contains(cmd.VMID)) fail(8, $"{what}: VMID {cmd.VMID} is not {before.Self.Name}'s ({string.Join(", ", vmids)})");
                        break;
                    case CommandOpcode.ATC_INV:
                        if (!mine.Any(d => PhysicalSid(d) == cmd.SID)) fail(8, $"{what}: StreamID 0x{cmd.SID:X} is none of {before.Self.Name}'s devices'");
                        break;
                    case CommandOpcode.CMD_SYNC:
                        if (cmd.CS == SyncSignal.Irq) fail(8, $"{what}: a guest CMD_SYNC kept its IRQ signal");
                        break;
                    default:
                        fail(8, $"{what}: not a command a guest VINTF may run");
                        break;
                }
            }
        }
    }
}
