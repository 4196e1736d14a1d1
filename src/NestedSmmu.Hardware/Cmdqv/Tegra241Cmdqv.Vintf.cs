using NestedSmmu.Hardware.Smmu;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Hardware.Cmdqv;

public sealed partial class Tegra241Cmdqv
{
    /// <summary>One virtual interface: who owns it (HYP_OWN), its VMID, and its vSID to pSID slots.</summary>
    private sealed class Vintf(int index, int sidSlots)
    {
        public readonly int Index = index;
        public uint Config;
        public readonly uint[] SidMatch = new uint[sidSlots];
        public readonly uint[] SidReplace = new uint[sidSlots];
        public readonly CmdqvCounters Counters = new();

        public bool ConfigEnabled => (Config & VINTF_EN) != 0;
        /// <summary>HYP_OWN = 1: the host's own interface (Linux's VINTF0), free to issue any command unchanged.</summary>
        public bool HypOwn => (Config & VINTF_HYP_OWN) != 0;
        public ushort Vmid => (ushort)VINTF_VMID.Get(Config);

        public void Reset()
        {
            Config = 0;
            Array.Clear(SidMatch);
            Array.Clear(SidReplace);
        }

        /// <summary>The pSID of the first enabled SID_MATCH slot holding <paramref name="vsid"/>.</summary>
        public bool TryMatchSid(uint vsid, out uint psid)
        {
            for (int s = 0; s < SidMatch.Length; s++)
            {
                uint match = SidMatch[s];
                if ((match & SID_MATCH_ENABLE) != 0 && SID_MATCH_VIRT_SID.Get(match) == vsid)
                {
                    psid = (uint)SID_REPLACE_PHYS_SID.Get(SidReplace[s]);
                    return true;
                }
            }
            psid = 0;
            return false;
        }
    }

    /// <summary>VINTF STATUS.ENABLED: CONFIG.EN of the VINTF, with the CMDQV itself enabled.</summary>
    private bool IsVintfEnabled(Vintf vintf) => Enabled && vintf.ConfigEnabled;

    private uint ReadVintf(Vintf vintf, ulong register)
    {
        switch ((VintfRegister)register)
        {
            case VintfRegister.CONFIG: return vintf.Config;
            case VintfRegister.STATUS:
                return (IsVintfEnabled(vintf) ? VINTF_ENABLED : 0) | (uint)VINTF_NUM_LVCMDQ.Encode((ulong)CountAllocated(vintf));
        }
        if (TryIndex(register, (ulong)VintfRegister.SID_MATCH, L.SidSlotStride, vintf.SidMatch.Length, out int s))
            return vintf.SidMatch[s];
        if (TryIndex(register, (ulong)VintfRegister.SID_REPLACE, L.SidSlotStride, vintf.SidReplace.Length, out s))
            return vintf.SidReplace[s];
        // LVCMDQ_ERR_MAP_64(0..1) read as four 32-bit words.
        if (TryIndex(register, (ulong)VintfRegister.LVCMDQ_ERR_MAP_64, sizeof(uint), L.LvcmdqErrMapWords * (int)(L.LvcmdqErrMapStride / sizeof(uint)), out int word))
            return LvcmdqErrorMapWord(vintf, word);
        return 0;
    }

    private void WriteVintf(Vintf vintf, ulong register, uint value)
    {
        if ((VintfRegister)register == VintfRegister.CONFIG)
        {
            bool wasEnabled = vintf.ConfigEnabled;
            vintf.Config = value & VINTF_CONFIG_WritableMask;
            if (vintf.ConfigEnabled && !wasEnabled) ConsumeVintf(vintf);
            return;
        }
        if (TryIndex(register, (ulong)VintfRegister.SID_MATCH, L.SidSlotStride, vintf.SidMatch.Length, out int s))
            vintf.SidMatch[s] = value & SID_MATCH_WritableMask;
        else if (TryIndex(register, (ulong)VintfRegister.SID_REPLACE, L.SidSlotStride, vintf.SidReplace.Length, out s))
            vintf.SidReplace[s] = value & (uint)SID_REPLACE_PHYS_SID.Mask;
        // STATUS and LVCMDQ_ERR_MAP are read-only.
    }

    private int CountAllocated(Vintf vintf)
    {
        int n = 0;
        foreach (var q in _queues)
        {
            if (q.Allocated && q.AllocVintf == vintf.Index) n++;
        }
        return n;
    }

    /// <summary>32-bit word <paramref name="word"/> of the VINTF's 128-bit LVCMDQ_ERR_MAP: bit l = its logical queue l is in error.</summary>
    private uint LvcmdqErrorMapWord(Vintf vintf, int word)
    {
        uint bits = 0;
        foreach (var q in _queues)
        {
            if (!q.ErrorActive || !q.Allocated || q.AllocVintf != vintf.Index) continue;
            int l = q.AllocLvcmdq;
            if (l / RegisterBits == word) bits |= 1u << (l % RegisterBits);
        }
        return bits;
    }

    /// <summary>
    /// What a VINTF lets through, applied to each command before the SMMU sees it. A HYP_OWN VINTF
    /// passes everything unchanged. A guest VINTF accepts only TLBI_NH_ASID and TLBI_NH_VA (their
    /// VMID replaced by the VINTF's, so a guest can only touch its own TLB entries), ATC_INV (its vSID
    /// replaced through SID_MATCH/SID_REPLACE; no match is an error) and CMD_SYNC; anything else is
    /// CERROR_ILL, as Linux's guest VCMDQ command filter expects.
    /// </summary>
    private CommandError Admit(Vintf vintf, Vcmdq queue, ref Command cmd)
    {
        if (vintf.HypOwn) return CommandError.None;
        switch (cmd.Opcode)
        {
            case CommandOpcode.TLBI_NH_ASID:
            case CommandOpcode.TLBI_NH_VA:
                cmd = cmd.WithVMID(vintf.Vmid);
                Count(vintf, queue, static c => c.VmidSubstitutions++);
                return CommandError.None;
            case CommandOpcode.ATC_INV:
                if (!vintf.TryMatchSid(cmd.SID, out uint psid))
                {
                    Count(vintf, queue, static c => c.UnmatchedSids++);
                    return CommandError.CERROR_ILL;
                }
                cmd = cmd.WithSID(psid);
                Count(vintf, queue, static c => c.SidSubstitutions++);
                return CommandError.None;
            case CommandOpcode.CMD_SYNC:
                // VCMDQs complete CMD_SYNC with CS_NONE only (Linux: "only support CS_NONE in the CS field
                // of CMD_SYNC"); an IRQ sync from a guest must not become a host memory write at a guest
                // address, so its signal is dropped and the sync still completes.
                if (cmd.CS == SyncSignal.Irq)
                {
                    cmd = Command.Sync();
                    Count(vintf, queue, static c => c.SyncSignalsDropped++);
                }
                return CommandError.None;
            default:
                Count(vintf, queue, static c => c.CommandsRejected++);
                return CommandError.CERROR_ILL;
        }
    }

    /// <summary>Bumps one counter at all three levels: the CMDQV, the VINTF and the queue.</summary>
    private void Count(Vintf vintf, Vcmdq queue, Action<CmdqvCounters> bump)
    {
        bump(Counters);
        bump(vintf.Counters);
        bump(queue.Counters);
    }
}
