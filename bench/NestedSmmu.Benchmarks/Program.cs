using BenchmarkDotNet.Running;

namespace NestedSmmu.Benchmarks;

public static class Program
{
    /// <summary>Run all with `dotnet run -c Release --project bench/NestedSmmu.Benchmarks -- --filter '*'`.</summary>
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
