using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Machine;
using NestedSmmu.Vmm.VSmmu;

namespace NestedSmmu.Vmm.Tests.VSmmu;

/// <summary>accel=off: the hardware layer's SMMUv3 translating for an emulated device over guest RAM.</summary>
public sealed class EmulatedVSmmuTests
{
    private const ulong Frame = 0x0C00_0000;
    private const uint Sid = 0x10; // 00:02.0 on pcie.0
    private const ushort Asid = 3;
    private const ulong Va = 0x4000_0000, UnmappedVa = 0x5000_0000;
    private const ulong DataIpa = GuestRam.VirtRamBase + 0x30_0000;

    [Fact]
    public void An_emulated_endpoint_DMA_is_translated_by_the_guest_tables_and_its_faults_reach_the_guest_event_queue()
    {
        var host = new EmulatedHost(HostProfile.LoadEmbedded("grace"));
        using IIommufd fd = host.Open();
        using var ram = new GuestRam(fd, GuestRam.VirtRamBase, 0x100_0000);
        var bus = new MmioBus();
        using var vsmmu = new EmulatedVSmmu("smmuv3.0", VSmmuProperties.EmulatedDefault, ram);
        bus.Map(Frame, vsmmu, vsmmu.Name);
        var interrupts = new List<SmmuInterrupt>();
        vsmmu.InterruptRaised += interrupts.Add;
        var guest = new GuestSmmuDriver(bus, Frame, ram, ram.Base + 0x80_0000);
        guest.Init();
        var (tables, cd) = guest.AddressSpace(Asid);
        tables.Map(Va, DataIpa);
        ram.WriteUInt64(DataIpa, 0xAB_CDEF);
        guest.TranslateStream(Sid, cd);
        PciEndpoint nic = vsmmu.CreateEndpoint("e1000", new RequesterId(0x10), Sid);

        Span<byte> b = stackalloc byte[8];
        DmaResult r = nic.Read(Va, b);

        r.IsSuccess.ShouldBeTrue(r.Translation.ToString());
        r.Translation.PhysicalAddress.ShouldBe(DataIpa, "accel=off: the output is a guest physical address");
        BitConverter.ToUInt64(b).ShouldBe(0xAB_CDEFUL);
        nic.Write(Va + 8, [1, 2, 3, 4]).IsSuccess.ShouldBeTrue();
        ram.ReadUInt32(DataIpa + 8).ShouldBe(0x0403_0201u);

        // An unmapped VA faults into the guest's event queue, with the interrupt the guest enabled.
        vsmmu.Translate(Sid, null, UnmappedVa, AccessKind.Read).FaultType.ShouldBe(EventType.F_TRANSLATION);
        List<EventRecord> events = guest.DrainEvents();
        events.Count.ShouldBe(1);
        (events[0].Type, events[0].SID, events[0].InputAddress).ShouldBe((EventType.F_TRANSLATION, Sid, UnmappedVa));
        interrupts.ShouldContain(SmmuInterrupt.EventQueue);

        // The guest unmaps and invalidates: the cached translation goes with it.
        tables.Unmap(Va);
        nic.Read(Va, b).IsSuccess.ShouldBeTrue("still cached in the vSMMU's TLB");
        guest.Submit(Command.TlbiNhVa(0, Asid, Va, leaf: true), Command.Sync(SyncSignal.Irq));
        nic.Read(Va, b).IsSuccess.ShouldBeFalse();
        interrupts.ShouldContain(SmmuInterrupt.CmdSync);
        vsmmu.Traps.Total.ShouldBe(guest.MmioReads + guest.MmioWrites);
    }

    [Fact]
    public void Accel_on_properties_are_refused()
    {
        Should.Throw<ArgumentException>(() => new EmulatedVSmmu("smmuv3.0", new VSmmuProperties(Accel: true), new SparseMemory()));
    }
}
