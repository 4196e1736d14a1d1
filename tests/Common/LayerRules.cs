using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace NestedSmmu.Tests.Common;

/// <summary>
/// Reads what an assembly really uses from its metadata (assembly and type references), so
/// layering rules of docs/ARCHITECTURE.md are checked on the compiled code, not on intentions.
/// </summary>
internal static class LayerRules
{
    /// <summary>Names of the assemblies <paramref name="assembly"/> references.</summary>
    public static IReadOnlyList<string> ReferencedAssemblies(Assembly assembly) =>
        assembly.GetReferencedAssemblies().Select(a => a.Name!).Order(StringComparer.Ordinal).ToList();

    /// <summary>Every namespace-qualified type the assembly uses from another assembly.</summary>
    public static IReadOnlyList<string> ReferencedTypes(Assembly assembly)
    {
        using var stream = File.OpenRead(assembly.Location);
        using var pe = new PEReader(stream);
        var md = pe.GetMetadataReader();
        var names = new List<string>();
        foreach (var handle in md.TypeReferences)
        {
            var t = md.GetTypeReference(handle);
            names.Add($"{md.GetString(t.Namespace)}.{md.GetString(t.Name)}");
        }
        return names;
    }
}
