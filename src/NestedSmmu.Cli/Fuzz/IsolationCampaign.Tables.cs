using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Cli.Fuzz;

internal static partial class IsolationCampaign
{
    /// <summary>What a <c>mutate</c> operation changes (its <see cref="FuzzOp.Slot"/>).</summary>
    private enum MutationTarget { Ste, Cd, PageTable }

    /// <summary><see cref="FuzzOp.Value"/> of a replacing <c>mutate</c>: "the entry's own table, as a table descriptor" (a walk loop).</summary>
    private const ulong SelfLoop = ulong.MaxValue;

    /// <summary>Valid table descriptor bits at levels 0-2 (VMSAv8-64 D8.3: [1:0] = 0b11).</summary>
    private const ulong TableDescriptor = 0b11;

    /// <summary>Words per STE, CD (64 bytes each) and entries per 4 KiB table.</summary>
    private const int EntryWords = 8, TableEntries = 512;

    /// <summary>Bits of an STE's S1ContextPtr and a CD's TTB0 and of a table descriptor's next-level address (IHI 0070 5.2, 5.4; D8.3).</summary>
    private static readonly ulong AddressMask = 0x000F_FFFF_FFFF_F000UL;

    /// <summary>
    /// One field-level change to the guest's live tables, as a buggy or hostile guest driver makes it:
    /// a word of one of its device's STE, of the CD that STE points at, or an entry of the stage-1 table
    /// that CD points at, XORed with a few bits or replaced (by a guest RAM address, one beyond guest RAM,
    /// or the table's own address to make a walk loop); then the invalidation a driver would send
    /// (CFGI_STE, CFGI_CD_ALL, TLBI_NH_ALL) through the vSMMU's queue.
    /// </summary>
    private static string Mutate(Guest self, FuzzOp op)
    {
        if (self.Devices.Count == 0) return "mutate skipped (no device)";
        VmDevice d = self.Devices[Math.Max(op.Device, 0) % self.Devices.Count];
        ulong bas = d.Vsmmu!.Placed.Base;
        ulong strtab = self.Vm.Bus.Read(bas + (ulong)SmmuRegister.STRTAB_BASE, 8);
        uint strtabCfg = (uint)self.Vm.Bus.Read(bas + (ulong)SmmuRegister.STRTAB_BASE_CFG, 4);
        var target = (MutationTarget)(Math.Max(op.Slot, 0) % 3);
        // Where the guest's STE is, linear or 2-level, as the SMMU finds it (IHI 0070 3.3).
        StreamLookup found = StreamTableLocator.Locate(self.Vm.Ram, strtab, strtabCfg, d.Vsmmu.Device.Features, d.Vsid);
        if (!found.Found) return $"mutate {target} of {d.Name} skipped (no STE: {found.Status})";
        ulong ste = found.SteAddress;
        ulong table = target switch
        {
            MutationTarget.Ste => ste,
            MutationTarget.Cd => ReadWord(self, ste) & Bits(51, 6),
            _ => ReadWord(self, (ReadWord(self, ste) & Bits(51, 6)) + sizeof(ulong)) & AddressMask,
        };
        int index = target == MutationTarget.PageTable ? (int)(op.Offset % TableEntries) : (int)(op.Offset % EntryWords);
        ulong at = table + (ulong)index * sizeof(ulong);
        if (!self.Vm.Ram.Contains(at, sizeof(ulong))) return $"mutate {target} of {d.Name} skipped (outside guest RAM)";
        ulong old = ReadWord(self, at);
        ulong value = op.Flag ? old ^ op.Value : op.Value == SelfLoop ? (table & AddressMask) | TableDescriptor : op.Value;
        ((IPhysicalMemory)self.Vm.Ram).WriteUInt64(at, value);
        Command inv = target switch
        {
            MutationTarget.Ste => Command.CfgiSte(d.Vsid),
            MutationTarget.Cd => Command.CfgiCdAll(d.Vsid),
            _ => Command.TlbiNhAll(0),
        };
        return $"mutate {target} of {d.Name} word {index}: 0x{old:X} becomes 0x{value:X}, then {inv.Opcode}: {Submit(self.Vm, bas, inv)}";
    }

    private static ulong ReadWord(Guest self, ulong address) => self.Vm.Ram.Contains(address, sizeof(ulong)) ? ((IPhysicalMemory)self.Vm.Ram).ReadUInt64(address) : 0;

    private static ulong Bits(int high, int low) => (ulong.MaxValue >> (63 - high)) & ~((1UL << low) - 1);

    /// <summary>A <c>mutate</c> operation: which table, which word, XOR a few bits or replace with an address-shaped value.</summary>
    private static FuzzOp RandomMutation(Random rng, int vm, Guest self)
    {
        bool xor = rng.Next(2) == 0;
        ulong value = xor
            ? (1UL << rng.Next(64)) | (rng.Next(2) == 0 ? 1UL << rng.Next(64) : 0)
            : rng.Next(4) switch
            {
                0 => SelfLoop,
                1 => ((self.Vm.Ram.Base + ((ulong)rng.NextInt64((long)self.Vm.Ram.Size) & AddressMask)) & AddressMask) | TableDescriptor,
                2 => ((self.Vm.Ram.Base + self.Vm.Ram.Size + ((ulong)rng.NextInt64(1L << 40) & AddressMask)) & AddressMask) | TableDescriptor,
                _ => (ulong)rng.NextInt64(),
            };
        return new FuzzOp("mutate", vm, Offset: (ulong)rng.Next(TableEntries), Value: value,
            Device: rng.Next(Math.Max(self.Devices.Count, 1)), Slot: rng.Next(3), Flag: xor);
    }
}
