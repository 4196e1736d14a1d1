using NestedSmmu.Tests.Common;
using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Tests.Config;

/// <summary>
/// Every member of a machine's JSON (what `check --json` writes for an accel, cmdqv machine), replaced
/// in turn by a value of each wrong kind or removed (<see cref="JsonMutations"/>): reading it either
/// succeeds or throws one <see cref="QemuConfigException"/> that names the JSON path of that member (or
/// the object or array holding it), or the option whose text the member now contradicts.
/// </summary>
public sealed class MachineJsonMutationTests
{
    private static readonly string[] Machine = [.. GraceMachines.Base(), .. GraceMachines.Gpu0OnSmmu0];

    [Fact]
    public void A_wrong_or_missing_member_is_refused_with_its_path_or_option()
    {
        string json = MachineSpecJson.Write(QemuCommandLine.Parse(Machine));
        int mutations = 0, refused = 0;
        var problems = new List<string>();
        foreach (JsonMutations.Mutation m in JsonMutations.Of(json))
        {
            mutations++;
            try
            {
                MachineSpecJson.Read(m.Json);
            }
            catch (QemuConfigException e)
            {
                refused++;
                string message = e.Message;
                bool names = message.StartsWith("machine JSON: ", StringComparison.Ordinal) && message["machine JSON: ".Length..].Split(": ")[0] is { } path
                    ? JsonMutations.Names(path, m.Path)
                    // An option text QEMU itself refuses: its message, which starts with the option (QEMU's "-x: invalid option").
                    : e.OptionText is not null || message.StartsWith('-');
                if (!names) problems.Add($"{m.Path} = {m.Change}: {message}");
            }
            catch (Exception e)
            {
                problems.Add($"{m.Path} = {m.Change}: {e.GetType().Name}: {e.Message}");
            }
        }
        problems.ShouldBeEmpty(string.Join("\n", problems.Take(20)));
        mutations.ShouldBeGreaterThan(50);
        refused.ShouldBeGreaterThan(0);
    }
}
