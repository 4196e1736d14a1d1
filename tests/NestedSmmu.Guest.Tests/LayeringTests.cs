using NestedSmmu.Tests.Common;

namespace NestedSmmu.Guest.Tests;

/// <summary>
/// A guest touches the VM only through MMIO, guest RAM and firmware-table bytes
/// (docs/ARCHITECTURE.md): of our assemblies it may use Hardware's spec codecs, nothing else.
/// </summary>
public sealed class LayeringTests
{
    [Fact]
    public void Guest_references_only_the_hardware_layer_of_the_project()
    {
        var ours = LayerRules.ReferencedAssemblies(typeof(GuestAssembly).Assembly)
            .Where(n => n.StartsWith("NestedSmmu", StringComparison.Ordinal));
        ours.ShouldBeSubsetOf(["NestedSmmu.Hardware"]);
    }

    [Fact]
    public void Guest_uses_no_vmm_or_host_kernel_type()
    {
        LayerRules.ReferencedTypes(typeof(GuestAssembly).Assembly)
            .Where(t => t.StartsWith("NestedSmmu.Vmm", StringComparison.Ordinal) || t.StartsWith("NestedSmmu.Iommufd", StringComparison.Ordinal))
            .ShouldBeEmpty();
    }
}
