namespace NestedSmmu.Hardware;

/// <summary>
/// A multi-bit register field [Hi:Lo], declared once in a register table and used to decode and
/// encode: how every multi-bit field of the SMMUv3 and CMDQV registers is declared (single bits
/// are <c>1u &lt;&lt; n</c> constants).
/// </summary>
public readonly record struct RegisterField(int Hi, int Lo)
{
    public ulong Mask => Bits.Mask(Hi, Lo);
    /// <summary>Largest value the field holds.</summary>
    public ulong Max => Bits.Mask(Hi - Lo, 0);
    public ulong Get(ulong register) => Bits.Get(register, Hi, Lo);
    /// <summary><paramref name="register"/> with the field replaced by <paramref name="value"/> (truncated to the field).</summary>
    public ulong Set(ulong register, ulong value) => Bits.Set(register, Hi, Lo, value);
    /// <summary>The field alone, in place.</summary>
    public ulong Encode(ulong value) => Set(0, value);
    public bool Fits(ulong value) => value <= Max;

    public override string ToString() => Hi == Lo ? $"[{Hi}]" : $"[{Hi}:{Lo}]";
}
