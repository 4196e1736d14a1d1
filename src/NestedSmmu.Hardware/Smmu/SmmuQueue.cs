namespace NestedSmmu.Hardware.Smmu;

/// <summary>
/// The circular queue of IHI 0070 3.5: 2^Log2Size entries at Base; PROD and CONS each hold an
/// index in bits [Log2Size-1:0] and a wrap flag in bit [Log2Size]. Empty when index and wrap
/// are equal, full when indexes are equal and wraps differ. One type serves the command queue,
/// the event queue and every Tegra241 VCMDQ; register bits outside index/wrap (ERR, OVFLG)
/// belong to the owner.
/// </summary>
public sealed class SmmuQueue
{
    public SmmuQueue(int entrySize) => EntrySize = entrySize;

    public int EntrySize { get; }
    /// <summary>Base physical address of entry 0.</summary>
    public ulong Base { get; private set; }
    public int Log2Size { get; private set; }
    /// <summary>Producer index with wrap bit.</summary>
    public uint Prod { get; set; }
    /// <summary>Consumer index with wrap bit.</summary>
    public uint Cons { get; set; }

    public uint Entries => 1u << Log2Size;
    /// <summary>Mask of index plus wrap bit.</summary>
    public uint PointerMask => (2u << Log2Size) - 1;
    private uint IndexMask => Entries - 1;
    private uint WrapBit => Entries;

    /// <summary>Programs base and size (from a *_BASE register), clamping the size to what the hardware offers.</summary>
    public void Configure(ulong baseAddress, int log2Size, int maxLog2Size)
    {
        Log2Size = Math.Clamp(log2Size, 0, maxLog2Size);
        Base = baseAddress;
    }

    public bool IsEmpty => (Prod & PointerMask) == (Cons & PointerMask);
    public bool IsFull => ((Prod ^ Cons) & PointerMask) == WrapBit;

    /// <summary>Entries between CONS and PROD.</summary>
    public uint Count => ((Prod & PointerMask) - (Cons & PointerMask)) & PointerMask;

    public ulong EntryAddress(uint pointer) => Base + (ulong)(pointer & IndexMask) * (ulong)EntrySize;

    /// <summary>The pointer one past <paramref name="pointer"/>, toggling the wrap bit at the end.</summary>
    public uint Next(uint pointer) => (pointer + 1) & PointerMask;
}
