using System.Buffers.Binary;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Machine;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Vmm.Tests.VSmmu;

/// <summary>
/// A VM on the emulated <c>grace</c> host with two accelerated vSMMUs on two physical SMMUs and
/// four vfio devices: vSMMU A (smmu3: nic0 at vSID 0x100, nic1 at 0x108) and vSMMU B (smmu4: nic2
/// at 0x200, nic3 at 0x208), their frames on the VM's MMIO bus where virt's platform bus puts
/// the first two arm-smmuv3 devices, guest RAM at 1 GiB.
/// </summary>
internal sealed class AccelRig : IDisposable
{
    public const ulong RamSize = 0x400_0000; // 64 MiB
    public const ulong FrameA = 0x0C00_0000, FrameB = FrameA + 0x20000;
    public const uint Nic0Vsid = 0x100, Nic1Vsid = 0x108, Nic2Vsid = 0x200, Nic3Vsid = 0x208;

    public AccelRig(int eventqLog2 = 6, bool attach = true)
    {
        Host = new EmulatedHost(HostProfile.LoadEmbedded("grace"));
        Fd = new RecordingIommufd(Host.Open());
        Ram = new GuestRam(Fd, GuestRam.VirtRamBase, RamSize);
        Context = new VSmmuHostContext(Fd, Ram.Ioas);
        var props = new VSmmuProperties(Accel: true, Ats: true, Ril: true, SsidSize: 0, OasBits: 48);
        A = new AcceleratedVSmmu("smmuv3.0", props, Ram, Context);
        B = new AcceleratedVSmmu("smmuv3.1", props with { Identifier = 1 }, Ram, Context);
        Bus.Map(FrameA, A, A.Name);
        Bus.Map(FrameB, B, B.Name);
        A.InterruptRaised += i => Interrupts.Add((A.Name, i));
        B.InterruptRaised += i => Interrupts.Add((B.Name, i));
        GuestA = new GuestSmmuDriver(Bus, FrameA, Ram, Ram.Base + RamSize / 2, eventqLog2);
        GuestB = new GuestSmmuDriver(Bus, FrameB, Ram, Ram.Base + RamSize / 2 + RamSize / 4, eventqLog2);
        Nic0 = Fd.BindDevice("nic0");
        Nic1 = Fd.BindDevice("nic1");
        Nic2 = Fd.BindDevice("nic2");
        Nic3 = Fd.BindDevice("nic3");
        if (attach)
        {
            A.AttachDevice(Nic0, Nic0Vsid);
            A.AttachDevice(Nic1, Nic1Vsid);
            B.AttachDevice(Nic2, Nic2Vsid);
            B.AttachDevice(Nic3, Nic3Vsid);
        }
    }

    public EmulatedHost Host { get; }
    public EmulatedHostDiagnostics Diag => Host.Diagnostics;
    public RecordingIommufd Fd { get; }
    public GuestRam Ram { get; }
    public VSmmuHostContext Context { get; }
    public MmioBus Bus { get; } = new();
    public AcceleratedVSmmu A { get; }
    public AcceleratedVSmmu B { get; }
    public GuestSmmuDriver GuestA { get; }
    public GuestSmmuDriver GuestB { get; }
    public DeviceId Nic0 { get; }
    public DeviceId Nic1 { get; }
    public DeviceId Nic2 { get; }
    public DeviceId Nic3 { get; }
    public List<(string Smmu, SmmuInterrupt Line)> Interrupts { get; } = new();

    /// <summary>A DMA read of 8 bytes by a host device through its physical SMMU.</summary>
    public (DmaResult Result, ulong Value) DmaRead(string device, ulong iova)
    {
        var b = new byte[8];
        DmaResult r = Diag.Dma(device, iova, AccessKind.Read, b);
        return (r, BinaryPrimitives.ReadUInt64LittleEndian(b));
    }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
        Ram.Dispose();
        Fd.Dispose();
    }
}
