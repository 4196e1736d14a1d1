using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Tests.Common;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// Every field of the embedded host profiles, replaced in turn by a value of each wrong kind or
/// removed (<see cref="JsonMutations"/>): the reader either accepts the profile or throws one
/// <see cref="HostProfileException"/> whose path names that field or the object holding it (when it is
/// the object that is now incomplete or inconsistent), or for a renamed SMMU the device that still
/// names it, and whose message starts with that path; never another exception.
/// </summary>
public sealed class HostProfileMutationTests
{
    public static TheoryData<string> Profiles() => new(HostProfile.EmbeddedNames);

    [Theory]
    [MemberData(nameof(Profiles))]
    public void A_wrong_or_missing_field_is_refused_with_its_path(string name)
    {
        int mutations = 0, refused = 0;
        var problems = new List<string>();
        foreach (JsonMutations.Mutation m in JsonMutations.Of(EmbeddedJson(name)))
        {
            mutations++;
            try
            {
                HostProfile.Parse(m.Json);
            }
            catch (HostProfileException e)
            {
                refused++;
                bool names = JsonMutations.Names(e.Path, m.Path)
                    // A renamed SMMU leaves the devices that name it pointing nowhere: the error is at the reference, listing the names.
                    || (m.Path.StartsWith("$.smmus[", StringComparison.Ordinal) && m.Path.EndsWith(".name", StringComparison.Ordinal)
                        && e.Message.Contains("no SMMU is named", StringComparison.Ordinal));
                if (!names || !e.Message.StartsWith(e.Path, StringComparison.Ordinal))
                    problems.Add($"{m.Path} = {m.Change}: error at {e.Path}: {e.Message}");
            }
            catch (Exception e)
            {
                problems.Add($"{m.Path} = {m.Change}: {e.GetType().Name}: {e.Message}");
            }
        }
        problems.ShouldBeEmpty(string.Join("\n", problems.Take(20)));
        mutations.ShouldBeGreaterThan(100);
        refused.ShouldBeGreaterThan(mutations / 2, "most wrong values are refused");
    }

    private static string EmbeddedJson(string name)
    {
        string resource = typeof(HostProfile).Assembly.GetManifestResourceNames().Single(r => r.EndsWith($".{name}.json", StringComparison.Ordinal));
        using var reader = new StreamReader(typeof(HostProfile).Assembly.GetManifestResourceStream(resource)!);
        return reader.ReadToEnd();
    }
}
