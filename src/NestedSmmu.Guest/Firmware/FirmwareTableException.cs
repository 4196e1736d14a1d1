namespace NestedSmmu.Guest.Firmware;

/// <summary>A firmware table (ACPI, AML, FDT) that cannot be read: the message says which table, where, and why.</summary>
public sealed class FirmwareTableException(string message) : Exception(message);
