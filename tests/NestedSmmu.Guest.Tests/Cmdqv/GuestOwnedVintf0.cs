using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Memory;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Guest.Tests.Cmdqv;

/// <summary>
/// What a VMM does to the CMDQV frame it shows a guest, played by the test over Hardware's model:
/// HYP_OWN in VINTF0 CONFIG is wired to 0 on write and the host's VMID is put in (qemu.md §4: "HYP_OWN
/// 17 forced to 0 on write"; the host kernel programs the VMID). Everything else passes through: the
/// model's VINTF0 and its logical pages sit where the VM layout puts them (0x1000, 0x30000, 0x40000).
/// </summary>
internal sealed class GuestOwnedVintf0(Tegra241Cmdqv model, ushort vmid) : IMmioDevice
{
    public ulong Size => model.Size;
    public ulong Read(ulong offset, int width) => model.Read(offset, width);

    public void Write(ulong offset, int width, ulong value)
    {
        if (offset == L.Vintf(0, VintfRegister.CONFIG))
            value = (value & ~(ulong)Tegra241Cmdqv.VINTF_HYP_OWN & ~Tegra241Cmdqv.VINTF_VMID.Mask) | Tegra241Cmdqv.VINTF_VMID.Encode(vmid);
        model.Write(offset, width, value);
    }
}

