using System.Buffers.Binary;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Scenarios.SelfChecks;

/// <summary>
/// The iommufd half of `nestedsmmu run`: on an emulated host it plays the VMM and the guest
/// through <see cref="IIommufd"/> alone (with <see cref="GuestVm"/>), as QEMU and a guest
/// kernel would: guest RAM in an IOAS, one nest-parent stage 2 shared by a vIOMMU on each of
/// two physical SMMUs, a vDEVICE per GPU, guest stage-1 tables and CDs in guest RAM, nested
/// HWPTs, device DMA (through the host diagnostics, as a device would), a fault delivered as a
/// vEVENT, and a guest invalidation forwarded through the vIOMMU.
/// </summary>
public sealed class EmulatedHostSelfCheck(TextWriter log, HostProfile profile)
{
    private const ulong GuestRamSize = 0x400_0000; // 64 MiB
    private const ulong DataIpa = GuestVm.DefaultRamBase + 0x10_0000, Va = 0x1000_0000, UnmappedVa = 0x2000_0000;
    private const ulong FirstVsid = 0x10;
    private const ulong Pattern = 0x0123_4567_89AB_CDEF;
    private const ushort Asid = 3;
    private const int GuestVaBits = 39; // T0SZ 25, 4 KiB granule: levels 1-3
    private readonly CheckList _checks = new(log);

    public int Passed => _checks.Passed;
    public IReadOnlyList<string> Failures => _checks.Failures;
    public EmulatedHost? Host { get; private set; }

    /// <summary>Runs every step; returns the number of failed checks.</summary>
    public int Run()
    {
        var host = Host = new EmulatedHost(profile);
        _checks.Note($"  host '{host.Profile.Name}': {host.Profile.Smmus.Count} SMMUs ({host.Profile.Smmus.Count(s => s.HasCmdqv)} with CMDQV), {host.Profile.Devices.Count} PCI devices");
        using EmulatedIommufd fd = host.Open();

        // Two devices behind different physical SMMUs, GPUs first.
        var gpus = host.Profile.Devices.OrderBy(d => d.Kind == PciDeviceKind.Gpu ? 0 : 1)
            .GroupBy(d => d.Smmu).Select(g => g.First()).Take(2).ToList();
        if (!_checks.Check("the profile has devices behind two SMMUs", gpus.Count == 2)) return Failures.Count;

        // One IOAS (the VM's RAM), one nest parent per SMMU: Linux keeps an S2 domain on the SMMU
        // it was allocated for (arm_vsmmu_init refuses a parent of another SMMU with EINVAL).
        var vm = GuestVm.Create(fd, GuestRamSize);
        var devs = new DeviceId[2];
        var parents = new HwptId[2];
        var viommus = new ViommuId[2];
        var events = new IVeventQueue[2];
        for (int i = 0; i < 2; i++)
        {
            (devs[i], parents[i]) = vm.BindNestParent(gpus[i].Address.ToString());
            viommus[i] = fd.AllocViommu(devs[i], parents[i], ViommuType.ArmSmmuV3).Id;
            fd.AllocVdevice(viommus[i], devs[i], FirstVsid + (ulong)i);
            events[i] = fd.AllocVeventq(viommus[i], VeventqType.ArmSmmuV3, depth: 8);
        }

        // The guest's stage 1: one address space mapping Va to a data page, and its CD.
        var space = vm.CreateStage1(GuestVaBits);
        space.Map(Va, DataIpa);
        ulong cdTable = vm.WriteCdTable(ContextDescriptor.Create(space.Root, Asid, 64 - GuestVaBits, ips: AddressSize.Encode(48)));
        vm.WriteGuest(DataIpa, Pattern);
        for (int i = 0; i < 2; i++)
            fd.AttachDevice(devs[i], fd.AllocNestedHwpt(devs[i], viommus[i], GuestVm.TranslateVste(cdTable)));

        var ste0 = host.Diagnostics.ReadSte(gpus[0].Name);
        var ste1 = host.Diagnostics.ReadSte(gpus[1].Name);
        _checks.Check($"both GPUs ({gpus[0].Name} on {gpus[0].Smmu}, {gpus[1].Name} on {gpus[1].Smmu}) have nested STEs, each with its own SMMU's stage 2",
            ste0.Config == SteConfig.Nested && ste1.Config == SteConfig.Nested && ste0.S2TTB != ste1.S2TTB);

        Span<byte> buf = stackalloc byte[8];
        for (int i = 0; i < 2; i++)
        {
            var r = host.Diagnostics.Dma(gpus[i].Name, Va, AccessKind.Read, buf);
            _checks.Check($"{gpus[i].Name} DMA through guest stage 1 and host stage 2 reads guest RAM",
                r.IsSuccess && BinaryPrimitives.ReadUInt64LittleEndian(buf) == Pattern);
        }

        var fault = host.Diagnostics.Dma(gpus[0].Name, UnmappedVa, AccessKind.Write, buf);
        var vevents = events[0].ReadAll();
        _checks.Check("an unmapped IOVA reaches the guest as an F_TRANSLATION vEVENT with the vSID",
            !fault.IsSuccess && vevents.Count == 1 && vevents[0].AsArmSmmuV3().EventId == (byte)EventType.F_TRANSLATION
            && vevents[0].AsArmSmmuV3().Sid == FirstVsid);

        string smmu0 = gpus[0].Smmu;
        int before = host.Diagnostics.TlbEntries(smmu0).Count;
        var inv = fd.InvalidateArmSmmuV3(viommus[0], Command.TlbiNhVa(0, Asid, Va, leaf: true));
        _checks.Check("a guest TLBI_NH_VA through the vIOMMU removes its IOTLB entry",
            inv.Succeeded && host.Diagnostics.TlbEntries(smmu0).Count == before - 1);

        var c0 = host.Diagnostics.Counters(smmu0);
        _checks.Note($"  {smmu0}: {c0.Translations} translations, {c0.CommandsExecuted} commands, {c0.EventsWritten} events; " +
                     $"VMIDs in use {string.Join(",", host.Diagnostics.Smmu(smmu0).VmidsInUse)}");
        foreach (var q in events) q.Dispose();
        return Failures.Count;
    }
}
