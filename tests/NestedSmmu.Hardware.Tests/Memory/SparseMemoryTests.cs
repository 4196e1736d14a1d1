namespace NestedSmmu.Hardware.Tests.Memory;

public class SparseMemoryTests
{
    [Fact]
    public void NeverWrittenMemoryReadsAsZeroAndAllocatesNothing()
    {
        var m = new SparseMemory();
        m.ReadUInt64(0x1234_5000).ShouldBe(0UL);
        m.ReadUInt64(SparseMemory.AddressLimit - 8).ShouldBe(0UL);
        ((IPhysicalMemory)m).ReadUInt32(0x77).ShouldBe(0u);
        var buffer = new byte[10000];
        Array.Fill(buffer, (byte)0xAA);
        m.Read(0x4000_0FF0, buffer);
        buffer.ShouldAllBe(b => b == 0);
        m.AllocatedPages.ShouldBe(0);
        m.IsAllocated(0x1234_5000).ShouldBeFalse();
    }

    public static TheoryData<int, ulong> WidthsAndAddresses()
    {
        var data = new TheoryData<int, ulong>();
        foreach (int width in new[] { 1, 2, 4, 8 })
        {
            // Every position of an access relative to a 4 KiB page end: wholly inside, straddling, ending on it.
            for (int before = 0; before <= width; before++)
                data.Add(width, 0x8_0000_1000UL - (ulong)before);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(WidthsAndAddresses))]
    public void ScalarAccessesOfEveryWidthCrossPagesLittleEndian(int width, ulong address)
    {
        var m = new SparseMemory();
        IPhysicalMemory pm = m;
        ulong value = 0x8877_6655_4433_2211UL & (width == 8 ? ulong.MaxValue : (1UL << (width * 8)) - 1);
        switch (width)
        {
            case 1: pm.WriteByte(address, (byte)value); pm.ReadByte(address).ShouldBe((byte)value); break;
            case 2: pm.WriteUInt16(address, (ushort)value); pm.ReadUInt16(address).ShouldBe((ushort)value); break;
            case 4: pm.WriteUInt32(address, (uint)value); pm.ReadUInt32(address).ShouldBe((uint)value); break;
            default: pm.WriteUInt64(address, value); pm.ReadUInt64(address).ShouldBe(value); m.ReadUInt64(address).ShouldBe(value); break;
        }
        // Byte by byte, little-endian, across the page boundary.
        for (int i = 0; i < width; i++) pm.ReadByte(address + (ulong)i).ShouldBe((byte)(value >> (8 * i)));
        pm.ReadByte(address - 1).ShouldBe((byte)0);
        pm.ReadByte(address + (ulong)width).ShouldBe((byte)0);
        bool crosses = (address & SparseMemory.PageMask) + (ulong)width > SparseMemory.PageSize;
        m.AllocatedPages.ShouldBe(crosses ? 2 : 1);
    }

    [Fact]
    public void SpanAccessorsCoverManyPagesAndPartialPages()
    {
        var m = new SparseMemory();
        var data = new byte[3 * SparseMemory.PageSize + 100];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)(i * 7 + 3);
        const ulong at = 0x2000_0F80;
        m.Write(at, data);
        var back = new byte[data.Length];
        m.Read(at, back);
        back.ShouldBe(data);
        m.AllocatedPages.ShouldBe(4); // [0x2000_0F80, 0x2000_3FE4) touches 4 pages
        // A slice in the middle, and the words read back with the 64-bit fast and slow paths.
        var slice = new byte[17];
        m.Read(at + 4090, slice);
        slice.ShouldBe(data.AsSpan(4090, 17).ToArray());
        Span<ulong> words = stackalloc ulong[3];
        ((IPhysicalMemory)m).ReadUInt64s(0x2000_1000, words);
        words[0].ShouldBe(BitConverter.ToUInt64(data, 0x80));
        m.ReadUInt64(0x2000_1003).ShouldBe(BitConverter.ToUInt64(data, 0x83)); // unaligned slow path
    }

    [Fact]
    public void WordArraysRoundTrip()
    {
        IPhysicalMemory m = new SparseMemory();
        ulong[] words = [0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210, 0, ulong.MaxValue];
        m.WriteUInt64s(0x3000_0FF0, words);
        var back = new ulong[4];
        m.ReadUInt64s(0x3000_0FF0, back);
        back.ShouldBe(words);
    }

    [Theory]
    [InlineData(SparseMemory.AddressLimit, 1)]
    [InlineData(SparseMemory.AddressLimit - 1, 2)]
    [InlineData(SparseMemory.AddressLimit - 8, 9)]
    [InlineData(ulong.MaxValue, 1)]
    public void AccessBeyondThe52BitSpaceThrowsWithAClearMessage(ulong address, int length)
    {
        var m = new SparseMemory();
        var ex = Should.Throw<ArgumentOutOfRangeException>(() => m.Write(address, new byte[length]));
        ex.Message.ShouldContain("52-bit physical address space");
        ex.Message.ShouldContain($"0x{address:X}");
        Should.Throw<ArgumentOutOfRangeException>(() => m.Read(address, new byte[length]));
        m.IsAbort(address, (ulong)length).ShouldBeTrue();
    }

    [Fact]
    public void LastBytesOfThe52BitSpaceAreUsable()
    {
        var m = new SparseMemory();
        m.WriteUInt64(SparseMemory.AddressLimit - 8, 0xCAFE);
        m.ReadUInt64(SparseMemory.AddressLimit - 8).ShouldBe(0xCAFEUL);
        m.IsAbort(SparseMemory.AddressLimit - 8, 8).ShouldBeFalse();
        // The fast path of an aligned 64-bit read beyond the limit goes through the checked path.
        Should.Throw<ArgumentOutOfRangeException>(() => m.ReadUInt64(SparseMemory.AddressLimit));
    }

    [Fact]
    public void AbortRangesReportOverlapsOnly()
    {
        var m = new SparseMemory();
        m.AddAbortRange(0x5000, 0x1000);
        m.IsAbort(0x4FF8, 8).ShouldBeFalse();
        m.IsAbort(0x4FF9, 8).ShouldBeTrue();
        m.IsAbort(0x5FFF, 1).ShouldBeTrue();
        m.IsAbort(0x6000, 64).ShouldBeFalse();
        IPhysicalMemory viaInterface = m;
        viaInterface.IsAbort(0x5800, 4).ShouldBeTrue();
    }

    [Fact]
    public void ClearForgetsEveryPage()
    {
        var m = new SparseMemory();
        m.WriteUInt64(0x1000, 5);
        m.ReadUInt64(0x1000).ShouldBe(5UL); // warms the one-entry page cache
        m.Clear();
        m.AllocatedPages.ShouldBe(0);
        m.ReadUInt64(0x1000).ShouldBe(0UL);
    }
    [Fact]
    public void PagesThatShareACacheSlotReadTheirOwnBytes()
    {
        // The page cache is direct-mapped: pages of pools 1 MiB, 256 MiB and 1 GiB apart, near the
        // top of the space and at odd offsets take each other's slots in turn. Every read, aligned
        // or not, must still give what was last written there (a reference dictionary of bytes),
        // and a page first read while absent (zeros, not cached) must show its first write.
        var m = new SparseMemory();
        var expected = new Dictionary<ulong, byte>();
        ulong[] pools = [0x1000_0000, 0x1010_0000, 0x2000_0000, 0x4000_0000, 0x8_4000_0000, SparseMemory.AddressLimit - 0x10_0000];
        var rng = new Random(12);
        for (int op = 0; op < 20_000; op++)
        {
            ulong address = pools[rng.Next(pools.Length)] + (ulong)rng.Next(0, 64) * SparseMemory.PageSize + (ulong)rng.Next(0, SparseMemory.PageSize - 8);
            if (rng.Next(3) == 0) address &= ~7UL;
            if (rng.Next(4) == 0)
            {
                ulong value = (ulong)rng.NextInt64();
                m.WriteUInt64(address, value);
                for (int i = 0; i < 8; i++) expected[address + (ulong)i] = (byte)(value >> (8 * i));
                continue;
            }
            ulong want = 0;
            for (int i = 0; i < 8; i++) want |= (ulong)expected.GetValueOrDefault(address + (ulong)i) << (8 * i);
            m.ReadUInt64(address).ShouldBe(want, $"read of 0x{address:X} after {op} operations");
        }
    }
}
