using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Tests.Config;

/// <summary>Host views of the embedded emulated hosts, probed through their iommufd (bind, GET_HW_INFO, unbind).</summary>
internal static class TestHosts
{
    private static readonly Lazy<HostView> GraceView = new(() => Probe("grace"));
    private static readonly Lazy<HostView> SmallView = new(() => Probe("small"));

    public static HostView Grace => GraceView.Value;
    public static HostView Small => SmallView.Value;

    /// <summary>Every profile device, each its own IOMMU group (functions behind ACS), probed on a fresh emulated host.</summary>
    public static HostView Probe(string profile)
    {
        var host = EmulatedHost.FromEmbedded(profile);
        using IIommufd fd = host.Open();
        return HostView.Probe(fd, $"emulated host '{profile}'",
            host.Profile.Devices.Select(d => new HostDeviceLocation(d.Address.ToString(), d.Smmu, d.Address.ToString())));
    }
}
