using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.VCmdqv;

namespace NestedSmmu.Cli.Fuzz;

internal static partial class IsolationCampaign
{
    /// <summary>Bytes of guest-table garbage per operation: one STE.</summary>
    private const int GarbageBytes = 64;

    /// <summary>
    /// One random guest operation for VM <paramref name="vm"/>, drawn against what the VMs have now
    /// (their vSMMUs, devices, the other VM's VMID): the choices become data, so the operation replays alone.
    /// </summary>
    private static FuzzOp GenerateFor(Random rng, int vm, Guest self, Guest other, EmulatedHostDiagnostics diag)
    {
        if (rng.Next(RebootOneIn) == 0) return new FuzzOp("reboot", vm);
        int vsmmu = rng.Next(self.Vm.Vsmmus.Count);
        switch (rng.Next(11))
        {
            case 10 when self.Vm.Vsmmus[vsmmu].Cmdqv is not null:
            {
                ulong offset = (ulong)rng.NextInt64((long)Tegra241VCmdqv.Size) & ~3UL;
                int width = rng.Next(3) == 0 ? 8 : 4;
                return new FuzzOp("cmdqv-write", vm, vsmmu, Offset: offset, Width: width, Value: RandomValue(rng));
            }
            case 0:
            case 1:
            {
                SmmuRegister[] regs = Enum.GetValues<SmmuRegister>();
                ulong offset = rng.Next(4) == 0 ? (ulong)rng.Next(2 * (int)SmmuRegister.Page1) & ~3UL : (ulong)regs[rng.Next(regs.Length)];
                int width = new[] { 1, 2, 4, 8 }[rng.Next(4)];
                return new FuzzOp("write", vm, vsmmu, Offset: offset, Width: width, Value: RandomValue(rng));
            }
            case 2:
            case 3:
            case 4:
            {
                Command c = RandomCommand(rng, self, other, diag);
                return new FuzzOp("command", vm, vsmmu, W0: c.W0, W1: c.W1);
            }
            case 5:
            {
                bool ste = rng.Next(2) == 0 && self.Devices.Count > 0;
                int device = ste ? rng.Next(self.Devices.Count) : -1;
                ulong offset = ste ? 0 : (ulong)rng.NextInt64((long)(self.Vm.Ram.Size / 2));
                var junk = new byte[GarbageBytes];
                rng.NextBytes(junk);
                return new FuzzOp("garbage", vm, vsmmu, Offset: offset, Device: device, Flag: rng.Next(2) == 0, Bytes: Convert.ToHexString(junk));
            }
            case 9:
                return new FuzzOp("service", vm);
            default:
            {
                if (self.Devices.Count == 0) return new FuzzOp("service", vm);
                int device = rng.Next(self.Devices.Count);
                bool mapped = rng.Next(3) > 0 && self.Iovas.Count > 0;
                int slot = mapped ? rng.Next(self.Iovas.Count) : -1;
                ulong offset = mapped ? (ulong)rng.Next(0x1000 - sizeof(ulong)) : 0;
                ulong raw = mapped ? 0 : (ulong)rng.NextInt64() >> rng.Next(64);
                bool write = rng.Next(2) != 0;
                return new FuzzOp("dma", vm, Offset: offset, Value: (ulong)rng.NextInt64(), W0: raw, Device: device, Slot: slot, Flag: write);
            }
        }
    }

    /// <summary>Zero, any bits, or one bit: what register fuzzing needs most.</summary>
    private static ulong RandomValue(Random rng) => rng.Next(3) switch { 0 => 0, 1 => (ulong)rng.NextInt64(), _ => 1UL << rng.Next(64) };

    private static Command RandomCommand(Random rng, Guest self, Guest other, EmulatedHostDiagnostics diag)
    {
        uint sid = rng.Next(4) switch
        {
            0 when self.Devices.Count > 0 => self.Devices[rng.Next(self.Devices.Count)].Vsid,
            1 when other.Devices.Count > 0 => other.Devices[rng.Next(other.Devices.Count)].Vsid,
            // Any SID a PCI requester ID can name (the ones nobody was given), or far out of range.
            2 => (uint)rng.Next(0x10000),
            _ => (uint)rng.NextInt64(uint.MaxValue),
        };
        ushort vmid = rng.Next(2) == 0 && other.Devices.Count > 0 ? diag.ReadSte(other.Devices[0].Host!.Address).S2VMID : (ushort)rng.Next(0x10000);
        ushort asid = (ushort)rng.Next(rng.Next(2) == 0 ? 4 : 0x10000);
        ulong va = (ulong)rng.NextInt64() & ~0xFFFUL;
        return rng.Next(16) switch
        {
            0 => Command.CfgiSte(sid, rng.Next(2) == 0),
            1 => Command.CfgiSteRange(sid, (uint)rng.Next(32)),
            2 => Command.CfgiCd(sid, (uint)rng.Next(4)),
            3 => Command.CfgiCdAll(sid),
            4 => Command.TlbiNhAll(vmid),
            5 => Command.TlbiNhAsid(vmid, asid),
            6 => Command.TlbiNhVa(vmid, asid, va, rng.Next(2) == 0, (uint)rng.Next(4), (uint)rng.Next(4), (uint)rng.Next(32), (uint)rng.Next(32)),
            7 => Command.TlbiNhVaa(vmid, va),
            8 => Command.TlbiS12Vmall(vmid),
            9 => Command.TlbiS2Ipa(vmid, va),
            10 => Command.TlbiNsnhAll(),
            11 => Command.TlbiEl2All(),
            12 => Command.AtcInv(sid, rng.Next(2) == 0 ? null : (uint)rng.Next(4), va, (uint)rng.Next(64), rng.Next(2) == 0),
            13 => Command.Sync(),
            14 => Command.PrefetchConfig(sid),
            // Any bits at all: illegal opcodes, reserved fields.
            _ => new Command((ulong)rng.NextInt64() ^ ((ulong)rng.Next(2) << 63), (ulong)rng.NextInt64()),
        };
    }
}
