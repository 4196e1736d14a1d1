namespace NestedSmmu.Guest.PageTables;

/// <summary>
/// Where a <see cref="TranslationTables"/> builder reads, writes and allocates its tables: 64-bit
/// little-endian words addressed as the walker will address them (a physical address for stage 2
/// and plain stage 1, an IPA for a guest's stage 1 under nesting).
/// </summary>
public interface ITableSpace
{
    /// <summary>The 64-bit word at <paramref name="address"/> (zero where nothing was written).</summary>
    ulong Read(ulong address);

    /// <summary>Writes the 64-bit word <paramref name="value"/> at <paramref name="address"/>.</summary>
    void Word(ulong address, ulong value);

    /// <summary>A zeroed table of at least <paramref name="bytes"/> (at least 4 KiB), aligned to its size.</summary>
    ulong AllocTable(ulong bytes);
}
