using NestedSmmu.Hardware.Memory;
using NestedSmmu.Scenarios;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Scenarios.Tests;

/// <summary>--from-dump inputs: register lists and raw memory images.</summary>
public sealed class DumpInputTests : IDisposable
{
    private readonly List<string> _tempFiles = [];

    public void Dispose()
    {
        foreach (string f in _tempFiles) File.Delete(f);
    }

    [Fact]
    public void Register_list_accepts_every_spelling()
    {
        const string text = """
            # SMMU state saved by hand

            IDR0 = 0x0D44101B
            SMMU_IDR1: 0x02730010          # prefix and colon
            idr5 0x74
            STRTAB_BASE = 0x0000000040010000
            STRTAB_BASE_CFG	5
            EVTQ_BASE/64 = 0x40f00006
            CMDQ_BASE/32 = 0x40e00000      # explicit 32: the low half only
            0x44 = 0x0
            0x80/64 = 0x123
              CR0=0x1
            """;

        var dump = DumpInput.ParseRegisterList(text, "regs.txt");

        dump.Idr.ShouldBe(new Dictionary<SmmuRegister, uint>
        {
            [SmmuRegister.IDR0] = 0x0D44101B, [SmmuRegister.IDR1] = 0x02730010, [SmmuRegister.IDR5] = 0x74,
        });
        dump.Writes.ShouldBe([
            new RegisterWrite(SmmuRegister.STRTAB_BASE, 0x40010000, 64), // 64 inferred from the register
            new RegisterWrite(SmmuRegister.STRTAB_BASE_CFG, 5),
            new RegisterWrite(SmmuRegister.EVENTQ_BASE, 0x40f00006, 64),
            new RegisterWrite(SmmuRegister.CMDQ_BASE, 0x40e00000, 32),
            new RegisterWrite(0x44u, 0),
            new RegisterWrite(0x80u, 0x123, 64),
            new RegisterWrite(SmmuRegister.CR0, 1),
        ]);
        dump.Registers.Select(r => r.Line).ShouldBe([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    [Fact]
    public void Offset_of_a_64_bit_register_infers_64_bits()
    {
        var dump = DumpInput.ParseRegisterList("0x90 = 0x1_0000_0000".Replace("_", ""));
        dump.Writes.ShouldBe([new RegisterWrite(0x90u, 0x100000000, 64)]);
    }

    [Theory]
    [InlineData("CR0 = 1\nCR9 = 0x1", "regs.txt:2: 'CR9' is not an SMMUv3 register name or an offset such as 0x20")]
    [InlineData("\n\n# c\nCR0 = 0xZZ", "regs.txt:4: '0xZZ' is not a hex or decimal number")]
    [InlineData("CR0 = 0x100000000", "regs.txt:1: '0x100000000' does not fit in the 32 bits of CR0")]
    [InlineData("0x22 = 1", "regs.txt:1: offset 0x22 is not 4-byte aligned")]
    [InlineData("0x84/64 = 1", "regs.txt:1: a 64-bit write at offset 0x84 is not 8-byte aligned")]
    [InlineData("0x20000 = 1", "regs.txt:1: offset 0x20000 is outside the 0x20000-byte register frame")]
    [InlineData("STRTAB_BASE/16 = 1", "regs.txt:1: width '/16' is not /32 or /64")]
    [InlineData("CR0", "regs.txt:1: 'CR0' has no value; expected NAME = VALUE")]
    [InlineData("CR0 =", "regs.txt:1: 'CR0' has no value; expected NAME = VALUE")]
    [InlineData("= 1", "regs.txt:1: a register name or offset is missing before the value")]
    [InlineData("CR0 = 1 2", "regs.txt:1: unexpected text after the value: '2'")]
    [InlineData("IDR0 = 1\nIDR1 = 2\nsmmu_idr0 = 3", "regs.txt:3: IDR0 is already given on line 1")]
    [InlineData("IDR0/64 = 1", "regs.txt:1: IDR0 is a 32-bit ID register: drop the /64")]
    [InlineData("CR0,CR1 = 1", "regs.txt:1: 'CR0,CR1' is not an SMMUv3 register name or an offset such as 0x20")]
    [InlineData("PAGE1 = 1", "regs.txt:1: 'PAGE1' is not an SMMUv3 register name or an offset such as 0x20")]
    public void Register_list_errors_name_the_line(string text, string message)
    {
        var e = Should.Throw<DumpFormatException>(() => DumpInput.ParseRegisterList(text, "regs.txt"));
        e.Message.ShouldBe(message);
        e.FileName.ShouldBe("regs.txt");
    }

    [Fact]
    public void Register_list_file_errors_name_the_file()
    {
        string path = TempFile();
        File.WriteAllText(path, "CR0 = 1\r\nCR1 = nope\r\n");

        var e = Should.Throw<DumpFormatException>(() => DumpInput.ReadRegisterList(path));

        e.Message.ShouldBe($"{path}:2: 'nope' is not a hex or decimal number");
        e.Line.ShouldBe(2);
    }

    [Fact]
    public void Memory_image_loads_every_byte_and_stays_sparse()
    {
        // 3 MiB + 100 bytes: several 1 MiB chunks and a short tail; data in four places only.
        var image = new byte[(3 << 20) + 100];
        image[0] = 0x11;
        Array.Fill(image, (byte)0xAB, 0x1FF0, 0x20);                   // straddles a page boundary of the image
        Array.Fill(image, (byte)0xCD, (1 << 20) - 2, 4);                // straddles the first chunk boundary
        image[^1] = 0xEE;
        string path = TempFile();
        File.WriteAllBytes(path, image);
        const ulong Base = 0x4000_0010; // not page aligned
        var memory = new SparseMemory();

        var info = DumpInput.LoadMemoryImage(path, Base, memory);

        info.Base.ShouldBe(Base);
        info.Length.ShouldBe((ulong)image.Length);
        var back = new byte[image.Length];
        memory.Read(Base, back);
        back.AsSpan().SequenceEqual(image).ShouldBeTrue();
        memory.AllocatedPages.ShouldBeLessThanOrEqualTo(6);
        info.ZeroPiecesSkipped.ShouldBeGreaterThan(700);
        // 0x10 + 3 MiB + 100 bytes spans 769 pages: one decision each, whatever the chunking.
        (info.PiecesWritten + info.ZeroPiecesSkipped).ShouldBe(769);
    }

    [Fact]
    public void Zeros_over_memory_that_holds_data_are_written()
    {
        var memory = new SparseMemory();
        memory.WriteUInt64(0x5000_0008, 0x1122334455667788);
        var zeros = new MemoryStream(new byte[0x2000]);

        DumpInput.LoadMemoryImage(zeros, 0x5000_0000, memory);

        memory.ReadUInt64(0x5000_0008).ShouldBe(0UL);
        memory.AllocatedPages.ShouldBe(1); // the page that already existed; the other zero page stays absent
    }

    [Fact]
    public void Memory_image_must_fit_below_2_to_the_52()
    {
        string path = TempFile();
        File.WriteAllBytes(path, new byte[0x2000]);
        var memory = new SparseMemory();

        var e = Should.Throw<ArgumentOutOfRangeException>(() => DumpInput.LoadMemoryImage(path, (1UL << 52) - 0x1000, memory));
        e.Message.ShouldContain($"'{path}' of 0x2000 bytes at 0xffffffffff000 ends beyond the 52-bit physical address space");

        Should.Throw<ArgumentOutOfRangeException>(() => DumpInput.LoadMemoryImage(path, 1UL << 52, memory))
            .Message.ShouldContain("base 0x10000000000000 is beyond the 52-bit physical address space");
        DumpInput.LoadMemoryImage(path, (1UL << 52) - 0x2000, memory).Length.ShouldBe(0x2000UL);
    }

    [Fact]
    public void Unseekable_image_that_runs_past_2_to_the_52_is_stopped()
    {
        var memory = new SparseMemory();
        using var stream = new UnseekableStream(new MemoryStream(Enumerable.Repeat((byte)1, 0x3000).ToArray()));

        Should.Throw<ArgumentOutOfRangeException>(() => DumpInput.LoadMemoryImage(stream, (1UL << 52) - 0x1000, memory, "pipe"))
            .Message.ShouldContain("Memory image 'pipe' of 0x3000 bytes");
    }

    private string TempFile()
    {
        string path = Path.Combine(Path.GetTempPath(), $"nestedsmmu-dump-{Guid.NewGuid():N}.tmp");
        _tempFiles.Add(path);
        return path;
    }

    private sealed class UnseekableStream(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
