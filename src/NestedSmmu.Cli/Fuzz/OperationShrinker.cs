namespace NestedSmmu.Cli.Fuzz;

/// <summary>
/// Delta debugging over an operation list (Zeller and Hildebrandt, "Simplifying and Isolating
/// Failure-Inducing Input", 2002: ddmin): drop chunks of the list, keep a smaller list whenever it
/// still fails, refine the chunks when nothing can go, down to single operations. Bounded by a
/// number of test runs, since every test replays a whole campaign.
/// </summary>
internal static class OperationShrinker
{
    /// <summary>The smallest failing list found, and how many test runs it took.</summary>
    public static (List<T> Shrunk, int Tests) Shrink<T>(IReadOnlyList<T> failing, Func<IReadOnlyList<T>, bool> fails, int maxTests)
    {
        var current = new List<T>(failing);
        int tests = 0;
        int n = 2;
        while (current.Count >= 2 && tests < maxTests)
        {
            int chunk = (current.Count + n - 1) / n;
            bool reduced = false;
            for (int start = 0; start < current.Count && tests < maxTests; start += chunk)
            {
                // The complement of one chunk: everything but [start, start + chunk).
                var candidate = new List<T>(current.Count);
                candidate.AddRange(current.Take(start));
                candidate.AddRange(current.Skip(start + chunk));
                tests++;
                if (!fails(candidate)) continue;
                current = candidate;
                n = Math.Max(n - 1, 2);
                reduced = true;
                break;
            }
            if (reduced) continue;
            if (n >= current.Count) break;
            n = Math.Min(current.Count, 2 * n);
        }
        // A single operation may itself be unnecessary when a VM starts in the failing state.
        if (current.Count == 1 && tests < maxTests)
        {
            tests++;
            if (fails([])) current.Clear();
        }
        return (current, tests);
    }
}
