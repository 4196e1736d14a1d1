using System.Buffers.Binary;
using System.Text;
using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Uapi;
using NestedSmmu.Scenarios;
using NestedSmmu.Scenarios.SelfChecks;
using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Fuzz;

/// <summary>
/// Coverage-guided fuzz targets. Each takes arbitrary bytes and must either succeed or fail with the
/// documented error type of its input (a user's mistake is a clear message, a guest's is a spec
/// event or error code); any other exception is a crash that the fuzzer reports.
/// </summary>
public static class FuzzTargets
{
    /// <summary>The targets by name (the first argument of fuzz/run.sh).</summary>
    public static IReadOnlyDictionary<string, Action<byte[]>> All { get; } = new Dictionary<string, Action<byte[]>>(StringComparer.Ordinal)
    {
        ["command"] = Commands,
        ["ste-cd"] = SteAndCd,
        ["scenario"] = Scenario,
        ["host-profile"] = HostProfileJson,
        ["qemu-cmdline"] = QemuOptions,
        ["machine-json"] = MachineJson,
        ["iommufd-ioctl"] = IommufdIoctls,
        ["firmware-tables"] = FirmwareTablesTarget.Run,
    };

    /// <summary>Runs <paramref name="target"/> on <paramref name="input"/>.</summary>
    public static void Run(string target, byte[] input)
    {
        if (!All.TryGetValue(target, out Action<byte[]>? run))
            throw new ArgumentException($"unknown fuzz target '{target}'; targets: {string.Join(", ", All.Keys)}", nameof(target));
        run(input);
    }

    // A small SMMU set up as a driver would (IHI 0070 3.11): linear stream table of 2^6 STEs,
    // command and event queues of 2^6 entries, everything in one sparse memory.
    private const ulong StrtabBase = 0x1000_0000, CmdqBase = 0x1100_0000, EventqBase = 0x1200_0000;
    private const ulong CdBase = 0x1300_0000, TableBase = 0x1400_0000;
    private const int StreamIdBits = 6, QueueLog2 = 6;
    private const uint Cr0Enables = 1u << 0 | 1u << 2 | 1u << 3; // SMMUEN, EVENTQEN, CMDQEN
    private const uint Cr2RecInvSidPtm = 1u << 1 | 1u << 2;

    private static (SmmuV3 Smmu, SparseMemory Memory) NewSmmu()
    {
        var memory = new SparseMemory();
        var smmu = new SmmuV3(memory, new SmmuFeatures { OasBits = 48, Ats = true, Pri = true, Hyp = true, SsidBits = 8 });
        smmu.Write((ulong)SmmuRegister.CR0, 4, 0);
        smmu.Write((ulong)SmmuRegister.STRTAB_BASE, 8, StrtabBase);
        smmu.Write((ulong)SmmuRegister.STRTAB_BASE_CFG, 4, StreamIdBits);
        smmu.Write((ulong)SmmuRegister.CMDQ_BASE, 8, CmdqBase | QueueLog2);
        smmu.Write((ulong)SmmuRegister.EVENTQ_BASE, 8, EventqBase | QueueLog2);
        smmu.Write((ulong)SmmuRegister.CR2, 4, Cr2RecInvSidPtm);
        smmu.Write((ulong)SmmuRegister.CR0, 4, Cr0Enables);
        return (smmu, memory);
    }

    /// <summary>Input: 16-byte commands, run through a real command queue (decoder, legality checks, execution).</summary>
    private static void Commands(byte[] input)
    {
        var (smmu, memory) = NewSmmu();
        int count = Math.Min(input.Length / Command.Size, (1 << QueueLog2) - 1);
        for (int i = 0; i < count; i++)
        {
            var c = new Command(BinaryPrimitives.ReadUInt64LittleEndian(input.AsSpan(i * Command.Size)),
                BinaryPrimitives.ReadUInt64LittleEndian(input.AsSpan(i * Command.Size + 8)));
            // The codec's promise: a legal command sets no bit its opcode does not define (IHI 0070 4.1).
            if (CommandCodec.IsLegal(c, smmu.Features) && CommandCodec.AllowedBits(c.Opcode) is { } allowed
                && ((c.W0 & ~allowed.W0) != 0 || (c.W1 & ~allowed.W1) != 0))
                throw new InvalidOperationException($"{c} is legal but sets bits outside its opcode's fields");
            memory.WriteUInt64s(CmdqBase + (ulong)i * Command.Size, [c.W0, c.W1]);
        }
        smmu.Write((ulong)SmmuRegister.CMDQ_PROD, 4, (ulong)count);
        // A stopped queue (CERROR) is the guest's problem; the driver acknowledges and resumes.
        smmu.Read((ulong)SmmuRegister.GERROR, 4);
    }

    /// <summary>
    /// Input: an STE (64 bytes), a CD (64 bytes), then translation table words, then an input
    /// address. The STE goes to stream 0 and 1, the CD table at its S1ContextPtr, the words at the
    /// CD's TTB0 and the STE's S2TTB; a read and a write are translated.
    /// </summary>
    private static void SteAndCd(byte[] input)
    {
        var (smmu, memory) = NewSmmu();
        Span<byte> bytes = stackalloc byte[256];
        input.AsSpan(0, Math.Min(input.Length, bytes.Length)).CopyTo(bytes);
        Span<ulong> words = stackalloc ulong[32];
        for (int i = 0; i < words.Length; i++) words[i] = BinaryPrimitives.ReadUInt64LittleEndian(bytes[(i * 8)..]);
        var ste = StreamTableEntry.FromWords(words[..8]);
        var cd = ContextDescriptor.FromWords(words[8..16]);
        ReadOnlySpan<ulong> tables = words[16..31];
        ulong iova = words[31];
        memory.WriteUInt64s(StrtabBase, words[..8]);
        memory.WriteUInt64s(StrtabBase + StreamTableEntry.Size, words[..8]);
        // Keep the guest's pointers inside a small window so that they hit what was written.
        memory.WriteUInt64s(CdBase, words[8..16]);
        memory.WriteUInt64s(TableBase, tables);
        foreach (ulong at in new[] { ste.S1ContextPtr, cd.TTB0, cd.TTB1, ste.S2TTB })
            if (at < SparseMemory.AddressLimit - 256) memory.WriteUInt64s(at & ~7UL, tables);
        for (uint sid = 0; sid < 3; sid++)
        {
            uint? ssid = sid == 1 ? (uint)(iova >> 56) : null;
            smmu.Translate(sid, ssid, iova, AccessKind.Read);
            smmu.Translate(sid, ssid, iova ^ 0x1000, AccessKind.Write);
        }
    }

    private static readonly uint[] Requests = [.. Enum.GetValues<IommufdIoctl>().Select(r => (uint)r)];
    private static readonly HashSet<int> Errnos = [.. Enum.GetValues<Errno>().Select(e => -(int)e)];

    /// <summary>
    /// Input: raw ioctls on a fresh emulated iommufd holding a VM's IOAS, a nested setup on gpu0 and a
    /// bound nic0. Each record is [request index][argument length][argument bytes]. Every call must
    /// return 0 or -errno, and closing the context must leave no object in use.
    /// </summary>
    private static void IommufdIoctls(byte[] input)
    {
        EmulatedHost host = EmulatedHost.FromEmbedded("small");
        using (EmulatedIommufd fd = host.Open())
        {
            GuestVm vm = GuestVm.Create(fd, 0x10_0000, "ram", GuestVm.DefaultRamBase);
            vm.NestedSetup("gpu0");
            fd.BindDevice("nic0");
            for (int at = 0; at + 2 <= input.Length;)
            {
                uint request = Requests[input[at] % Requests.Length];
                int length = Math.Min(input[at + 1], input.Length - at - 2);
                byte[] argument = input.AsSpan(at + 2, length).ToArray();
                at += 2 + length;
                int rc = fd.Ioctl(request, argument);
                if (!Errnos.Contains(rc)) throw new InvalidOperationException($"ioctl 0x{request:X} returned {rc}, neither 0 nor -errno");
            }
        }
        string? leak = host.Diagnostics.KernelLog.FirstOrDefault(l => l.Contains("still in use", StringComparison.Ordinal) || l.Contains("users left", StringComparison.Ordinal));
        if (leak is not null) throw new InvalidOperationException($"closing the iommufd left objects behind: {leak}");
    }

    private static string Text(byte[] input) => Encoding.UTF8.GetString(input);

    /// <summary>Input: a scenario file. Bad input is a <see cref="ScenarioFormatException"/> naming the JSON path.</summary>
    private static void Scenario(byte[] input)
    {
        try
        {
            ScenarioReader.Parse(new MemoryStream(input));
        }
        catch (ScenarioFormatException)
        {
        }
    }

    /// <summary>Input: a host profile; a parsed profile must also build an emulated host. Bad input is a <see cref="HostProfileException"/>.</summary>
    private static void HostProfileJson(byte[] input)
    {
        try
        {
            HostProfile profile = HostProfile.Parse(Text(input));
            _ = new EmulatedHost(profile);
        }
        catch (HostProfileException)
        {
        }
    }

    /// <summary>Input: a QEMU command line (shell words). Parse errors are <see cref="QemuConfigException"/>; the checker never throws.</summary>
    private static void QemuOptions(byte[] input)
    {
        string line = Text(input);
        IReadOnlyList<string> args;
        try
        {
            args = QemuCommandLine.SplitShellWords(line);
            QemuCommandLine.Parse(args);
        }
        catch (QemuConfigException)
        {
            return;
        }
        MachineValidator.Check(args, null);
        // The host rules (accel=on, vfio-pci, CMDQV) only run against a host.
        MachineValidator.Check(args, Grace.Value);
    }

    /// <summary>The embedded Grace-class emulated host as `check` sees it, probed once per process.</summary>
    internal static HostView GraceView => Grace.Value;

    private static readonly Lazy<HostView> Grace = new(() =>
    {
        EmulatedHost host = EmulatedHost.FromEmbedded("grace");
        using EmulatedIommufd fd = host.Open();
        return HostView.Probe(fd, "emulated host 'grace'",
            host.Profile.Devices.Select(d => new HostDeviceLocation(d.Address.ToString(), d.Smmu, d.Address.ToString())));
    });

    /// <summary>Input: machine JSON (what `check --json` writes). Bad input is a <see cref="QemuConfigException"/>.</summary>
    private static void MachineJson(byte[] input)
    {
        MachineSpec spec;
        try
        {
            spec = MachineSpecJson.Read(Text(input));
        }
        catch (QemuConfigException)
        {
            return;
        }
        MachineValidator.Check(spec, null);
        MachineValidator.Check(spec, Grace.Value);
    }
}
