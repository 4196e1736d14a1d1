using NestedSmmu.Hardware.Firmware;

namespace NestedSmmu.Vmm.Acpi;

/// <summary>Field offsets of the IORT and its nodes (Arm DEN 0049E.f, section 3), each chained from the one before.</summary>
public static class IortLayout
{
    /// <summary>The IORT revision QEMU 11.1 writes (DEN 0049E.d and later).</summary>
    public const byte TableRevision = 5;

    // Table 2: the IORT after the ACPI header.
    public const int NodeCount = AcpiHeader.Size;
    public const int NodeArrayOffset = NodeCount + 4;
    public const int Reserved = NodeArrayOffset + 4;
    /// <summary>The first node follows the table header (QEMU's IORT_NODE_OFFSET).</summary>
    public const int FirstNode = Reserved + 4;

    /// <summary>Table 3: the header every node starts with.</summary>
    public static class Node
    {
        public const int Type = 0;
        public const int Length = Type + 1;
        public const int Revision = Length + 2;
        public const int Identifier = Revision + 1;
        public const int MappingCount = Identifier + 4;
        public const int MappingArrayOffset = MappingCount + 4;
        public const int Size = MappingArrayOffset + 4;
    }

    /// <summary>Table 5: one ID mapping.</summary>
    public static class IdMapping
    {
        public const int InputBase = 0;
        public const int IdCount = InputBase + 4; // number of IDs minus one
        public const int OutputBase = IdCount + 4;
        public const int OutputReference = OutputBase + 4;
        public const int Flags = OutputReference + 4;
        public const int Size = Flags + 4;
        /// <summary>Flags bit 0: Single mapping.</summary>
        public const uint SingleMapping = 1;
    }

    /// <summary>Table 12: ITS group node.</summary>
    public static class ItsGroup
    {
        public const byte Revision = 1;
        public const int ItsCount = Node.Size;
        public const int Identifiers = ItsCount + 4;
        public const int IdentifierSize = 4;
    }

    /// <summary>Table 10: SMMUv3 node.</summary>
    public static class SmmuV3
    {
        public const byte Revision = 4;
        public const int BaseAddress = Node.Size;
        public const int Flags = BaseAddress + 8;
        public const int Reserved = Flags + 4;
        public const int VatosAddress = Reserved + 4;
        public const int Model = VatosAddress + 8;
        public const int EventGsiv = Model + 4;
        public const int PriGsiv = EventGsiv + 4;
        public const int GerrGsiv = PriGsiv + 4;
        public const int SyncGsiv = GerrGsiv + 4;
        public const int ProximityDomain = SyncGsiv + 4;
        public const int DeviceIdMappingIndex = ProximityDomain + 4;
        public const int Size = DeviceIdMappingIndex + 4;
        /// <summary>Flags bit 0: COHACC override (the SMMU's table walks are coherent).</summary>
        public const uint CohaccOverride = 1;
        /// <summary>Model 0: generic SMMUv3.</summary>
        public const uint ModelGeneric = 0;
    }

    /// <summary>Table 17: root complex node (revision 3 ends with the PASID capabilities and flags).</summary>
    public static class RootComplex
    {
        public const byte Revision = 3;
        public const int CacheCoherency = Node.Size;
        public const int AllocationHints = CacheCoherency + 4;
        public const int Reserved = AllocationHints + 1;
        public const int MemoryAccessFlags = Reserved + 2;
        public const int AtsAttribute = MemoryAccessFlags + 1;
        public const int PciSegment = AtsAttribute + 4;
        public const int MemoryAddressSizeLimit = PciSegment + 4;
        public const int PasidCapabilities = MemoryAddressSizeLimit + 1;
        public const int Reserved2 = PasidCapabilities + 2;
        public const int Size = Reserved2 + 1;
        /// <summary>Table 14 CCA: fully coherent.</summary>
        public const uint FullyCoherent = 1;
        /// <summary>Table 15: CCA = 1, CPM = 1 (coherent path to memory, device attributes).</summary>
        public const byte CoherentDeviceAttributes = 0x3;
        /// <summary>ATS attribute bit 0: the root complex supports ATS.</summary>
        public const uint AtsSupported = 1;
        public const byte AddressSizeBits = 64;
    }

    /// <summary>Table 18: reserved memory range node, and Table 19, its memory range descriptor.</summary>
    public static class Rmr
    {
        public const byte Revision = 3;
        public const int Flags = Node.Size;
        public const int RangeCount = Flags + 4;
        public const int RangeArrayOffset = RangeCount + 4;
        public const int Size = RangeArrayOffset + 4;
        public const int RangeBase = 0;
        public const int RangeLength = RangeBase + 8;
        public const int RangeReserved = RangeLength + 8;
        public const int RangeSize = RangeReserved + 4;
        /// <summary>Flags: no remapping allowed, unprivileged, Device-nGnRnE.</summary>
        public const uint FlagsDeviceNgnrne = 0;
    }

    /// <summary>Requester IDs are 16 bits (PCIe Base 2.2.6.2): the full range is 0..0xFFFF.</summary>
    public const uint RequesterIdSpace = 0x1_0000;
}
