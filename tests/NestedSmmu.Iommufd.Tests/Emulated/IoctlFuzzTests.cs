using System.Buffers.Binary;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// Every ioctl of the emulated kernel's raw dispatcher with random argument bytes: sizes, flags,
/// reserved fields, object ids and user pointers. Each call must return 0 or a negative errno and
/// never throw; after each call the object table's reference counts must match the references the
/// objects hold on each other; at the end, destroying everything must succeed and give back every
/// pin on host memory. Seeded and bounded.
/// </summary>
public sealed class IoctlFuzzTests
{
    private const int Steps = 2_000;

    /// <summary>The commands the dispatcher knows, plus a few it reports as unimplemented or unknown.</summary>
    private static readonly uint[] Requests =
    [
        .. Enum.GetValues<IommufdIoctl>().Select(r => (uint)r),
        IommufdIoctls.Base + 0x7F, IommufdIoctls.Base - 1, 0,
    ];

    private static readonly int[] Errnos = [.. Enum.GetValues<Errno>().Select(e => -(int)e).Where(e => e != 0)];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(6)]
    public void Random_ioctls_return_an_errno_and_keep_the_object_table_consistent(int seed)
    {
        var rng = new Random(seed);
        using var bed = new TestBed();
        ulong baseline = bed.Diag.HostMemoryAllocated;
        // A VM with a nested setup on each SMMU, so random ids often name objects that accept the call.
        Vm vm = bed.CreateVm();
        bed.NestedSetup(vm, "gpu0");
        bed.NestedSetup(vm, "gpu1");
        bed.Fd.BindDevice("nic0");
        var userBuffer = new byte[0x4000];
        ulong userPointer = bed.Host.UserMemory.Map(userBuffer);
        ulong ramUser = ((EmulatedHostMemoryRegion)vm.Ram).UserAddress;
        var outcomes = new Dictionary<int, int>();

        for (int step = 0; step < Steps; step++)
        {
            uint request = Requests[rng.Next(Requests.Length)];
            byte[] arg = RandomArgument(rng, bed.Fd, userPointer, ramUser);
            int rc;
            try
            {
                rc = bed.Fd.Ioctl(request, arg);
            }
            catch (Exception ex)
            {
                throw new Xunit.Sdk.XunitException($"seed {seed} step {step}: ioctl 0x{request:X} threw {ex.GetType().Name}: {ex.Message}\n"
                    + $"argument {Convert.ToHexString(arg)}");
            }
            (rc == 0 || Errnos.Contains(rc)).ShouldBeTrue($"seed {seed} step {step}: ioctl 0x{request:X} returned {rc}");
            outcomes[rc] = outcomes.GetValueOrDefault(rc) + 1;
            string? broken = ObjectTableInvariant(bed.Fd);
            broken.ShouldBeNull($"seed {seed} step {step}: ioctl 0x{request:X} argument {Convert.ToHexString(arg)}");
        }
        outcomes.Keys.Count.ShouldBeGreaterThan(3, "the campaign reached several outcomes, not one early check");
        outcomes.ShouldContainKey(0, $"some random calls succeed: {string.Join(", ", outcomes.Select(o => $"{o.Key}: {o.Value}"))}");

        DestroyEverything(bed.Fd);
        bed.Fd.LiveObjects.ShouldBeEmpty();
        bed.Host.UserMemory.Unmap(userPointer).ShouldBeTrue();
        bed.Fd.Dispose();
        vm.Ram.Dispose(); // the VMM's memory, not the context's: closing the iommufd leaves it
        bed.Diag.KernelLog.ShouldNotContain(l => l.Contains("still in use") || l.Contains("users left"));
        bed.Diag.HostMemoryHeldForContexts.ShouldBe(baseline, "every host page came back (CD tables stay for the devices' life)");
    }

    /// <summary>
    /// An argument of a random size (mostly the struct's own), random bytes, and on aligned words
    /// values that matter: live object ids, 0, all ones, user pointers, guest RAM addresses, small counts.
    /// </summary>
    private static byte[] RandomArgument(Random rng, EmulatedIommufd fd, ulong userPointer, ulong ramUser)
    {
        int length = rng.Next(6) switch { 0 => rng.Next(0, 8), 1 => rng.Next(8, 128), _ => 64 };
        var arg = new byte[length];
        rng.NextBytes(arg);
        uint[] ids = [.. fd.LiveObjects.Select(o => o.Id)];
        for (int at = 4; at + 4 <= length; at += 4)
        {
            int pick = rng.Next(12);
            if (pick < 5) BinaryPrimitives.WriteUInt32LittleEndian(arg.AsSpan(at), 0);
            else if (pick < 8 && ids.Length > 0) BinaryPrimitives.WriteUInt32LittleEndian(arg.AsSpan(at), ids[rng.Next(ids.Length)]);
            else if (pick == 8) BinaryPrimitives.WriteUInt32LittleEndian(arg.AsSpan(at), (uint)rng.Next(1, 32));
            else if (pick == 9 && at % 8 == 0 && at + 8 <= length)
            {
                ulong pointer = rng.Next(5) switch
                {
                    0 => userPointer,
                    1 => userPointer + (ulong)rng.Next(0x4000),
                    2 => ramUser + (ulong)rng.Next(16) * TestBed.Page,
                    3 => TestBed.GuestRamBase + (ulong)rng.Next(16) * TestBed.Page,
                    _ => ulong.MaxValue - (ulong)rng.Next(0x2000),
                };
                BinaryPrimitives.WriteUInt64LittleEndian(arg.AsSpan(at), pointer);
                at += 4;
            }
        }
        if (length >= 4)
        {
            // size: mostly a plausible struct size (4-byte multiple, zero tail past it, as a
            // well-behaved caller with an older or newer header would pass), sometimes anything.
            uint size = rng.Next(5) == 0 ? (uint)rng.Next() : (uint)(rng.Next(1, length / 4 + 1) * 4);
            BinaryPrimitives.WriteUInt32LittleEndian(arg, size);
            if (size < length && rng.Next(4) != 0) arg.AsSpan((int)size).Clear();
        }
        return arg;
    }

    /// <summary>
    /// Each object's user count equals the references to it that the live objects hold
    /// (iommufd's refcounts: HWPTs hold their IOAS, vIOMMUs their nest parent, vDEVICEs their
    /// vIOMMU and device, attachments their HWPT, HW queues the queue before them and a pin on the IOAS).
    /// </summary>
    internal static string? ObjectTableInvariant(EmulatedIommufd fd) => ObjectTableCheck.Problem(fd);

    /// <summary>DESTROY every id until nothing is left but bound devices, then unbind them: nothing may stay.</summary>
    internal static void DestroyEverything(EmulatedIommufd fd)
    {
        for (int round = 0; round < 64; round++)
        {
            var left = fd.LiveObjects.Where(o => o is not DeviceObject).ToList();
            if (left.Count == 0) break;
            int destroyed = 0;
            foreach (IommufdObject o in left)
            {
                if (o is VeventqObject { Reader: { } reader } q && q.Users > 0) reader.Dispose();
                var destroy = IommufdMarshal.Destroy(new ObjectId(o.Id));
                if (fd.Ioctl((uint)IommufdIoctl.Destroy, IommufdMarshal.AsBytes(ref destroy)) == 0) destroyed++;
                else
                {
                    // A device attached to it keeps it busy: detach the devices (VFIO's detach) and retry.
                    foreach (DeviceObject d in fd.LiveObjects.OfType<DeviceObject>().Where(d => d.Attached == o))
                        fd.DetachDevice(new DeviceId(d.Id));
                }
            }
            ObjectTableInvariant(fd).ShouldBeNull();
        }
        foreach (DeviceObject d in fd.LiveObjects.OfType<DeviceObject>().ToList()) fd.UnbindDevice(new DeviceId(d.Id));
        ObjectTableInvariant(fd).ShouldBeNull();
    }
}
