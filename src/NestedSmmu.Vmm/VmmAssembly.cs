namespace NestedSmmu.Vmm;

/// <summary>Anchors the NestedSmmu.Vmm assembly for reflection (tests of its layering, version reports).</summary>
public static class VmmAssembly
{
    /// <summary>The assembly's informational version.</summary>
    public static string Version => typeof(VmmAssembly).Assembly.GetName().Version?.ToString() ?? "unknown";
}
