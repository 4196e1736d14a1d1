using NestedSmmu.Cli.Fuzz;

namespace NestedSmmu.Cli.Tests;

/// <summary>Delta debugging over a list: it finds the few elements a failure needs, in order, within its test budget.</summary>
public sealed class OperationShrinkerTests
{
    [Fact]
    public void It_keeps_exactly_the_elements_the_failure_needs()
    {
        List<int> all = [.. Enumerable.Range(0, 500)];
        bool Fails(IReadOnlyList<int> l) => l.Contains(3) && l.Contains(170) && l.Contains(499) && l.ToList().IndexOf(3) < l.ToList().IndexOf(170);
        var (shrunk, tests) = OperationShrinker.Shrink(all, Fails, maxTests: 1_000);
        shrunk.ShouldBe([3, 170, 499]);
        tests.ShouldBeLessThan(200);
    }

    [Fact]
    public void It_stops_at_its_budget_with_a_list_that_still_fails()
    {
        List<int> all = [.. Enumerable.Range(0, 1_000)];
        bool Fails(IReadOnlyList<int> l) => l.Count(x => x % 7 == 0) >= 100;
        var (shrunk, tests) = OperationShrinker.Shrink(all, Fails, maxTests: 10);
        tests.ShouldBe(10);
        Fails(shrunk).ShouldBeTrue();
        shrunk.Count.ShouldBeLessThan(all.Count);
    }

    [Fact]
    public void A_failure_that_needs_nothing_shrinks_to_nothing()
    {
        var (shrunk, _) = OperationShrinker.Shrink([1, 2, 3], _ => true, maxTests: 100);
        shrunk.ShouldBeEmpty();
    }
}
