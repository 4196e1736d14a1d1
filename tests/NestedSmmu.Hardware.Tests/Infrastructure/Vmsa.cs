namespace NestedSmmu.Hardware.Tests.Infrastructure;

/// <summary>VMSAv8-64 and SMMU field encodings computed from the specifications, for tests (independent of the model).</summary>
public static class Vmsa
{
    public static int Stride(int pageShift) => pageShift - 3;
    public static int LevelShift(int pageShift, int level) => pageShift + (3 - level) * (pageShift - 3);

    /// <summary>The level a walk of an <paramref name="inputBits"/>-bit input starts at: the one whose table resolves the top bits.</summary>
    public static int Stage1StartLevel(int pageShift, int inputBits)
    {
        for (int level = 0; level <= 3; level++)
        {
            int shift = LevelShift(pageShift, level);
            if (inputBits > shift && inputBits <= shift + Stride(pageShift)) return level;
        }
        throw new ArgumentOutOfRangeException(nameof(inputBits));
    }

    /// <summary>CD.TG0 and STE.S2TG: 0b00 4 KiB, 0b01 64 KiB, 0b10 16 KiB.</summary>
    public static uint Tg0(int pageShift) => pageShift switch { 12 => 0u, 16 => 1u, 14 => 2u, _ => throw new ArgumentOutOfRangeException(nameof(pageShift)) };

    /// <summary>CD.TG1: 0b01 16 KiB, 0b10 4 KiB, 0b11 64 KiB.</summary>
    public static uint Tg1(int pageShift) => pageShift switch { 14 => 1u, 12 => 2u, 16 => 3u, _ => throw new ArgumentOutOfRangeException(nameof(pageShift)) };

    /// <summary>Command TG (TLBI range/TTL): 0b01 4 KiB, 0b10 16 KiB, 0b11 64 KiB.</summary>
    public static uint CommandTg(int pageShift) => (uint)(pageShift - 10) / 2;

    /// <summary>VTCR.SL0 for a start level: 4 KiB 0b00 L2, 0b01 L1, 0b10 L0; 16/64 KiB 0b00 L3, 0b01 L2, 0b10 L1, 0b11 L0 (16 KiB).</summary>
    public static uint S2Sl0(int pageShift, int startLevel) => pageShift == 12 ? (uint)(2 - startLevel) : (uint)(3 - startLevel);

    /// <summary>IPS / S2PS / OAS encoding of an address size.</summary>
    public static uint Ps(int bits) => bits switch { 32 => 0u, 36 => 1u, 40 => 2u, 42 => 3u, 44 => 4u, 48 => 5u, 52 => 6u, _ => throw new ArgumentOutOfRangeException(nameof(bits)) };

    /// <summary>Block descriptors are allowed at 4 KiB L1/L2, 16 KiB L2, 64 KiB L2 (and L1 with 52-bit PAs).</summary>
    public static bool BlockAllowed(int pageShift, int level, bool lpa) => pageShift switch
    {
        12 => level is 1 or 2,
        14 => level == 2,
        _ => level == 2 || (level == 1 && lpa),
    };

    public static ulong AlignUp(ulong a, ulong size) => (a + size - 1) & ~(size - 1);
    public static ulong Mask(int bits) => bits >= 64 ? ulong.MaxValue : (1UL << bits) - 1;

    /// <summary>An input address of <paramref name="bits"/> bits with a nonzero index at every level and a nonzero page offset.</summary>
    public static ulong PatternAddress(int bits) => (0x0000_6DB6_DB6D_B6DBUL & Mask(bits)) | (1UL << (bits - 1));
}
