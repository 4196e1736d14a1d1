using System.Buffers;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Scenarios;

/// <summary>
/// Inputs for <c>--from-dump</c>: a register list saved from a live SMMU (or written by hand) and
/// raw memory images, instead of a scenario's JSON.
/// </summary>
/// <remarks>
/// A register list has one register a line, in any of these spellings:
/// <code>
/// # comment; blank lines are skipped
/// STRTAB_BASE     = 0x0000000040010000   # name = value (trailing comments too)
/// STRTAB_BASE_CFG: 0x5                   # name: value
/// SMMU_CR0 0x1                           # name value
/// 0x44 = 0x0                             # offset instead of name
/// EVENTQ_BASE/64 = 0x40f00006            # explicit width; otherwise 64 for the 64-bit registers
/// </code>
/// Names are the spec's (case-insensitive, optional <c>SMMU_</c> prefix, <c>EVTQ_</c> accepted);
/// numbers are <c>0x</c> hex or decimal. The ID registers (IDR0-IDR5, IIDR, AIDR) become
/// <see cref="RegisterDump.Idr"/> overrides, every other line a <see cref="RegisterDump.Writes"/>
/// entry, in file order.
/// </remarks>
public static class DumpInput
{
    /// <summary>Reads a register list file; errors name the file and line.</summary>
    /// <exception cref="DumpFormatException">A line does not follow the format.</exception>
    public static RegisterDump ReadRegisterList(string path) => ParseRegisterList(File.ReadAllText(path), path);

    /// <summary>Parses register list text; <paramref name="sourceName"/> names it in errors.</summary>
    /// <exception cref="DumpFormatException">A line does not follow the format.</exception>
    public static RegisterDump ParseRegisterList(string text, string sourceName = "<register list>")
    {
        ArgumentNullException.ThrowIfNull(text);
        var registers = new List<DumpedRegister>();
        var idrLines = new Dictionary<uint, int>();
        int lineNumber = 0;
        foreach (var rawLine in text.AsSpan().EnumerateLines())
        {
            lineNumber++;
            var line = rawLine;
            int hash = line.IndexOf('#');
            if (hash >= 0) line = line[..hash];
            line = line.Trim();
            if (line.IsEmpty) continue;

            var write = ParseLine(line, sourceName, lineNumber);
            if (write.Offset <= (uint)SmmuRegister.AIDR)
            {
                if (write.Width != 32)
                    throw new DumpFormatException(sourceName, lineNumber, $"{Label(write)} is a 32-bit ID register: drop the /64");
                if (idrLines.TryGetValue(write.Offset, out int earlier))
                    throw new DumpFormatException(sourceName, lineNumber, $"{(SmmuRegister)write.Offset} is already given on line {earlier}");
                idrLines.Add(write.Offset, lineNumber);
            }
            registers.Add(new DumpedRegister(lineNumber, write));
        }
        return new RegisterDump(registers);
    }

    private static RegisterWrite ParseLine(ReadOnlySpan<char> line, string source, int number)
    {
        // NAME = VALUE, NAME: VALUE or NAME VALUE.
        ReadOnlySpan<char> name, value;
        int sep = line.IndexOfAny('=', ':');
        if (sep >= 0)
        {
            name = line[..sep].TrimEnd();
            value = line[(sep + 1)..].TrimStart();
        }
        else
        {
            int space = line.IndexOfAny(' ', '\t');
            if (space < 0) throw new DumpFormatException(source, number, $"'{line}' has no value; expected NAME = VALUE");
            name = line[..space];
            value = line[space..].TrimStart();
        }
        if (name.IsEmpty) throw new DumpFormatException(source, number, "a register name or offset is missing before the value");
        if (value.IsEmpty) throw new DumpFormatException(source, number, $"'{name}' has no value; expected NAME = VALUE");
        if (value.IndexOfAny(' ', '\t') is int extra and >= 0)
            throw new DumpFormatException(source, number, $"unexpected text after the value: '{value[extra..].TrimStart()}'");

        int? width = null;
        int slash = name.IndexOf('/');
        if (slash >= 0)
        {
            var widthText = name[(slash + 1)..].Trim();
            name = name[..slash].TrimEnd();
            width = widthText switch
            {
                "32" => 32,
                "64" => 64,
                _ => throw new DumpFormatException(source, number, $"width '/{widthText}' is not /32 or /64"),
            };
        }

        SmmuRegister? register = null;
        ulong offset;
        if (!name.IsEmpty && char.IsAsciiDigit(name[0]))
        {
            if (!JsonNumber.TryParse(name, out offset, out string? error)) throw new DumpFormatException(source, number, error!);
        }
        else if (ScenarioRegisters.TryParseName(name, out var named))
        {
            register = named;
            offset = (uint)named;
        }
        else
        {
            throw new DumpFormatException(source, number, $"'{name}' is not an SMMUv3 register name or an offset such as 0x20");
        }

        if (ScenarioRegisters.CheckOffset(offset, 32) is string offsetError) throw new DumpFormatException(source, number, offsetError);
        int w = width ?? ScenarioRegisters.NaturalWidth((uint)offset);
        if (ScenarioRegisters.CheckOffset(offset, w) is string wideError) throw new DumpFormatException(source, number, wideError);

        if (!JsonNumber.TryParse(value, out ulong v, out string? valueError)) throw new DumpFormatException(source, number, valueError!);
        if (!JsonNumber.FitsIn(v, w))
            throw new DumpFormatException(source, number, $"'{value}' does not fit in the {w} bits of {register?.ToString() ?? JsonNumber.ToHex(offset)}");
        return register is SmmuRegister r ? new RegisterWrite(r, v, w) : new RegisterWrite((uint)offset, v, w);
    }

    private static string Label(RegisterWrite write) => write.Name ?? JsonNumber.ToHex(write.Offset);

    /// <summary>Loads a raw memory image file into <paramref name="memory"/> at <paramref name="physicalBase"/>.</summary>
    /// <inheritdoc cref="LoadMemoryImage(Stream, ulong, SparseMemory, string?)"/>
    public static MemoryImageInfo LoadMemoryImage(string imagePath, ulong physicalBase, SparseMemory memory)
    {
        ArgumentNullException.ThrowIfNull(imagePath);
        ArgumentNullException.ThrowIfNull(memory);
        using var stream = new FileStream(imagePath, FileMode.Open, FileAccess.Read, FileShare.Read,
            bufferSize: 1, FileOptions.SequentialScan); // we read in large chunks: no second buffer
        return LoadMemoryImage(stream, physicalBase, memory, imagePath);
    }

    /// <summary>
    /// Copies every byte of <paramref name="image"/> into <paramref name="memory"/> from
    /// <paramref name="physicalBase"/> on, streaming in chunks. Pieces that are all zero and fall on
    /// pages never written are skipped, so a mostly empty image keeps memory sparse; zeros over
    /// pages that already hold data are written, so the result is always the image's bytes.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The image does not fit below 2^52.</exception>
    public static MemoryImageInfo LoadMemoryImage(Stream image, ulong physicalBase, SparseMemory memory, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(memory);
        string label = name is null ? "Memory image" : $"Memory image '{name}'";
        if (physicalBase >= SparseMemory.AddressLimit)
            throw new ArgumentOutOfRangeException(nameof(physicalBase),
                $"{label} base {JsonNumber.ToHex(physicalBase)} is beyond the {SparseMemory.AddressBits}-bit physical address space.");
        if (image.CanSeek)
            CheckFits(label, physicalBase, (ulong)Math.Max(0, image.Length - image.Position));

        const int ChunkSize = 1 << 20; // a multiple of the page size
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        ulong address = physicalBase;
        long written = 0, skipped = 0;
        try
        {
            while (true)
            {
                // Chunks end on page boundaries of the physical address, so each page is one piece.
                int want = ChunkSize - (int)(address & SparseMemory.PageMask);
                int n = image.ReadAtLeast(buffer.AsSpan(0, want), want, throwOnEndOfStream: false);
                if (n == 0) break;
                CheckFits(label, physicalBase, address - physicalBase + (ulong)n);
                ReadOnlySpan<byte> chunk = buffer.AsSpan(0, n);
                while (!chunk.IsEmpty)
                {
                    // One piece per page: a skipped piece is the image's whole share of that page.
                    int piece = (int)Math.Min((ulong)chunk.Length, SparseMemory.PageSize - (address & SparseMemory.PageMask));
                    var bytes = chunk[..piece];
                    if (bytes.ContainsAnyExcept((byte)0) || memory.IsAllocated(address))
                    {
                        memory.Write(address, bytes);
                        written++;
                    }
                    else
                    {
                        skipped++;
                    }
                    chunk = chunk[piece..];
                    address += (ulong)piece;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return new MemoryImageInfo(physicalBase, address - physicalBase, written, skipped);
    }

    private static void CheckFits(string label, ulong physicalBase, ulong length)
    {
        if (length > SparseMemory.AddressLimit - physicalBase)
            throw new ArgumentOutOfRangeException("physicalBase",
                $"{label} of {JsonNumber.ToHex(length)} bytes at {JsonNumber.ToHex(physicalBase)} ends beyond the {SparseMemory.AddressBits}-bit physical address space.");
    }
}

/// <summary>A parsed register list: every line in order, split into ID register overrides and writes.</summary>
public sealed class RegisterDump
{
    internal RegisterDump(IReadOnlyList<DumpedRegister> registers)
    {
        Registers = registers;
        Idr = registers.Where(r => IsId(r.Write)).ToDictionary(r => (SmmuRegister)r.Write.Offset, r => (uint)r.Write.Value);
        Writes = registers.Where(r => !IsId(r.Write)).Select(r => r.Write).ToArray();
    }

    /// <summary>Every register line, in file order, with its line number.</summary>
    public IReadOnlyList<DumpedRegister> Registers { get; }

    /// <summary>The ID registers (IDR0-IDR5, IIDR, AIDR): values the model presents, not writes.</summary>
    public IReadOnlyDictionary<SmmuRegister, uint> Idr { get; }

    /// <summary>Every other register, in file order. Replaying them in a safe order (CR0 last) is the caller's choice.</summary>
    public IReadOnlyList<RegisterWrite> Writes { get; }

    private static bool IsId(RegisterWrite w) => w.Offset <= (uint)SmmuRegister.AIDR;
}

/// <summary>One line of a register list: its 1-based line number and the register value it gave.</summary>
public readonly record struct DumpedRegister(int Line, RegisterWrite Write);

/// <summary>What <see cref="DumpInput.LoadMemoryImage(Stream, ulong, SparseMemory, string?)"/> loaded.</summary>
/// <param name="Base">Physical address of the image's first byte.</param>
/// <param name="Length">Bytes in the image.</param>
/// <param name="PiecesWritten">Pages (partial at the image's ends) copied into memory.</param>
/// <param name="ZeroPiecesSkipped">All-zero pages (or partial pages) left unallocated.</param>
public readonly record struct MemoryImageInfo(ulong Base, ulong Length, long PiecesWritten, long ZeroPiecesSkipped);

/// <summary>A register list line that does not follow the format; the message starts with <c>file:line:</c>.</summary>
public sealed class DumpFormatException : FormatException
{
    public DumpFormatException(string fileName, int line, string detail)
        : base($"{fileName}:{line}: {detail}")
    {
        FileName = fileName;
        Line = line;
        Detail = detail;
    }

    public string FileName { get; }

    /// <summary>1-based line number.</summary>
    public int Line { get; }

    public string Detail { get; }
}
