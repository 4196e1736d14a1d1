using NestedSmmu.Hardware.Memory;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Vmm.Tests.VSmmu;

/// <summary>Guest RAM: host memory mapped into an IOAS at IOVA = guest PA, read through a guest-physical view.</summary>
public sealed class GuestRamTests
{
    [Fact]
    public void Guest_RAM_is_host_memory_mapped_at_its_guest_physical_address_and_outside_RAM_aborts()
    {
        var host = new EmulatedHost(HostProfile.LoadEmbedded("grace"));
        using IIommufd fd = host.Open();
        using var ram = new GuestRam(fd, GuestRam.VirtRamBase, 0x20_0000, name: "ram0");

        ram.WriteUInt64(GuestRam.VirtRamBase + 0x1000, 0x1122_3344_5566_7788);
        ram.ReadUInt64(GuestRam.VirtRamBase + 0x1000).ShouldBe(0x1122_3344_5566_7788UL);
        ram.Region.ReadUInt64(0x1000).ShouldBe(0x1122_3344_5566_7788UL, "the guest PA is an offset into the host region");
        host.Diagnostics.HostMemoryOwner(((EmulatedHostMemoryRegion)ram.Region).HostPhysicalAddress).ShouldNotBeNull();
        // The IOAS maps exactly RAM: mapping it again at an overlapping IOVA is EEXIST.
        Should.Throw<IommufdException>(() => fd.MapIoas(ram.Ioas, ram.Region, 0, 0x1000, GuestRam.VirtRamBase)).Errno.ShouldBe(Errno.EEXIST);

        ram.IsAbort(GuestRam.VirtRamBase - 8, 8).ShouldBeTrue();
        ram.IsAbort(ram.End - 4, 8).ShouldBeTrue("straddles the end");
        ram.IsAbort(ram.End - 8, 8).ShouldBeFalse();
        ram.ReadUInt64(0x1000).ShouldBe(0UL, "below RAM reads as zero");
        ram.WriteUInt64(ram.End, 1); // dropped, no exception
    }

    [Fact]
    public void Dispose_unmaps_RAM_and_frees_the_IOAS_it_made()
    {
        var host = new EmulatedHost(HostProfile.LoadEmbedded("grace"));
        using IIommufd fd = host.Open();
        ulong before = host.Diagnostics.HostMemoryAllocated;
        var ram = new GuestRam(fd, GuestRam.VirtRamBase, 0x10_0000);
        IoasId ioas = ram.Ioas;
        host.Diagnostics.HostMemoryAllocated.ShouldBeGreaterThan(before);

        ram.Dispose();

        host.Diagnostics.HostMemoryAllocated.ShouldBe(before);
        Should.Throw<IommufdException>(() => fd.Destroy(ioas)).Errno.ShouldBe(Errno.ENOENT);
    }
}
