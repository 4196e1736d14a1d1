using NestedSmmu.Iommufd;
using G = NestedSmmu.Vmm.VCmdqv.GuestCmdqvLayout;

namespace NestedSmmu.Vmm.VCmdqv;

public sealed partial class Tegra241VCmdqv
{
    private const int WordBits = 32;

    /// <summary>
    /// Reads the TEGRA241_CMDQV vEVENTQ dry (QEMU's fd handler, tegra241_cmdqv_event_read): each
    /// error map fills VINTF0's LVCMDQ_ERR_MAP_0..3, mirrored into CMDQ_ERR_MAP_0..3 (with one
    /// VINTF the two carry the same bits), sets VI_ERR_MAP_0's VINTF0 bit and pulses
    /// <see cref="Irq"/> unless VI_INT_MASK_0 masks VINTF0. The VM calls this from its event loop
    /// whenever the queue is readable, as QEMU's main loop does; the guest's PROD writes reach the
    /// hardware without the VMM, so this is how the VMM learns of their errors.
    /// </summary>
    /// <returns>Records read (lost-events markers included).</returns>
    public int PollEvents()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int handled = 0;
        while (_events.HasEvents)
        {
            IReadOnlyList<Vevent> batch;
            try
            {
                batch = _events.Read();
            }
            catch (IommufdException e)
            {
                Report(e.Message);
                break;
            }
            if (batch.Count == 0) break;
            foreach (Vevent e in batch)
            {
                handled++;
                if (e.LostEvents) Report($"{Name}: vEVENTQ overflow: CMDQV error events lost before sequence {e.Sequence}");
                else DeliverError(e.AsTegra241Cmdqv());
            }
        }
        return handled;
    }

    private void DeliverError(Tegra241CmdqvVevent error)
    {
        if (error.LvcmdqErrMap0 == 0 && error.LvcmdqErrMap1 == 0) return;
        _lvcmdqErrMap[0] = (uint)error.LvcmdqErrMap0;
        _lvcmdqErrMap[1] = (uint)(error.LvcmdqErrMap0 >> WordBits);
        _lvcmdqErrMap[2] = (uint)error.LvcmdqErrMap1;
        _lvcmdqErrMap[3] = (uint)(error.LvcmdqErrMap1 >> WordBits);
        _lvcmdqErrMap.CopyTo(_cmdqErrMap, 0);
        _viErrMap[0] |= G.Vintf0Bit;
        if ((_viIntMask[0] & G.Vintf0Bit) == 0) Irq.Pulse();
    }

    /// <summary>
    /// Brings the error maps up to date before the guest reads one. QEMU keeps the bits of a vEVENT
    /// until the next vEVENT or a reset; the hardware's maps follow the queues' error state, which
    /// the guest clears by acknowledging through GERRORN in the mapped page, with no trap. So a
    /// guest queue whose error the hardware no longer shows loses its bit here, and VI_ERR_MAP_0's
    /// VINTF0 bit goes when no bit is left, as on the hardware (and the Linux guest's error handler
    /// does not see an acknowledged queue again).
    /// </summary>
    private void RefreshErrorMaps()
    {
        for (int q = 0; q < G.NumVcmdqs; q++)
        {
            uint bit = 1u << (q % WordBits);
            int word = q / WordBits;
            if ((_lvcmdqErrMap[word] & bit) == 0 || HardwareErrorActive(q)) continue;
            _lvcmdqErrMap[word] &= ~bit;
            _cmdqErrMap[word] &= ~bit;
        }
        if (_lvcmdqErrMap.All(w => w == 0)) _viErrMap[0] &= ~G.Vintf0Bit;
    }
}
