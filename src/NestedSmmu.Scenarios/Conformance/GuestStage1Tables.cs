using NestedSmmu.Guest.PageTables;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Iommufd.Conformance;

namespace NestedSmmu.Scenarios.Conformance;

/// <summary>
/// The conformance sequence's stage-1 tables, written by the guest's one table writer
/// (<see cref="TranslationTables"/>) into guest RAM addressed by IPA: 4 KiB granule, a 39-bit
/// VA (three levels, as a small guest would choose).
/// </summary>
public sealed class GuestStage1Tables : IStage1Tables
{
    /// <summary>The VA size: 39 bits, so the walk starts at level 1.</summary>
    public const int VaBits = 39;

    private const int PageShift = 12;
    private readonly TranslationTables _tables;

    private GuestStage1Tables(TranslationTables tables) => _tables = tables;

    /// <summary>Tables in <paramref name="ram"/>, which the device sees at <paramref name="ramIpa"/>, allocated upwards from <paramref name="tablesIpa"/>.</summary>
    public static IStage1Tables Create(IPhysicalMemory ram, ulong ramIpa, ulong tablesIpa) =>
        new GuestStage1Tables(TranslationTables.ForStage1(new MemoryTableSpace(ram, tablesIpa, ramIpa), PageShift, VaBits));

    /// <inheritdoc/>
    public ulong Root => _tables.Root;

    /// <inheritdoc/>
    public int InputBits => _tables.InputBits;

    /// <inheritdoc/>
    /// <remarks>Not global (nG = 1), as Linux's io-pgtable makes every stage-1 entry (arm_lpae_prot_to_pte), so TLBI by ASID reaches it.</remarks>
    public void Map(ulong va, ulong ipa) => _tables.Map(va, ipa, notGlobal: true);

    /// <inheritdoc/>
    public void Unmap(ulong va) => _tables.Unmap(va);
}
