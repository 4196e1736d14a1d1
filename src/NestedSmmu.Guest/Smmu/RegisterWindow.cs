using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Guest.Smmu;

/// <summary>
/// A device's register window as a guest driver sees it: 32- and 64-bit accesses at an offset
/// from the base address its firmware table gave (Linux's readl/writel/readq/writeq on an ioremap).
/// Counts accesses so reports can show how much MMIO a path costs.
/// </summary>
public sealed class RegisterWindow(MmioBus bus, ulong baseAddress)
{
    public ulong Base => baseAddress;
    public long Reads { get; private set; }
    public long Writes { get; private set; }

    /// <summary>Optional trace of every access ("R/W width address value").</summary>
    public Action<string>? Trace { get; set; }

    public uint Read32(ulong offset)
    {
        Reads++;
        uint v = (uint)bus.Read(baseAddress + offset, sizeof(uint));
        Trace?.Invoke($"mmio R4 0x{baseAddress + offset:X} = 0x{v:X8}");
        return v;
    }

    public ulong Read64(ulong offset)
    {
        Reads++;
        ulong v = bus.Read(baseAddress + offset, sizeof(ulong));
        Trace?.Invoke($"mmio R8 0x{baseAddress + offset:X} = 0x{v:X16}");
        return v;
    }

    public void Write32(ulong offset, uint value)
    {
        Writes++;
        Trace?.Invoke($"mmio W4 0x{baseAddress + offset:X} = 0x{value:X8}");
        bus.Write(baseAddress + offset, sizeof(uint), value);
    }

    public void Write64(ulong offset, ulong value)
    {
        Writes++;
        Trace?.Invoke($"mmio W8 0x{baseAddress + offset:X} = 0x{value:X16}");
        bus.Write(baseAddress + offset, sizeof(ulong), value);
    }

    /// <summary>
    /// Polls until <paramref name="done"/> holds for the register's value, as readl_poll_timeout does;
    /// false after <paramref name="attempts"/> reads. The models complete register updates at once,
    /// so the bound only stops a broken device from hanging the guest.
    /// </summary>
    public bool Poll32(ulong offset, Func<uint, bool> done, out uint value, int attempts = PollAttempts)
    {
        for (int i = 0; i < attempts; i++)
        {
            value = Read32(offset);
            if (done(value)) return true;
        }
        value = Read32(offset);
        return done(value);
    }

    /// <summary>Reads before a poll gives up (Linux bounds its polls by ARM_SMMU_POLL_TIMEOUT_US).</summary>
    public const int PollAttempts = 1000;
}
