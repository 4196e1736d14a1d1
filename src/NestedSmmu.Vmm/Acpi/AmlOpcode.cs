namespace NestedSmmu.Vmm.Acpi;

/// <summary>AML encodings this encoder uses (ACPI 6.5, 20.2 "AML Grammar Definition").</summary>
internal static class AmlOpcode
{
    public const byte Zero = 0x00; // 20.2.3 ConstObj
    public const byte One = 0x01;
    public const byte Name = 0x08; // 20.2.5.1 DefName
    public const byte BytePrefix = 0x0A; // 20.2.3 ComputationalData
    public const byte WordPrefix = 0x0B;
    public const byte DWordPrefix = 0x0C;
    public const byte StringPrefix = 0x0D;
    public const byte QWordPrefix = 0x0E;
    public const byte Scope = 0x10; // 20.2.5.1 DefScope
    public const byte Buffer = 0x11; // 20.2.5.4 DefBuffer
    public const byte Package = 0x12; // 20.2.5.4 DefPackage
    public const byte DualNamePrefix = 0x2E; // 20.2.2 Name Objects
    public const byte MultiNamePrefix = 0x2F;
    public const byte ExtOpPrefix = 0x5B;
    public const byte DeviceExt = 0x82; // 20.2.5.2 DefDevice = ExtOpPrefix 0x82
    public const byte RootChar = 0x5C; // '\'
    public const byte NameSegPad = (byte)'_';
    public const int NameSegLength = 4;
}

/// <summary>Small resource data tags (ACPI 6.5, 6.4.2) and large ones (6.4.3) this encoder writes.</summary>
internal static class AmlResourceTag
{
    /// <summary>Small item: End Tag, tag 0xF, length 1 (6.4.2.9).</summary>
    public const byte EndTag = 0x79;
    /// <summary>Large items: the tag byte is 0x80 | item name (6.4.3).</summary>
    public const byte Memory32Fixed = 0x86; // 6.4.3.4
    public const byte DWordAddressSpace = 0x87; // 6.4.3.5.2
    public const byte WordAddressSpace = 0x88; // 6.4.3.5.3
    public const byte ExtendedInterrupt = 0x89; // 6.4.3.6
    public const byte QWordAddressSpace = 0x8A; // 6.4.3.5.1
}
