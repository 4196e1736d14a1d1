using System.Text.RegularExpressions;

namespace NestedSmmu.Iommufd.Linux;

/// <summary>
/// Finds a device's VFIO cdev (/dev/vfio/devices/vfioN) from what a user types: a PCI address
/// (<c>0000:01:00.0</c>, or <c>01:00.0</c> for domain 0), a cdev name (<c>vfio3</c>) or a path.
/// A PCI device bound to vfio-pci on a kernel with CONFIG_VFIO_DEVICE_CDEV lists its cdev under
/// /sys/bus/pci/devices/&lt;bdf&gt;/vfio-dev/.
/// </summary>
public static partial class VfioDeviceLocator
{
    /// <summary>Where VFIO device cdevs live.</summary>
    public const string CdevDirectory = "/dev/vfio/devices";

    /// <summary>Where sysfs lists PCI devices.</summary>
    public const string PciDevicesDirectory = "/sys/bus/pci/devices";

    [GeneratedRegex("^(?:(?<domain>[0-9a-fA-F]{4}):)?(?<bus>[0-9a-fA-F]{2}):(?<dev>[0-1][0-9a-fA-F])\\.(?<fn>[0-7])$")]
    private static partial Regex PciAddress();

    [GeneratedRegex("^vfio[0-9]+$")]
    private static partial Regex CdevName();

    /// <summary>The canonical form <c>dddd:bb:dd.f</c> (lower case) of a PCI address, or null when it is not one.</summary>
    public static string? NormalizePciAddress(string text)
    {
        Match m = PciAddress().Match(text.Trim());
        if (!m.Success) return null;
        string domain = m.Groups["domain"].Success ? m.Groups["domain"].Value : "0000";
        return $"{domain}:{m.Groups["bus"].Value}:{m.Groups["dev"].Value}.{m.Groups["fn"].Value}".ToLowerInvariant();
    }

    /// <summary>Resolves <paramref name="device"/> to a cdev path.</summary>
    /// <exception cref="IommufdException">
    /// ENOENT no such PCI device or cdev; ENODEV the PCI device has no VFIO cdev (not bound to
    /// vfio-pci, or no CONFIG_VFIO_DEVICE_CDEV); EINVAL not a recognisable name.
    /// </exception>
    public static string Resolve(ILinuxSyscalls syscalls, string device)
    {
        ArgumentNullException.ThrowIfNull(syscalls);
        ArgumentNullException.ThrowIfNull(device);
        const string operation = "find VFIO cdev";
        string name = device.Trim();

        if (name.StartsWith('/'))
        {
            if (!syscalls.Exists(name))
                throw new IommufdException(Errno.ENOENT, operation, $"'{name}' does not exist; VFIO device cdevs are {CdevDirectory}/vfioN");
            return name;
        }

        if (CdevName().IsMatch(name))
        {
            string path = $"{CdevDirectory}/{name}";
            if (!syscalls.Exists(path))
                throw new IommufdException(Errno.ENOENT, operation, $"'{path}' does not exist");
            return path;
        }

        string? bdf = NormalizePciAddress(name);
        if (bdf is null)
            throw new IommufdException(Errno.EINVAL, operation,
                $"'{device}' is neither a PCI address (dddd:bb:dd.f) nor a VFIO cdev ({CdevDirectory}/vfioN)");

        string sysfs = $"{PciDevicesDirectory}/{bdf}";
        if (!syscalls.Exists(sysfs))
            throw new IommufdException(Errno.ENOENT, operation, $"no PCI device {bdf} ({sysfs} is missing; list devices with lspci -D)");

        IReadOnlyList<string>? entries = syscalls.ListDirectory($"{sysfs}/vfio-dev");
        string? cdev = entries?.FirstOrDefault(e => CdevName().IsMatch(e));
        if (cdev is null)
            throw new IommufdException(Errno.ENODEV, operation,
                $"PCI device {bdf} has no VFIO cdev ({sysfs}/vfio-dev): bind it to vfio-pci " +
                $"(echo vfio-pci > {sysfs}/driver_override; echo {bdf} > /sys/bus/pci/drivers_probe) " +
                "on a kernel built with CONFIG_VFIO_DEVICE_CDEV");
        return $"{CdevDirectory}/{cdev}";
    }
}
