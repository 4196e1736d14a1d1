using System.Runtime.CompilerServices;

namespace NestedSmmu.Hardware;

/// <summary>Bit-field helpers. Field positions are always written [hi:lo] as in the specifications.</summary>
public static class Bits
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mask(int hi, int lo) => (hi - lo == 63 ? ulong.MaxValue : ((1UL << (hi - lo + 1)) - 1)) << lo;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Get(ulong value, int hi, int lo) => (value & Mask(hi, lo)) >> lo;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Get(ulong value, int bit) => ((value >> bit) & 1) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Set(ulong value, int hi, int lo, ulong field) => (value & ~Mask(hi, lo)) | ((field << lo) & Mask(hi, lo));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Set(ulong value, int bit, bool on) => on ? value | (1UL << bit) : value & ~(1UL << bit);

    /// <summary>True when <paramref name="value"/> has no bits at or above <paramref name="bits"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool FitsIn(ulong value, int bits) => bits >= 64 || (value >> bits) == 0;
}
