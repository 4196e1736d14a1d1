using System.Diagnostics;
using NestedSmmu.Guest.Dma;
using NestedSmmu.Guest.Smmu;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Cli.Run;

/// <summary>What one whole-system measurement found.</summary>
/// <param name="Host">The host profile's name.</param>
/// <param name="Vsmmus">vSMMUs the VM got.</param>
/// <param name="Devices">Devices the guest probed and drives.</param>
/// <param name="BootNs">Check of the machine, emulated host, VM realize, guest boot and device probe: wall time.</param>
/// <param name="DmaNs">Median ns per DMA through nested translation with a warm TLB.</param>
/// <param name="DmaBytes">Bytes per DMA.</param>
public sealed record WholeSystemFigures(string Host, int Vsmmus, int Devices, double BootNs, double DmaNs, int DmaBytes)
{
    /// <summary>DMAs per second the model sustains.</summary>
    public double DmasPerSecond => 1e9 / DmaNs;

    /// <summary>Bytes per second the model moves (10^9 bytes = 1 GB).</summary>
    public double BytesPerSecond => DmaBytes * DmasPerSecond;
}

/// <summary>
/// The whole system as `nestedsmmu run` builds it with no QEMU arguments (<see cref="DefaultMachine"/>):
/// the time from nothing to a booted guest that has probed every vSMMU and device (the part of a
/// run before its workloads), and then the DMA rate through nested translation once the TLBs are
/// warm: every device the guest drives, in turn, reads <see cref="DmaBytes"/> from each page of its
/// own DMA-mapped buffer (guest stage 1 over the host's stage 2 on its physical SMMU).
/// </summary>
internal static class WholeSystemBench
{
    /// <summary>Bytes per DMA: one 4 KiB page, one translation.</summary>
    public const int DmaBytes = 4096;

    /// <summary>The host of the whole-system figure: 16 SMMUs with CMDQVs, 64 devices (examples/hosts/perf-16x4.json, embedded).</summary>
    public static HostProfile Perf16x4()
    {
        using Stream stream = typeof(WholeSystemBench).Assembly.GetManifestResourceStream("NestedSmmu.Cli.perf-16x4.json")
            ?? throw new InvalidOperationException("the perf-16x4 host profile is not embedded");
        using var reader = new StreamReader(stream);
        return HostProfile.Parse(reader.ReadToEnd());
    }

    /// <summary>Pages of each device's buffer: few enough that every translation stays in the TLBs.</summary>
    private const int PagesPerDevice = 16;

    /// <summary>
    /// Builds, boots and probes the VM <paramref name="samples"/> times (the median is reported), then
    /// times DMA on the last one after <paramref name="warmupMs"/> of the same DMAs (long enough for
    /// tiered compilation to optimize the DMA path: a short run times unoptimized code).
    /// </summary>
    public static WholeSystemFigures Run(HostProfile profile, int samples, int dmaRounds, int warmupMs)
    {
        var boots = new double[samples];
        RunHarness.StartedMachine? last = null;
        for (int i = 0; i < samples; i++)
        {
            last?.Dispose();
            long start = Stopwatch.GetTimestamp();
            last = Boot(profile);
            boots[i] = Stopwatch.GetElapsedTime(start).TotalNanoseconds;
        }
        using RunHarness.StartedMachine b = last!;
        double dmaNs = TimeDma(b, dmaRounds, warmupMs);
        Array.Sort(boots);
        return new WholeSystemFigures(profile.Name, b.Vm.Vsmmus.Count, b.Workloads.Count, boots[samples / 2], dmaNs, DmaBytes);
    }

    /// <summary>What `run` does before its workloads (<see cref="RunHarness.Start"/>) on the default machine; any failed boot or probe check stops the bench.</summary>
    private static RunHarness.StartedMachine Boot(HostProfile profile)
    {
        RunHarness.StartOutcome s = RunHarness.Start(profile, DefaultMachine.Arguments(profile));
        if (s.Machine is not { } m)
            throw new InvalidOperationException(s.Check.Error is { } refused ? $"the default machine of '{profile.Name}' is refused: {refused.Message}" : s.Error);
        if (m.Checks.FirstOrDefault(c => !c.Passed) is { } failed)
        {
            m.Dispose();
            throw new InvalidOperationException($"probe failed: {failed.Name} {failed.Detail}");
        }
        return m;
    }

    /// <summary>Median ns per DMA over <paramref name="rounds"/> rounds of every device reading every page of its buffer once.</summary>
    private static double TimeDma(RunHarness.StartedMachine b, int rounds, int warmupMs)
    {
        if (b.Workloads.Count == 0) throw new InvalidOperationException("the guest drives no device");
        ulong half = b.Vm.Ram.Size / 2;
        var buffers = new GuestPageAllocator(b.Vm.Ram, b.Vm.Ram.Base + half, half);
        var iovas = new ulong[b.Workloads.Count];
        for (int i = 0; i < b.Workloads.Count; i++)
        {
            const ulong bytes = PagesPerDevice * GuestPageAllocator.PageSize;
            DmaMapping m = b.Workloads[i].Guest.Map(buffers.Allocate(bytes), bytes, DmaDirection.ToDevice)
                ?? throw new InvalidOperationException($"{b.Workloads[i].Vm.Name}: the guest could not map its buffer");
            iovas[i] = m.Iova;
        }
        var data = new byte[DmaBytes];
        // Rounds first, so every translation is in the TLBs and the DMA path is compiled optimized.
        long warmUntil = Stopwatch.GetTimestamp() + warmupMs * Stopwatch.Frequency / 1000;
        do Round(b, iovas, data);
        while (Stopwatch.GetTimestamp() < warmUntil);
        var perDma = new double[rounds];
        int dmasPerRound = b.Workloads.Count * PagesPerDevice;
        for (int r = 0; r < rounds; r++)
        {
            long start = Stopwatch.GetTimestamp();
            Round(b, iovas, data);
            perDma[r] = Stopwatch.GetElapsedTime(start).TotalNanoseconds / dmasPerRound;
        }
        Array.Sort(perDma);
        return perDma[rounds / 2];
    }

    private static void Round(RunHarness.StartedMachine b, ulong[] iovas, byte[] data)
    {
        for (int i = 0; i < b.Workloads.Count; i++)
        {
            VmDevice d = b.Workloads[i].Vm;
            for (ulong p = 0; p < PagesPerDevice; p++)
            {
                var r = d.Dma(iovas[i] + p * GuestPageAllocator.PageSize, AccessKind.Read, data);
                if (!r.IsSuccess) throw new InvalidOperationException($"{d.Name}: DMA read at 0x{iovas[i] + p * GuestPageAllocator.PageSize:X} faulted ({r.Translation.FaultType})");
            }
        }
    }
}
