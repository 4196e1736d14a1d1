using NestedSmmu.Guest.Smmu;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;
using SmmuDevice = NestedSmmu.Hardware.Smmu.SmmuV3;

namespace NestedSmmu.Guest.Tests;

/// <summary>
/// A machine for the guest driver: Hardware's SMMUv3 model mapped on an MMIO bus at the address the
/// virt board gives its first SMMU, sparse memory as guest RAM (stage 1 only, so guest-physical =
/// the memory the device reaches), a guest page allocator over a RAM window, and PCI endpoints
/// that DMA through the SMMU. The model shares its register interface with the vSMMU a VM exposes.
/// </summary>
public sealed class GuestRig
{
    public const ulong SmmuBase = 0x0905_0000;
    public const ulong RamBase = 0x4000_0000;
    /// <summary>Driver allocations (queues, tables) come from the first 256 MiB of RAM; buffers from above.</summary>
    public const ulong DriverPoolSize = 0x1000_0000;
    public const ulong BufferBase = RamBase + DriverPoolSize;

    public GuestRig(SmmuFeatures? features = null, ArmSmmuV3Options? options = null)
    {
        Memory = new SparseMemory();
        Bus = new MmioBus();
        Smmu = new SmmuDevice(Memory, features ?? new SmmuFeatures { Ats = true });
        Bus.Map(SmmuBase, Smmu, "smmuv3.0");
        Pages = new GuestPageAllocator(Memory, RamBase, DriverPoolSize);
        Driver = new ArmSmmuV3Driver("smmuv3.0", Bus, SmmuBase, Memory, Pages, Log, options);
    }

    public SparseMemory Memory { get; }
    public MmioBus Bus { get; }
    public SmmuDevice Smmu { get; }
    public GuestPageAllocator Pages { get; }
    public GuestLog Log { get; } = new();
    public ArmSmmuV3Driver Driver { get; }

    /// <summary>Probes and resets the driver; fails the test if either step fails.</summary>
    public GuestRig Boot()
    {
        Driver.Probe().ShouldBeTrue(string.Join('\n', Log.Entries));
        Driver.Reset().ShouldBeTrue(string.Join('\n', Log.Entries));
        return this;
    }

    /// <summary>A PCIe endpoint with requester ID = StreamID (the identity mapping of QEMU's virt root complex).</summary>
    public PciEndpoint Endpoint(string name, ushort rid, bool ats = false) =>
        new(name, new RequesterId(rid), rid, Smmu, Memory, atsCapable: ats);

    public byte[] ReadRam(ulong address, int length)
    {
        var b = new byte[length];
        Memory.Read(address, b);
        return b;
    }

    public static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        for (int i = 0; i < length; i++) b[i] = (byte)(i * 31 + seed * 7 + 1);
        return b;
    }
}
