namespace NestedSmmu.Iommufd.Conformance;

/// <summary>
/// Stage-1 translation tables (VMSAv8-64, 4 KiB granule) that a guest keeps in its own RAM,
/// for the conformance sequence's nested-translation steps. The writer lives with the guest
/// (NestedSmmu.Guest's TranslationTables, adapted in NestedSmmu.Scenarios), which this layer
/// does not reference, so callers hand it in through <see cref="ConformanceTarget.Stage1"/>.
/// </summary>
public interface IStage1Tables
{
    /// <summary>The IPA of the root table (the CD's TTB0).</summary>
    ulong Root { get; }

    /// <summary>The VA size the tables resolve (64 - CD.T0SZ).</summary>
    int InputBits { get; }

    /// <summary>Maps one 4 KiB page <paramref name="va"/> to <paramref name="ipa"/>, readable, writable and not global (as Linux maps stage 1).</summary>
    void Map(ulong va, ulong ipa);

    /// <summary>Removes the page at <paramref name="va"/>.</summary>
    void Unmap(ulong va);
}
