/*
 * Intel ACPI Component Architecture
 * AML/ASL+ Disassembler version 20250404 (64-bit version)
 * Copyright (c) 2000 - 2025 Intel Corporation
 * 
 * Disassembly of IORT.dat
 *
 * ACPI Data Table [IORT]
 *
 * Format: [HexOffset DecimalOffset ByteLength]  FieldName : FieldValue (in hex)
 */

[000h 0000 004h]                   Signature : "IORT"    [IO Remapping Table]
[004h 0004 004h]                Table Length : 000001F4
[008h 0008 001h]                    Revision : 05
[009h 0009 001h]                    Checksum : C4
[00Ah 0010 006h]                      Oem ID : "BOCHS "
[010h 0016 008h]                Oem Table ID : "BXPC    "
[018h 0024 004h]                Oem Revision : 00000001
[01Ch 0028 004h]             Asl Compiler ID : "BXPC"
[020h 0032 004h]       Asl Compiler Revision : 00000001

[024h 0036 004h]                  Node Count : 00000006
[028h 0040 004h]                 Node Offset : 00000030
[02Ch 0044 004h]                    Reserved : 00000000

[030h 0048 001h]                        Type : 00
[031h 0049 002h]                      Length : 0018
[033h 0051 001h]                    Revision : 01
[034h 0052 004h]                  Identifier : 00000000
[038h 0056 004h]               Mapping Count : 00000000
[03Ch 0060 004h]              Mapping Offset : 00000000

[040h 0064 004h]                    ItsCount : 00000001
[044h 0068 004h]                 Identifiers : 00000000

[048h 0072 001h]                        Type : 04
[049h 0073 002h]                      Length : 0058
[04Bh 0075 001h]                    Revision : 04
[04Ch 0076 004h]                  Identifier : 00000001
[050h 0080 004h]               Mapping Count : 00000001
[054h 0084 004h]              Mapping Offset : 00000044

[058h 0088 008h]                Base Address : 000000000C000000
[060h 0096 004h]       Flags (decoded below) : 00000001
                             COHACC Override : 1
                               HTTU Override : 0
                      Proximity Domain Valid : 0
                              DeviceID Valid : 0
[064h 0100 004h]                    Reserved : 00000000
[068h 0104 008h]               VATOS Address : 0000000000000000
[070h 0112 004h]                       Model : 00000000
[074h 0116 004h]                  Event GSIV : 00000090
[078h 0120 004h]                    PRI GSIV : 00000091
[07Ch 0124 004h]                   GERR GSIV : 00000093
[080h 0128 004h]                   Sync GSIV : 00000092
[084h 0132 004h]            Proximity Domain : 00000000
[088h 0136 004h]     Device ID Mapping Index : 00000000

[08Ch 0140 004h]                  Input base : 00000000
[090h 0144 004h]                    ID Count : 0000FFFF
[094h 0148 004h]                 Output Base : 00000000
[098h 0152 004h]            Output Reference : 00000030
[09Ch 0156 004h]       Flags (decoded below) : 00000000
                              Single Mapping : 0

[0A0h 0160 001h]                        Type : 04
[0A1h 0161 002h]                      Length : 0058
[0A3h 0163 001h]                    Revision : 04
[0A4h 0164 004h]                  Identifier : 00000002
[0A8h 0168 004h]               Mapping Count : 00000001
[0ACh 0172 004h]              Mapping Offset : 00000044

[0B0h 0176 008h]                Base Address : 000000000C020000
[0B8h 0184 004h]       Flags (decoded below) : 00000001
                             COHACC Override : 1
                               HTTU Override : 0
                      Proximity Domain Valid : 0
                              DeviceID Valid : 0
[0BCh 0188 004h]                    Reserved : 00000000
[0C0h 0192 008h]               VATOS Address : 0000000000000000
[0C8h 0200 004h]                       Model : 00000000
[0CCh 0204 004h]                  Event GSIV : 00000095
[0D0h 0208 004h]                    PRI GSIV : 00000096
[0D4h 0212 004h]                   GERR GSIV : 00000098
[0D8h 0216 004h]                   Sync GSIV : 00000097
[0DCh 0220 004h]            Proximity Domain : 00000000
[0E0h 0224 004h]     Device ID Mapping Index : 00000000

[0E4h 0228 004h]                  Input base : 00000000
[0E8h 0232 004h]                    ID Count : 0000FFFF
[0ECh 0236 004h]                 Output Base : 00000000
[0F0h 0240 004h]            Output Reference : 00000030
[0F4h 0244 004h]       Flags (decoded below) : 00000000
                              Single Mapping : 0

[0F8h 0248 001h]                        Type : 02
[0F9h 0249 002h]                      Length : 0074
[0FBh 0251 001h]                    Revision : 03
[0FCh 0252 004h]                  Identifier : 00000003
[100h 0256 004h]               Mapping Count : 00000004
[104h 0260 004h]              Mapping Offset : 00000024

[108h 0264 008h]           Memory Properties : [IORT Memory Access Properties]
[108h 0264 004h]             Cache Coherency : 00000001
[10Ch 0268 001h]       Hints (decoded below) : 00
                                   Transient : 0
                              Write Allocate : 0
                               Read Allocate : 0
                                    Override : 0
[10Dh 0269 002h]                    Reserved : 0000
[10Fh 0271 001h] Memory Flags (decoded below) : 03
                                   Coherency : 1
                            Device Attribute : 1
               Ensured Coherency of Accesses : 0
[110h 0272 004h]               ATS Attribute : 00000001
[114h 0276 004h]          PCI Segment Number : 00000000
[118h 0280 001h]           Memory Size Limit : 40
[119h 0281 002h]          PASID Capabilities : 0000
[11Bh 0283 001h]                    Reserved : 00

[11Ch 0284 004h]                  Input base : 00000000
[120h 0288 004h]                    ID Count : 000000FF
[124h 0292 004h]                 Output Base : 00000000
[128h 0296 004h]            Output Reference : 00000048
[12Ch 0300 004h]       Flags (decoded below) : 00000000
                              Single Mapping : 0

[130h 0304 004h]                  Input base : 00001000
[134h 0308 004h]                    ID Count : 000000FF
[138h 0312 004h]                 Output Base : 00001000
[13Ch 0316 004h]            Output Reference : 000000A0
[140h 0320 004h]       Flags (decoded below) : 00000000
                              Single Mapping : 0

[144h 0324 004h]                  Input base : 00000100
[148h 0328 004h]                    ID Count : 00000EFF
[14Ch 0332 004h]                 Output Base : 00000100
[150h 0336 004h]            Output Reference : 00000030
[154h 0340 004h]       Flags (decoded below) : 00000000
                              Single Mapping : 0

[158h 0344 004h]                  Input base : 00001100
[15Ch 0348 004h]                    ID Count : 0000EEFF
[160h 0352 004h]                 Output Base : 00001100
[164h 0356 004h]            Output Reference : 00000030
[168h 0360 004h]       Flags (decoded below) : 00000000
                              Single Mapping : 0

[16Ch 0364 001h]                        Type : 06
[16Dh 0365 002h]                      Length : 0044
[16Fh 0367 001h]                    Revision : 03
[170h 0368 004h]                  Identifier : 00000004
[174h 0372 004h]               Mapping Count : 00000001
[178h 0376 004h]              Mapping Offset : 0000001C

[17Ch 0380 004h]       Flags (decoded below) : 00000000
                         Remapping Permitted : 0
                           Access Privileged : 0
                           Access Attributes : 00
[180h 0384 004h]   Number of RMR Descriptors : 00000001
[184h 0388 004h]       RMR Descriptor Offset : 00000030

[19Ch 0412 008h]         Base Address of RMR : 0000000008000000
[1A4h 0420 008h]               Length of RMR : 0000000000100000
[1ACh 0428 004h]                    Reserved : 00000000

[188h 0392 004h]                  Input base : 00000000
[18Ch 0396 004h]                    ID Count : 000000FF
[190h 0400 004h]                 Output Base : 00000000
[194h 0404 004h]            Output Reference : 00000048
[198h 0408 004h]       Flags (decoded below) : 00000001
                              Single Mapping : 1

[1B0h 0432 001h]                        Type : 06
[1B1h 0433 002h]                      Length : 0044
[1B3h 0435 001h]                    Revision : 03
[1B4h 0436 004h]                  Identifier : 00000005
[1B8h 0440 004h]               Mapping Count : 00000001
[1BCh 0444 004h]              Mapping Offset : 0000001C

[1C0h 0448 004h]       Flags (decoded below) : 00000000
                         Remapping Permitted : 0
                           Access Privileged : 0
                           Access Attributes : 00
[1C4h 0452 004h]   Number of RMR Descriptors : 00000001
[1C8h 0456 004h]       RMR Descriptor Offset : 00000030

[1E0h 0480 008h]         Base Address of RMR : 0000000008000000
[1E8h 0488 008h]               Length of RMR : 0000000000100000
[1F0h 0496 004h]                    Reserved : 00000000

[1CCh 0460 004h]                  Input base : 00001000
[1D0h 0464 004h]                    ID Count : 000000FF
[1D4h 0468 004h]                 Output Base : 00001000
[1D8h 0472 004h]            Output Reference : 000000A0
[1DCh 0476 004h]       Flags (decoded below) : 00000001
                              Single Mapping : 1

Raw Table Data: Length 500 (0x1F4)

    0000: 49 4F 52 54 F4 01 00 00 05 C4 42 4F 43 48 53 20  // IORT......BOCHS 
    0010: 42 58 50 43 20 20 20 20 01 00 00 00 42 58 50 43  // BXPC    ....BXPC
    0020: 01 00 00 00 06 00 00 00 30 00 00 00 00 00 00 00  // ........0.......
    0030: 00 18 00 01 00 00 00 00 00 00 00 00 00 00 00 00  // ................
    0040: 01 00 00 00 00 00 00 00 04 58 00 04 01 00 00 00  // .........X......
    0050: 01 00 00 00 44 00 00 00 00 00 00 0C 00 00 00 00  // ....D...........
    0060: 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  // ................
    0070: 00 00 00 00 90 00 00 00 91 00 00 00 93 00 00 00  // ................
    0080: 92 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  // ................
    0090: FF FF 00 00 00 00 00 00 30 00 00 00 00 00 00 00  // ........0.......
    00A0: 04 58 00 04 02 00 00 00 01 00 00 00 44 00 00 00  // .X..........D...
    00B0: 00 00 02 0C 00 00 00 00 01 00 00 00 00 00 00 00  // ................
    00C0: 00 00 00 00 00 00 00 00 00 00 00 00 95 00 00 00  // ................
    00D0: 96 00 00 00 98 00 00 00 97 00 00 00 00 00 00 00  // ................
    00E0: 00 00 00 00 00 00 00 00 FF FF 00 00 00 00 00 00  // ................
    00F0: 30 00 00 00 00 00 00 00 02 74 00 03 03 00 00 00  // 0........t......
    0100: 04 00 00 00 24 00 00 00 01 00 00 00 00 00 00 03  // ....$...........
    0110: 01 00 00 00 00 00 00 00 40 00 00 00 00 00 00 00  // ........@.......
    0120: FF 00 00 00 00 00 00 00 48 00 00 00 00 00 00 00  // ........H.......
    0130: 00 10 00 00 FF 00 00 00 00 10 00 00 A0 00 00 00  // ................
    0140: 00 00 00 00 00 01 00 00 FF 0E 00 00 00 01 00 00  // ................
    0150: 30 00 00 00 00 00 00 00 00 11 00 00 FF EE 00 00  // 0...............
    0160: 00 11 00 00 30 00 00 00 00 00 00 00 06 44 00 03  // ....0........D..
    0170: 04 00 00 00 01 00 00 00 1C 00 00 00 00 00 00 00  // ................
    0180: 01 00 00 00 30 00 00 00 00 00 00 00 FF 00 00 00  // ....0...........
    0190: 00 00 00 00 48 00 00 00 01 00 00 00 00 00 00 08  // ....H...........
    01A0: 00 00 00 00 00 00 10 00 00 00 00 00 00 00 00 00  // ................
    01B0: 06 44 00 03 05 00 00 00 01 00 00 00 1C 00 00 00  // .D..............
    01C0: 00 00 00 00 01 00 00 00 30 00 00 00 00 10 00 00  // ........0.......
    01D0: FF 00 00 00 00 10 00 00 A0 00 00 00 01 00 00 00  // ................
    01E0: 00 00 00 08 00 00 00 00 00 00 10 00 00 00 00 00  // ................
    01F0: 00 00 00 00                                      // ....
