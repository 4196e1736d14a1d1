using NestedSmmu.Tests.Common;

namespace NestedSmmu.Scenarios.Tests;

/// <summary>
/// Every field of the example scenarios, replaced in turn by a value of each wrong kind or removed
/// (<see cref="JsonMutations"/>): the reader either accepts the scenario or throws one
/// <see cref="ScenarioFormatException"/> whose path names that field or the object or array holding it,
/// never another exception.
/// </summary>
public sealed class ScenarioMutationTests
{
    public static TheoryData<string> Examples() =>
        new(Directory.GetFiles(Path.Combine(TestVectors.RepositoryRoot, "examples", "scenarios"), "*.json").Select(Path.GetFileName).Order(StringComparer.Ordinal)!);

    [Theory]
    [MemberData(nameof(Examples))]
    public void A_wrong_or_missing_field_is_refused_with_its_path(string file)
    {
        string json = File.ReadAllText(Path.Combine(TestVectors.RepositoryRoot, "examples", "scenarios", file));
        int mutations = 0, refused = 0;
        var problems = new List<string>();
        foreach (JsonMutations.Mutation m in JsonMutations.Of(json))
        {
            mutations++;
            try
            {
                ScenarioReader.Parse(m.Json);
            }
            catch (ScenarioFormatException e)
            {
                refused++;
                if (!JsonMutations.Names(e.Path, m.Path)) problems.Add($"{m.Path} = {m.Change}: error at {e.Path}: {e.Message}");
            }
            catch (Exception e)
            {
                problems.Add($"{m.Path} = {m.Change}: {e.GetType().Name}: {e.Message}");
            }
        }
        problems.ShouldBeEmpty(string.Join("\n", problems.Take(20)));
        refused.ShouldBeGreaterThan(mutations / 2, "most wrong values are refused");
    }
}
