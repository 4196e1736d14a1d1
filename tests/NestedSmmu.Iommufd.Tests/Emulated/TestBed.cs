using System.Buffers.Binary;
using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;
using NestedSmmu.Scenarios.SelfChecks;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// A VMM's view of the emulated host for tests: the "small" profile (smmu0: gpu0 SID 0x100 and
/// nic0 SID 0x200, linear stream table, CMDQV; smmu1: gpu1 and nic1, two-level, no RIL), one
/// open iommufd, and helpers that build guest RAM, a nest parent, vIOMMUs and guest stage-1
/// tables the way a guest and a VMM would.
/// </summary>
internal sealed class TestBed : IDisposable
{
    /// <summary>Guest RAM starts at 1 GiB in the guest physical (IPA) space, as on QEMU's virt board.</summary>
    public const ulong GuestRamBase = 0x4000_0000;
    public const ulong GuestRamSize = 0x100_0000; // 16 MiB
    public const ulong Page = 0x1000;

    public TestBed(bool selftest = true, string profile = "small")
        : this(HostProfile.LoadEmbedded(profile), selftest)
    {
    }

    /// <summary>A host built from <paramref name="profile"/> (a variant of an embedded one, say).</summary>
    public TestBed(HostProfile profile, bool selftest = false)
        : this(profile, new EmulatedHostOptions { EnableSelftestTypes = selftest })
    {
    }

    /// <summary>A host built from <paramref name="profile"/> with <paramref name="options"/>.</summary>
    public TestBed(HostProfile profile, EmulatedHostOptions options)
    {
        Host = new EmulatedHost(profile, options);
        Fd = Host.Open();
    }

    public EmulatedHost Host { get; }
    public EmulatedIommufd Fd { get; }
    public EmulatedHostDiagnostics Diag => Host.Diagnostics;

    public void Dispose() => Fd.Dispose();

    /// <summary>A VM's memory: guest RAM allocated, an IOAS mapping it at <see cref="GuestRamBase"/> (the CLI's `run` does the same).</summary>
    public Vm CreateVm(string name = "ram0", ulong size = GuestRamSize) => new(this, GuestVm.Create(Fd, size, name, GuestRamBase));

    /// <summary>Binds a device, a nest-parent HWPT for it, and a vIOMMU of <paramref name="type"/>.</summary>
    public (DeviceId Dev, HwptId Parent, ViommuId Viommu) NestedSetup(Vm vm, string device, ViommuType type = ViommuType.ArmSmmuV3) =>
        vm.Guest.NestedSetup(device, type);

    /// <summary>A guest vSTE that translates with a linear CD table at <paramref name="cdTableIpa"/>.</summary>
    public static ArmSmmuV3Vste TranslateVste(ulong cdTableIpa, bool ats = false) => GuestVm.TranslateVste(cdTableIpa, ats);

    public static ArmSmmuV3Vste AbortVste => new(StreamTableEntry.Create(SteConfig.Abort, shcfg: 0).W0, 0);
    public static ArmSmmuV3Vste BypassVste => new(StreamTableEntry.Create(SteConfig.Bypass, shcfg: 0).W0, 0);

    public static byte[] Commands(params Command[] commands)
    {
        var b = new byte[commands.Length * Command.Size];
        for (int i = 0; i < commands.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(i * Command.Size), commands[i].W0);
            BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(i * Command.Size + 8), commands[i].W1);
        }
        return b;
    }

    public InvalidateResult Invalidate(ObjectId target, params Command[] commands) => Fd.InvalidateArmSmmuV3(target, commands);

    public static void ShouldFail(Action call, Errno errno)
    {
        var e = Should.Throw<IommufdException>(call);
        e.Errno.ShouldBe(errno, e.Message);
    }

    /// <summary>A DMA read of 8 bytes by a device; returns the result and the value read.</summary>
    public (Hardware.Pci.DmaResult Result, ulong Value) DmaRead(string device, ulong iova, uint? pasid = null)
    {
        var b = new byte[8];
        var r = Diag.Dma(device, iova, AccessKind.Read, b, pasid);
        return (r, BinaryPrimitives.ReadUInt64LittleEndian(b));
    }
}

/// <summary>Guest RAM and the IOAS that maps it (the shared <see cref="GuestVm"/>), with what the tests look at.</summary>
internal sealed class Vm(TestBed bed, GuestVm guest)
{
    public TestBed Bed { get; } = bed;
    public GuestVm Guest { get; } = guest;
    public HostMemoryRegion Ram => Guest.Ram;
    public IoasId Ioas => Guest.Ioas;

    /// <summary>Host PA of a guest physical address (the emulated region is physically contiguous).</summary>
    public ulong HostPa(ulong ipa) => ((EmulatedHostMemoryRegion)Ram).HostPhysicalAddress + (ipa - TestBed.GuestRamBase);

    public void WriteGuest(ulong ipa, ulong value) => Guest.WriteGuest(ipa, value);

    public ulong ReadGuest(ulong ipa) => Guest.ReadGuest(ipa);

    /// <summary>
    /// One more host page mapped in the IOAS right after guest RAM (what the unmap tests take away
    /// again); returns its IOVA.
    /// </summary>
    public ulong MapExtraPage(out HostMemoryRegion extra)
    {
        extra = Bed.Fd.AllocateHostMemory(TestBed.Page, "extra");
        const ulong iova = TestBed.GuestRamBase + TestBed.GuestRamSize;
        Bed.Fd.MapIoas(Ioas, extra, 0, TestBed.Page, iova);
        return iova;
    }

    /// <summary>A zeroed guest page for tables (top half of guest RAM); returns its IPA.</summary>
    public ulong AllocTablePage() => Guest.AllocTablePage();

    /// <summary>
    /// Guest stage-1 for one address space: a 39-bit VA space (T0SZ 25, 4 KiB granule, start at
    /// level 1) with its own tables, written by the tests' own reference writer, and a CD describing it.
    /// </summary>
    public GuestAddressSpace CreateAddressSpace(ushort asid) => new(this, asid, AllocTablePage());

    /// <summary>A linear CD table (one CD per SSID) in guest RAM; returns its IPA.</summary>
    public ulong WriteCdTable(params ContextDescriptor[] cds) => Guest.WriteCdTable(cds);
}

/// <summary>A guest stage-1 address space (VMSAv8-64, 4 KiB granule, 39-bit VA).</summary>
internal sealed class GuestAddressSpace(Vm vm, ushort asid, ulong root)
{
    private const int T0sz = 25;
    private const int StartLevel = 1;
    // Stage-1 descriptor bits (Arm ARM D8.3): valid, table/page, AttrIndx 0, AP[1] (EL0 access), SH inner,
    // AF, and nG: the guest's io-pgtable marks every stage-1 entry non-global, so TLB entries carry the ASID.
    private const ulong Valid = 1, TableOrPage = 2, ApEl0 = 1UL << 6, ShInner = 3UL << 8, Af = 1UL << 10, NotGlobal = 1UL << 11;

    public ushort Asid { get; } = asid;
    public ulong Root { get; } = root;

    /// <summary>The CD for this address space: TTB0, T0SZ 25, 4 KiB, 48-bit IPS, record faults.</summary>
    public ContextDescriptor Cd => ContextDescriptor.Create(Root, Asid, T0sz, tg0: 0, ips: AddressSize.Encode(48));

    /// <summary>Maps one 4 KiB page VA → IPA, read/write at EL0.</summary>
    public void Map(ulong va, ulong ipa)
    {
        ulong table = Root;
        for (int level = StartLevel; level < 3; level++)
        {
            int shift = GranuleGeometry.LevelShift(Granule.G4K, level);
            ulong index = (va >> shift) & 0x1FF;
            ulong slot = table + index * 8;
            ulong desc = vm.ReadGuest(slot);
            if ((desc & Valid) == 0)
            {
                ulong next = vm.AllocTablePage();
                vm.WriteGuest(slot, next | Valid | TableOrPage);
                table = next;
            }
            else
            {
                table = desc & Bits.Mask(47, 12);
            }
        }
        ulong leafSlot = table + ((va >> 12) & 0x1FF) * 8;
        vm.WriteGuest(leafSlot, (ipa & Bits.Mask(47, 12)) | Valid | TableOrPage | ApEl0 | ShInner | Af | NotGlobal);
    }

    public void Unmap(ulong va)
    {
        ulong table = Root;
        for (int level = StartLevel; level < 3; level++)
        {
            int shift = GranuleGeometry.LevelShift(Granule.G4K, level);
            ulong desc = vm.ReadGuest(table + ((va >> shift) & 0x1FF) * 8);
            if ((desc & Valid) == 0) return;
            table = desc & Bits.Mask(47, 12);
        }
        vm.WriteGuest(table + ((va >> 12) & 0x1FF) * 8, 0);
    }
}
