namespace NestedSmmu.Guest;

/// <summary>Anchors the NestedSmmu.Guest assembly for reflection (tests of its layering, version reports).</summary>
public static class GuestAssembly
{
    /// <summary>The assembly's informational version.</summary>
    public static string Version => typeof(GuestAssembly).Assembly.GetName().Version?.ToString() ?? "unknown";
}
