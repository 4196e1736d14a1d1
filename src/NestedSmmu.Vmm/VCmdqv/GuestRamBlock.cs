namespace NestedSmmu.Vmm.VCmdqv;

/// <summary>
/// One block of guest RAM as the CMDQV needs to see it: where it sits in guest physical space and
/// the page size of its host backend (4 KiB for anonymous memory, 2 MiB or 1 GiB for hugetlbfs),
/// which bounds how much of it is physically contiguous on the host.
/// </summary>
/// <param name="Name">The backend's name, for messages (e.g. <c>ram0</c>).</param>
/// <param name="Gpa">Guest physical address of its first byte (also its IOVA in the IOAS).</param>
/// <param name="Size">Bytes.</param>
/// <param name="BackendPageSize">Host page size of the backend; a power of two.</param>
public sealed record GuestRamBlock(string Name, ulong Gpa, ulong Size, ulong BackendPageSize)
{
    /// <summary>True when <c>[gpa, gpa + length)</c> lies inside the block.</summary>
    public bool Contains(ulong gpa, ulong length) => gpa >= Gpa && length <= Size && gpa - Gpa <= Size - length;
}
