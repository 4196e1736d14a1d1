using NestedSmmu.Fuzz;
using SharpFuzz;

// nestedsmmu-fuzz TARGET: one AFL++ target (afl-fuzz starts it and feeds inputs through its forkserver).
// nestedsmmu-fuzz TARGET FILE...: runs the target once on each file (replaying a crash by hand).
if (args.Length == 0 || !FuzzTargets.All.ContainsKey(args[0]))
{
    Console.Error.WriteLine($"usage: NestedSmmu.Fuzz TARGET [FILE...]; targets: {string.Join(", ", FuzzTargets.All.Keys)}");
    return 2;
}
string target = args[0];
if (args.Length > 1)
{
    // Every file is run; each one that crashes is named with its exception, and the exit code says whether any did.
    int crashed = 0;
    foreach (string file in args.Skip(1))
    {
        try
        {
            FuzzTargets.Run(target, File.ReadAllBytes(file));
        }
        catch (Exception e)
        {
            crashed++;
            Console.Error.WriteLine($"{file}: {e.GetType().Name}: {e.Message}");
        }
    }
    return crashed == 0 ? 0 : 1;
}
Fuzzer.OutOfProcess.Run(stream =>
{
    using var buffer = new MemoryStream();
    stream.CopyTo(buffer);
    FuzzTargets.Run(target, buffer.ToArray());
});
return 0;
