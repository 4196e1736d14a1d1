using System.Diagnostics;
using System.Globalization;
using NestedSmmu.Conformance;
using NestedSmmu.Iommufd.Conformance;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Linux;
using NestedSmmu.Scenarios.Conformance;

// nestedsmmu-conformance --device 0000:00:01.0                    (real kernel, /dev/iommu)
// nestedsmmu-conformance --profile host.json --device edu         (emulated host)
// Prints one "name: result" line per call (ConformanceSequence); lines starting with '#' are notes.
var started = Stopwatch.StartNew();
string? profile = null, device = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--profile" when i + 1 < args.Length: profile = args[++i]; break;
        case "--device" when i + 1 < args.Length: device = args[++i]; break;
        default:
            Console.Error.WriteLine("usage: nestedsmmu-conformance [--profile HOST.json] --device DEVICE");
            return 2;
    }
}
if (device is null)
{
    Console.Error.WriteLine("nestedsmmu-conformance: --device is required (a PCI address or cdev for the real kernel, a profile device name for the emulated host)");
    return 2;
}

ConformanceTarget target;
if (profile is null)
{
    target = new ConformanceTarget(
        "linux " + Environment.OSVersion.Version.ToString(),
        () => LinuxIommufd.Open(),
        device,
        (fd, request, argument) => ((LinuxIommufd)fd).Ioctl(request, argument),
        (fd, dev, iova) => EduDevice.DmaRead(((LinuxIommufd)fd).DeviceFileDescriptor(dev), iova),
        (fd, dev, from, to, length) => EduDevice.Copy(((LinuxIommufd)fd).DeviceFileDescriptor(dev), from, to, length))
    {
        EventSettle = TimeSpan.FromMilliseconds(500),
        Stage1 = GuestStage1Tables.Create,
    };
}
else
{
    target = ConformanceTarget.ForEmulatedHost(new EmulatedHost(HostProfile.Load(profile)), device) with { Stage1 = GuestStage1Tables.Create };
}

Console.WriteLine($"# conformance on {target.Name}, device {device}");
Console.WriteLine($"# startup-ms {started.ElapsedMilliseconds.ToString(CultureInfo.InvariantCulture)}");
var sequence = Stopwatch.StartNew();
ConformanceSequence.Run(target, line => Console.WriteLine(line));
Console.WriteLine($"# sequence-ms {sequence.ElapsedMilliseconds.ToString(CultureInfo.InvariantCulture)}");
return 0;
