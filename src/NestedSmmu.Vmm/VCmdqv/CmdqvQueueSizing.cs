using System.Numerics;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Vmm.VCmdqv;

/// <summary>
/// How large a guest VCMDQ may be. The CMDQV reads a VCMDQ by host physical address, so its
/// buffer must be physically contiguous on the host; only a backend page is guaranteed to be.
/// QEMU therefore clamps the vSMMU's IDR1.CMDQS to the smallest RAM backend page
/// (tegra241_cmdqv_init_regs: CMDQS = MIN(log2(page size) - 4, CMDQS)), so a guest driver that
/// honours IDR1 never asks for more. Pure functions: the vSMMU calls <see cref="ClampCmdqs(int, ulong)"/>
/// when it builds its IDRs.
/// </summary>
public static class CmdqvQueueSizing
{
    /// <summary>log2 of a command's 16 bytes (CMDQ_ENT_SZ_SHIFT).</summary>
    public static readonly int CommandSizeLog2 = BitOperations.Log2((uint)Command.Size);

    /// <summary>
    /// IDR1.CMDQS for a guest whose smallest RAM backend page is <paramref name="smallestPageSize"/>:
    /// 4 KiB pages give 8, 64 KiB 12, 2 MiB 17, 1 GiB 19 (26, clamped by an IDR1.CMDQS of 19).
    /// </summary>
    /// <param name="cmdqs">The IDR1.CMDQS the vSMMU would show otherwise (log2 of entries).</param>
    /// <param name="smallestPageSize">The smallest backend page size of guest RAM; a power of two of at least 16 bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The page size is not a power of two of at least one command.</exception>
    public static int ClampCmdqs(int cmdqs, ulong smallestPageSize)
    {
        if (!BitOperations.IsPow2(smallestPageSize) || smallestPageSize < (ulong)Command.Size)
            throw new ArgumentOutOfRangeException(nameof(smallestPageSize), smallestPageSize,
                $"A RAM backend page size must be a power of two of at least {Command.Size} bytes.");
        return Math.Min(BitOperations.TrailingZeroCount(smallestPageSize) - CommandSizeLog2, cmdqs);
    }

    /// <summary>IDR1.CMDQS clamped by the smallest backend page of <paramref name="guestRam"/>.</summary>
    /// <exception cref="ArgumentException">No RAM block given.</exception>
    public static int ClampCmdqs(int cmdqs, IReadOnlyCollection<GuestRamBlock> guestRam)
    {
        ArgumentNullException.ThrowIfNull(guestRam);
        if (guestRam.Count == 0) throw new ArgumentException("The guest has no RAM block to take a page size from.", nameof(guestRam));
        return ClampCmdqs(cmdqs, guestRam.Min(b => b.BackendPageSize));
    }

    /// <summary>
    /// Why a guest VCMDQ of <paramref name="length"/> bytes at <paramref name="gpa"/> cannot be backed
    /// by contiguous host memory, or null when it can: it must lie inside one RAM block and inside
    /// one of that block's backend pages.
    /// </summary>
    public static string? CheckBacking(IReadOnlyCollection<GuestRamBlock> guestRam, ulong gpa, ulong length)
    {
        ArgumentNullException.ThrowIfNull(guestRam);
        ulong last = gpa + length - 1;
        GuestRamBlock? block = guestRam.FirstOrDefault(b => b.Contains(gpa, length));
        if (block is null)
            return $"the VCMDQ buffer [0x{gpa:X}, 0x{last:X}] is not inside guest RAM, so the host cannot pin it";
        ulong page = block.BackendPageSize;
        if (gpa / page == last / page) return null;
        return $"the VCMDQ buffer [0x{gpa:X}, 0x{last:X}] ({length} bytes) spans more than one {FormatSize(page)} host page of " +
            $"guest RAM '{block.Name}', so it may not be physically contiguous on the host, as the CMDQV requires; " +
            $"back guest RAM with huge pages or keep VCMDQs within {FormatSize(page)} (IDR1.CMDQS {ClampCmdqs(int.MaxValue, page)})";
    }

    private static string FormatSize(ulong bytes) => bytes switch
    {
        >= 1UL << 30 when bytes % (1UL << 30) == 0 => $"{bytes >> 30} GiB",
        >= 1UL << 20 when bytes % (1UL << 20) == 0 => $"{bytes >> 20} MiB",
        >= 1UL << 10 when bytes % (1UL << 10) == 0 => $"{bytes >> 10} KiB",
        _ => $"{bytes} bytes",
    };
}
