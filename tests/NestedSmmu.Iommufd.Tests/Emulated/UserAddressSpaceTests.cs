using NestedSmmu.Iommufd.Emulated;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// The emulated VMM address space the ioctl wrappers map their buffers into: each call maps a
/// buffer, runs the ioctl and unmaps it, so a long run must not use the space up.
/// </summary>
public sealed class UserAddressSpaceTests
{
    [Fact]
    public void Unmapping_the_last_mapping_hands_its_addresses_out_again()
    {
        var space = new UserAddressSpace();
        ulong kept = space.Map(new byte[100]);
        ulong first = space.Map(new byte[8192]);
        space.Unmap(first).ShouldBeTrue();
        space.Map(new byte[64]).ShouldBe(first, "a map/ioctl/unmap cycle reuses the range");
        space.Count.ShouldBe(2);
        kept.ShouldBeLessThan(first);
    }

    [Fact]
    public void A_mapping_in_the_middle_keeps_its_hole()
    {
        var space = new UserAddressSpace();
        ulong a = space.Map(new byte[16]);
        ulong b = space.Map(new byte[16]);
        space.Unmap(a).ShouldBeTrue();
        space.Map(new byte[16]).ShouldBeGreaterThan(b, "only the top of the space is reused; a hole below a live mapping stays unused");
    }

    [Fact]
    public void A_pooled_buffer_is_mapped_only_as_far_as_its_length()
    {
        var space = new UserAddressSpace();
        var copy = new UserCopy(space);
        byte[] pooled = new byte[64];
        ulong at = space.Map(pooled, 16);
        Span<byte> into = stackalloc byte[16];
        copy.FromUser(at, into).ShouldBe(Errno.None);
        Span<byte> past = stackalloc byte[17];
        copy.FromUser(at, past).ShouldBe(Errno.EFAULT, "the 17th byte is past the caller's buffer, as it would be past a real one");
    }

    [Fact]
    public void Ten_million_map_unmap_cycles_do_not_exhaust_the_space()
    {
        // 10^7 cycles of one page plus its guard page each would need 80 GB of fresh addresses,
        // under the 1 TiB the space has, but a run of 2 * 10^8 ioctls would not fit: reuse is what holds.
        var space = new UserAddressSpace();
        byte[] buffer = new byte[4096];
        ulong first = space.Map(buffer);
        space.Unmap(first);
        for (int i = 0; i < 10_000_000; i++)
        {
            ulong at = space.Map(buffer);
            if (at != first) at.ShouldBe(first, $"cycle {i}");
            space.Unmap(at);
        }
        space.Count.ShouldBe(0);
    }
}
