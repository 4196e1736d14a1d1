using NestedSmmu.Iommufd;
using NestedSmmu.Vmm.VCmdqv;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Vmm.Tests.VSmmu;

/// <summary>
/// The hook between an accelerated vSMMU with cmdqv=on and the guest-visible CMDQV: the CMDQV is
/// built from the vIOMMU the vSMMU announces and gives back its mmap and vEVENTQ before the
/// vSMMU destroys that vIOMMU.
/// </summary>
public sealed class CmdqvHookTests
{
    private const ulong CmdqvBase = 0x0C10_0000;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_guest_CMDQV_lives_exactly_as_long_as_the_vIOMMU_when_it_listens_to_the_vSMMU(bool releaseOnDestroying)
    {
        using var rig = new AccelRig(attach: false);
        using var vsmmu = new AcceleratedVSmmu("smmuv3.0", new VSmmuProperties(Accel: true, Ats: true, OasBits: 48, Cmdqv: true),
            rig.Ram, rig.Context);
        Tegra241VCmdqv? cmdqv = null;
        vsmmu.ViommuCreated += v => cmdqv = new Tegra241VCmdqv(rig.Fd, v, "nic0",
            [new GuestRamBlock("ram0", rig.Ram.Base, rig.Ram.Size, 0x1000)], rig.Bus, CmdqvBase, new IrqLine("smmuv3.0 cmdqv"));
        if (releaseOnDestroying) vsmmu.ViommuDestroying += _ => cmdqv!.Dispose();

        vsmmu.AttachDevice(rig.Nic0, AccelRig.Nic0Vsid);
        cmdqv.ShouldNotBeNull();
        rig.Bus.TryFind(CmdqvBase, out _).ShouldBeTrue("the CMDQV region is on the guest's bus");

        vsmmu.DetachDevice(AccelRig.Nic0Vsid);

        if (releaseOnDestroying)
        {
            vsmmu.Log.ShouldBeEmpty("the vIOMMU was free to go");
            rig.Bus.TryFind(CmdqvBase, out _).ShouldBeFalse();
        }
        else
        {
            // The VINTF page mmap and the CMDQV vEVENTQ keep the vIOMMU busy: the kernel says EBUSY.
            vsmmu.Log.ShouldContain(l => l.Contains("vIOMMU", StringComparison.Ordinal) && l.Contains(nameof(Errno.EBUSY), StringComparison.Ordinal));
            cmdqv!.Dispose();
        }
    }
}
