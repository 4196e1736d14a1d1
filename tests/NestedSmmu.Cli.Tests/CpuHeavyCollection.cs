namespace NestedSmmu.Cli.Tests;

/// <summary>Tests that measure the process (bench) or load it (fuzz) run one after another, never side by side.</summary>
[CollectionDefinition(Name)]
public sealed class CpuHeavyCollection
{
    public const string Name = "cpu-heavy";
}
