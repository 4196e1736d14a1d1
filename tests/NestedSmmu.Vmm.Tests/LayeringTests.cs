using NestedSmmu.Tests.Common;

namespace NestedSmmu.Vmm.Tests;

/// <summary>The VMM's seams (docs/ARCHITECTURE.md): it talks to the host only through IIommufd.</summary>
public sealed class LayeringTests
{
    private static readonly System.Reflection.Assembly Vmm = typeof(VmmAssembly).Assembly;

    [Fact]
    public void Vmm_uses_no_type_of_the_emulated_kernel()
    {
        LayerRules.ReferencedTypes(Vmm).Where(t => t.StartsWith("NestedSmmu.Iommufd.Emulated", StringComparison.Ordinal)).ShouldBeEmpty();
    }

    [Fact]
    public void Vmm_uses_no_type_of_the_real_kernel_backend()
    {
        LayerRules.ReferencedTypes(Vmm).Where(t => t.StartsWith("NestedSmmu.Iommufd.Linux", StringComparison.Ordinal)).ShouldBeEmpty();
    }

    [Fact]
    public void Vmm_does_not_depend_on_the_guest()
    {
        LayerRules.ReferencedAssemblies(Vmm).ShouldNotContain("NestedSmmu.Guest");
    }
}
