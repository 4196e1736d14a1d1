using System.Buffers.Binary;
using NestedSmmu.Guest.PageTables;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Cli;

/// <summary>
/// The iommufd half of `run`: on an emulated host (by default the embedded Grace-class profile) it plays
/// the VMM and the guest through <see cref="IIommufd"/> alone, as QEMU and a guest kernel would:
/// guest RAM in an IOAS, one nest-parent stage 2 shared by a vIOMMU on each of two physical
/// SMMUs, a vDEVICE per GPU, guest stage-1 tables and CDs in guest RAM, nested HWPTs, device
/// DMA (through the host diagnostics, as a device would), a fault delivered as a vEVENT, and a
/// guest invalidation forwarded through the vIOMMU.
/// </summary>
internal sealed class EmulatedHostCheck(TextWriter log, HostProfile profile)
{
    private const ulong GuestRamBase = 0x4000_0000, GuestRamSize = 0x400_0000; // 64 MiB at 1 GiB, as on QEMU virt
    private const ulong CdTableIpa = GuestRamBase + 0x200_0000, TablesIpa = GuestRamBase + 0x210_0000;
    private const ulong DataIpa = GuestRamBase + 0x10_0000, Va = 0x1000_0000, UnmappedVa = 0x2000_0000;
    private const ushort Asid = 3;
    private const int GuestT0sz = 25, GuestStartLevel = 1; // 39-bit guest VA, 4 KiB granule: levels 1-3
    private readonly List<string> _failures = new();

    public int Passed { get; private set; }
    public IReadOnlyList<string> Failures => _failures;
    public EmulatedHost? Host { get; private set; }

    public int Run()
    {
        var host = Host = new EmulatedHost(profile);
        log.WriteLine($"  host '{host.Profile.Name}': {host.Profile.Smmus.Count} SMMUs ({host.Profile.Smmus.Count(s => s.HasCmdqv)} with CMDQV), {host.Profile.Devices.Count} PCI devices");
        using EmulatedIommufd fd = host.Open();

        // Two devices behind different physical SMMUs, GPUs first.
        var gpus = host.Profile.Devices.OrderBy(d => d.Kind == PciDeviceKind.Gpu ? 0 : 1)
            .GroupBy(d => d.Smmu).Select(g => g.First()).Take(2).ToList();
        Check("the profile has devices behind two SMMUs", gpus.Count == 2);
        if (gpus.Count < 2) return _failures.Count;

        HostMemoryRegion ram = fd.AllocateHostMemory(GuestRamSize, "guest-ram");
        IoasId ioas = fd.AllocIoas();
        fd.MapIoas(ioas, ram, 0, GuestRamSize, GuestRamBase);
        // Guest tables in guest RAM, addressed by IPA.
        var tables = new MemoryTableSpace(ram, TablesIpa, GuestRamBase);

        DeviceId[] devs = [.. gpus.Select(g => fd.BindDevice(g.Address.ToString()))];
        HwptId parent = fd.AllocPagingHwpt(devs[0], ioas, HwptAllocFlags.NestParent);
        var viommus = new ViommuId[2];
        var events = new IVeventQueue[2];
        for (int i = 0; i < 2; i++)
        {
            viommus[i] = fd.AllocViommu(devs[i], parent, ViommuType.ArmSmmuV3).Id;
            fd.AllocVdevice(viommus[i], devs[i], (ulong)(0x10 + i));
            events[i] = fd.AllocVeventq(viommus[i], VeventqType.ArmSmmuV3, depth: 8);
        }

        // The guest's stage 1: one address space mapping Va to a data page, and its CD.
        var space = new TranslationTables(tables, 12, 64 - GuestT0sz, GuestStartLevel, stage2: false);
        space.Map(Va, DataIpa);
        var cd = ContextDescriptor.Create(space.Root, Asid, GuestT0sz, ips: AddressSize.Encode(48));
        tables.Word(CdTableIpa, cd.W0); tables.Word(CdTableIpa + 8, cd.W1); tables.Word(CdTableIpa + 24, cd.W3);
        tables.Word(DataIpa, 0x0123_4567_89AB_CDEF);
        var vste = StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: CdTableIpa, shcfg: 0);
        for (int i = 0; i < 2; i++)
            fd.AttachDevice(devs[i], fd.AllocNestedHwpt(devs[i], viommus[i], new ArmSmmuV3Vste(vste.W0, vste.W1)));

        var ste0 = host.Diagnostics.ReadSte(gpus[0].Name);
        var ste1 = host.Diagnostics.ReadSte(gpus[1].Name);
        Check($"both GPUs ({gpus[0].Name} on {gpus[0].Smmu}, {gpus[1].Name} on {gpus[1].Smmu}) have nested STEs sharing one stage 2",
            ste0.Config == SteConfig.Nested && ste1.Config == SteConfig.Nested && ste0.S2TTB == ste1.S2TTB);

        Span<byte> buf = stackalloc byte[8];
        for (int i = 0; i < 2; i++)
        {
            var r = host.Dma(gpus[i].Name, Va, AccessKind.Read, buf);
            Check($"{gpus[i].Name} DMA through guest stage 1 and host stage 2 reads guest RAM",
                r.IsSuccess && BinaryPrimitives.ReadUInt64LittleEndian(buf) == 0x0123_4567_89AB_CDEF);
        }

        var fault = host.Dma(gpus[0].Name, UnmappedVa, AccessKind.Write, buf);
        var vevents = events[0].ReadAll();
        Check("an unmapped IOVA reaches the guest as an F_TRANSLATION vEVENT with the vSID",
            !fault.IsSuccess && vevents.Count == 1 && vevents[0].AsArmSmmuV3().EventId == (byte)EventType.F_TRANSLATION
            && vevents[0].AsArmSmmuV3().Sid == 0x10);

        string smmu0 = gpus[0].Smmu;
        int before = host.Diagnostics.TlbEntries(smmu0).Count;
        var inv = fd.InvalidateArmSmmuV3(viommus[0], [Command.TlbiNhVa(0, Asid, Va, leaf: true).W0, Command.TlbiNhVa(0, Asid, Va, leaf: true).W1]);
        Check("a guest TLBI_NH_VA through the vIOMMU removes its IOTLB entry",
            inv.Succeeded && host.Diagnostics.TlbEntries(smmu0).Count == before - 1);

        var c0 = host.Diagnostics.Counters(smmu0);
        log.WriteLine($"  {smmu0}: {c0.Translations} translations, {c0.CommandsExecuted} commands, {c0.EventsWritten} events; " +
                      $"VMIDs in use {string.Join(",", host.Diagnostics.Smmu(smmu0).VmidsInUse)}");
        foreach (var q in events) q.Dispose();
        return _failures.Count;
    }

    private void Check(string what, bool ok)
    {
        log.WriteLine($"  [{(ok ? "ok" : "FAIL")}] {what}");
        if (ok) Passed++;
        else _failures.Add(what);
    }
}
