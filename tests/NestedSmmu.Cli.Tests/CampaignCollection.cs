namespace NestedSmmu.Cli.Tests;

/// <summary>
/// The isolation-campaign tests allocate heavily for seconds; they run on their own, after the parallel
/// tests, so a measurement of process-wide managed memory elsewhere (the bench's IOAS figures) does not
/// see their garbage collected under it.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CampaignCollection
{
    public const string Name = "isolation campaign";
}
