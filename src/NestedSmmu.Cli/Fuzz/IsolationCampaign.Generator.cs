using System.Buffers.Binary;
using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.VCmdqv;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

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
        switch (rng.Next(13))
        {
            case 10 when self.Vm.Vsmmus[vsmmu].Cmdqv is not null:
            {
                // A named CMDQV register (config page, VINTF0, the VCMDQ registers in the global and the VINTF
                // pages: PROD/CONS beyond the queue, BASE with any LOG2SIZE) or any offset; any width.
                ulong offset = rng.Next(3) > 0 ? CmdqvRegisters[rng.Next(CmdqvRegisters.Length)] : (ulong)rng.NextInt64((long)Tegra241VCmdqv.Size) & ~3UL;
                int width = Widths[rng.Next(Widths.Length)];
                return new FuzzOp("cmdqv-write", vm, vsmmu, Offset: offset, Width: width, Value: RandomRegisterValue(rng, self));
            }
            case 11 when self.Vm.Vsmmus[vsmmu].Cmdqv is not null:
            {
                int n = rng.Next(1, 7);
                var bytes = new byte[n * Command.Size];
                for (int i = 0; i < n; i++)
                {
                    Command c = rng.Next(2) == 0 ? GuestVcmdqCommand(rng, self, other, diag) : RandomCommand(rng, self, other, diag);
                    BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i * Command.Size), c.W0);
                    BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i * Command.Size + sizeof(ulong)), c.W1);
                }
                return new FuzzOp("vcmdq", vm, vsmmu, Slot: rng.Next(2), Flag: rng.Next(4) > 0, Bytes: Convert.ToHexString(bytes));
            }
            case 12:
            {
                int pick = rng.Next(16);
                if (pick == 0) return new FuzzOp("unplug", vm, Device: rng.Next(Math.Max(self.Devices.Count, 1)));
                if (pick == 1) return new FuzzOp("viommu-teardown", vm, vsmmu);
                if (pick < 6) return new FuzzOp("hotplug", vm, Device: rng.Next(Math.Max(self.Unplugged.Count, 1)));
                goto default;
            }
            case 0:
            case 1:
            {
                SmmuRegister[] regs = Enum.GetValues<SmmuRegister>();
                ulong offset = rng.Next(4) == 0 ? (ulong)rng.Next(2 * (int)SmmuRegister.Page1) & ~3UL : (ulong)regs[rng.Next(regs.Length)];
                int width = Widths[rng.Next(Widths.Length)];
                return new FuzzOp("write", vm, vsmmu, Offset: offset, Width: width, Value: RandomRegisterValue(rng, self));
            }
            case 2:
            case 3:
            case 4:
            {
                Command c = RandomCommand(rng, self, other, diag);
                return new FuzzOp("command", vm, vsmmu, W0: c.W0, W1: c.W1);
            }
            case 5 when rng.Next(2) == 0:
                return RandomMutation(rng, vm, self);
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

    /// <summary>Access widths: the architected 32 and 64 bits, and the wrong ones (IHI 0070 6.2: 8/16-bit accesses are not supported).</summary>
    private static readonly int[] Widths = [1, 2, 4, 8];

    /// <summary>
    /// Zero, any bits, one bit, or a queue-base shaped value (a guest RAM address with any LOG2SIZE in
    /// bits [4:0], IHI 0070 6.3.25; the VCMDQ BASE has the same layout): what register fuzzing needs most.
    /// </summary>
    private static ulong RandomRegisterValue(Random rng, Guest self) => rng.Next(4) switch
    {
        0 => 0UL,
        1 => (ulong)rng.NextInt64(),
        2 => 1UL << rng.Next(64),
        _ => (self.Vm.Ram.Base + ((ulong)rng.NextInt64((long)self.Vm.Ram.Size) & ~0xFFFUL)) | (uint)rng.Next(32),
    };

    /// <summary>The guest CMDQV frame's registers by name (Tegra241CmdqvLayout): 1 VINTF, 2 VCMDQs, as the VMM models it.</summary>
    private static readonly ulong[] CmdqvRegisters = BuildCmdqvRegisters();

    private static ulong[] BuildCmdqvRegisters()
    {
        var list = new List<ulong>();
        list.AddRange(Enum.GetValues<CmdqvRegister>().Where(r => r != CmdqvRegister.VINTF).Select(r => (ulong)r));
        for (int m = 0; m < L.CmdqErrMapWords; m++) list.Add(L.CmdqErrMap(m));
        for (int q = 0; q < GuestVcmdqs; q++) list.Add(L.CmdqAlloc(q));
        list.AddRange(Enum.GetValues<VintfRegister>().Select(r => L.Vintf(0, r)));
        for (int slot = 0; slot < 1 << L.MaxSidPerVmLog2; slot++)
        {
            list.Add(L.SidMatch(0, slot));
            list.Add(L.SidReplace(0, slot));
        }
        for (int m = 0; m < L.LvcmdqErrMapWords; m++) list.Add(L.LvcmdqErrMap64(0, m));
        for (int q = 0; q < GuestVcmdqs; q++)
        {
            foreach (VcmdqPage0Register r in Enum.GetValues<VcmdqPage0Register>())
            {
                list.Add(L.Vcmdq(q, r));
                list.Add(L.VintfPageBase + L.VcmdqStride * (ulong)q + (ulong)r);
            }
            foreach (VcmdqPage1Register r in Enum.GetValues<VcmdqPage1Register>())
            {
                list.Add(L.VcmdqPage1Base + L.VcmdqStride * (ulong)q + (ulong)r);
                list.Add(L.VintfPageBase + L.PageSize + L.VcmdqStride * (ulong)q + (ulong)r);
            }
        }
        return [.. list.Distinct()];
    }

    /// <summary>VCMDQs of the guest-visible CMDQV (the VMM gives its VINTF two).</summary>
    private const int GuestVcmdqs = 2;

    /// <summary>
    /// A command of the kinds a guest VINTF admits (TLBI_NH_ASID, TLBI_NH_VA, ATC_INV, CMD_SYNC), with
    /// its own or the other VM's vSIDs and VMIDs, or any SID, and every CMD_SYNC signal.
    /// </summary>
    private static Command GuestVcmdqCommand(Random rng, Guest self, Guest other, EmulatedHostDiagnostics diag)
    {
        uint sid = rng.Next(3) switch
        {
            0 when self.Devices.Count > 0 => self.Devices[rng.Next(self.Devices.Count)].Vsid,
            1 when other.Devices.Count > 0 => other.Devices[rng.Next(other.Devices.Count)].Vsid,
            _ => (uint)rng.Next(0x10000),
        };
        ushort vmid = rng.Next(2) == 0 && other.Devices.Count > 0 ? diag.ReadSte(other.Devices[0].Host!.Address).S2VMID : (ushort)rng.Next(0x10000);
        ushort asid = (ushort)rng.Next(4);
        ulong va = (ulong)rng.NextInt64(1L << 40) & ~0xFFFUL;
        return rng.Next(4) switch
        {
            0 => Command.TlbiNhAsid(vmid, asid),
            1 => Command.TlbiNhVa(vmid, asid, va, rng.Next(2) == 0, (uint)rng.Next(4), (uint)rng.Next(4), (uint)rng.Next(32), (uint)rng.Next(32)),
            2 => Command.AtcInv(sid, rng.Next(2) == 0 ? null : (uint)rng.Next(4), va, (uint)rng.Next(64), rng.Next(2) == 0),
            _ => Command.Sync((SyncSignal)rng.Next(3), (ulong)rng.NextInt64() & ~3UL, (uint)rng.Next()),
        };
    }

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
