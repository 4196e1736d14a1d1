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
// Two --device options (each behind its own SMMU) run the two-SMMU sequence instead.
var started = Stopwatch.StartNew();
string? profile = null;
var devices = new List<string>();
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--profile" when i + 1 < args.Length: profile = args[++i]; break;
        case "--device" when i + 1 < args.Length: devices.Add(args[++i]); break;
        default:
            Console.Error.WriteLine("usage: nestedsmmu-conformance [--profile HOST.json] --device DEVICE");
            return 2;
    }
}
if (devices.Count is 0 or > 2)
{
    Console.Error.WriteLine("nestedsmmu-conformance: one or two --device are required (a PCI address or cdev for the real kernel, a profile device name for the emulated host)");
    return 2;
}

EmulatedHost? host = profile is null ? null : new EmulatedHost(HostProfile.Load(profile));
ConformanceTarget[] targets = [.. devices.Select(TargetFor)];
string device = string.Join(" and ", devices);
Console.WriteLine($"# conformance on {targets[0].Name}, device {device}");
Console.WriteLine($"# startup-ms {started.ElapsedMilliseconds.ToString(CultureInfo.InvariantCulture)}");
var sequence = Stopwatch.StartNew();
if (targets.Length == 1) ConformanceSequence.Run(targets[0], line => Console.WriteLine(line));
else ConformanceSequence.RunTwoSmmus(targets[0], targets[1], line => Console.WriteLine(line));
Console.WriteLine($"# sequence-ms {sequence.ElapsedMilliseconds.ToString(CultureInfo.InvariantCulture)}");
return 0;

ConformanceTarget TargetFor(string name)
{
    if (host is not null)
        return ConformanceTarget.ForEmulatedHost(host, name) with { Stage1 = GuestStage1Tables.Create };
    return new ConformanceTarget(
        "linux " + Environment.OSVersion.Version.ToString(),
        () => LinuxIommufd.Open(),
        name,
        (fd, request, argument) => ((LinuxIommufd)fd).Ioctl(request, argument),
        (fd, dev, iova) => EduDevice.DmaRead(((LinuxIommufd)fd).DeviceFileDescriptor(dev), iova),
        (fd, dev, from, to, length) => EduDevice.Copy(((LinuxIommufd)fd).DeviceFileDescriptor(dev), from, to, length))
    {
        EventSettle = TimeSpan.FromMilliseconds(500),
        Stage1 = GuestStage1Tables.Create,
    };
}
