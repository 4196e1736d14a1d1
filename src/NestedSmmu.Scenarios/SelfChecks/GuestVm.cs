using NestedSmmu.Guest.PageTables;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Scenarios.SelfChecks;

/// <summary>
/// A VM's memory as a VMM sets it up through <see cref="IIommufd"/> alone, and the guest's view of
/// it: guest RAM from the backend, one IOAS mapping it at <see cref="RamBase"/> (QEMU's virt board
/// puts RAM at 1 GiB), guest tables in its top half addressed by IPA, and the vIOMMU steps every
/// nested run repeats. Shared by the CLI's `run` and the emulated kernel's end-to-end tests.
/// </summary>
public sealed class GuestVm
{
    /// <summary>Where guest RAM starts in the guest physical (IPA) space, as on QEMU's virt board.</summary>
    public const ulong DefaultRamBase = 0x4000_0000;
    private const ulong TablePageBytes = 0x1000;

    private GuestVm(IIommufd iommufd, HostMemoryRegion ram, IoasId ioas, ulong ramBase, ulong size)
    {
        Iommufd = iommufd;
        Ram = ram;
        Ioas = ioas;
        RamBase = ramBase;
        RamSize = size;
        // Guest tables go in the top half of guest RAM; data pages in the bottom half.
        Tables = new MemoryTableSpace(ram, ramBase + size / 2, ramBase);
    }

    /// <summary>Allocates <paramref name="size"/> bytes of guest RAM and an IOAS that maps it at <paramref name="ramBase"/>.</summary>
    public static GuestVm Create(IIommufd iommufd, ulong size, string name = "guest-ram", ulong ramBase = DefaultRamBase)
    {
        ArgumentNullException.ThrowIfNull(iommufd);
        HostMemoryRegion ram = iommufd.AllocateHostMemory(size, name);
        IoasId ioas = iommufd.AllocIoas();
        iommufd.MapIoas(ioas, ram, 0, size, ramBase);
        return new GuestVm(iommufd, ram, ioas, ramBase, size);
    }

    public IIommufd Iommufd { get; }
    public HostMemoryRegion Ram { get; }
    public IoasId Ioas { get; }
    public ulong RamBase { get; }
    public ulong RamSize { get; }

    /// <summary>The guest's table space: tables addressed by IPA, allocated from the top half of RAM.</summary>
    public MemoryTableSpace Tables { get; }

    public void WriteGuest(ulong ipa, ulong value) => Ram.WriteUInt64(ipa - RamBase, value);

    public ulong ReadGuest(ulong ipa) => Ram.ReadUInt64(ipa - RamBase);

    /// <summary>A zeroed 4 KiB guest page for tables; returns its IPA.</summary>
    public ulong AllocTablePage() => Tables.AllocTable(TablePageBytes);

    /// <summary>A guest stage 1 for a <paramref name="inputBits"/>-bit VA with 4 KiB pages, in the table space.</summary>
    public TranslationTables CreateStage1(int inputBits) => TranslationTables.ForStage1(Tables, (int)Granule.G4K, inputBits);

    /// <summary>A linear CD table (one CD per SSID) in guest RAM; returns its IPA.</summary>
    public ulong WriteCdTable(params ReadOnlySpan<ContextDescriptor> cds)
    {
        ulong table = AllocTablePage();
        for (int i = 0; i < cds.Length; i++)
        {
            ulong cd = table + (ulong)(i * ContextDescriptor.Size);
            WriteGuest(cd, cds[i].W0);
            WriteGuest(cd + 8, cds[i].W1);
            WriteGuest(cd + 16, cds[i].W2);
            WriteGuest(cd + 24, cds[i].W3);
        }
        return table;
    }

    /// <summary>Binds <paramref name="device"/> and allocates a nest-parent HWPT (the VM's stage 2) on this VM's IOAS.</summary>
    public (DeviceId Device, HwptId Parent) BindNestParent(string device)
    {
        DeviceId dev = Iommufd.BindDevice(device);
        return (dev, Iommufd.AllocPagingHwpt(dev, Ioas, HwptAllocFlags.NestParent));
    }

    /// <summary>Binds a device, a nest parent for it, and a vIOMMU of <paramref name="type"/> on that parent.</summary>
    public (DeviceId Device, HwptId Parent, ViommuId Viommu) NestedSetup(string device, ViommuType type = ViommuType.ArmSmmuV3)
    {
        var (dev, parent) = BindNestParent(device);
        return (dev, parent, Iommufd.AllocViommu(dev, parent, type).Id);
    }

    /// <summary>A guest vSTE that translates (stage 1) with a linear CD table at <paramref name="cdTableIpa"/>.</summary>
    public static ArmSmmuV3Vste TranslateVste(ulong cdTableIpa, bool ats = false)
    {
        StreamTableEntry ste = StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: cdTableIpa, shcfg: 0, eats: ats ? 1u : 0u);
        return new ArmSmmuV3Vste(ste.W0, ste.W1);
    }
}
