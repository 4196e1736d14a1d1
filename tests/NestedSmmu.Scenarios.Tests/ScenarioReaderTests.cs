using System.Text;
using System.Text.Json.Nodes;
using NestedSmmu.Scenarios;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Scenarios.Tests;

/// <summary>What the scenario reader accepts, and the one error (with its JSON path) for what it does not.</summary>
public class ScenarioReaderTests
{
    // A valid scenario using every spelling the format allows; each malformed case edits one value.
    private const string Base = """
        {
         "format": "nestedsmmu-scenario/1",
         "description": "reader test",
         "smmu": {
          "idr": { "IDR0": "0x0D44101B", "idr1": 40042512 },
          "writes": [
           { "reg": "STRTAB_BASE", "value": "0x40000000", "width": 64 },
           { "reg": "STRTAB_BASE_CFG", "value": "5" },
           { "reg": "0x20", "value": 1 },
           { "reg": "smmu_evtq_base", "value": "0x40f00006", "width": "64" }
          ]
         },
         "memory": [
          { "address": "0x40000400", "qwords": ["0x000000004100800f", "0x00001000000000d4"] },
          { "address": 1090519040, "qwords": ["0x0000000041002003"] }
         ],
         "accesses": [
          { "sid": 16, "ssid": null, "iova": "0x8080604567", "access": "write" },
          { "sid": "0x10", "ssid": "0x3", "iova": "551909606759", "access": "read" },
          { "sid": "0xffffffff", "iova": "0xffffffffffffffff", "access": "read" }
         ]
        }
        """;

    [Fact]
    public void Base_scenario_reads_every_spelling()
    {
        var s = ScenarioReader.Parse(Base);

        s.Description.ShouldBe("reader test");
        s.Idr.Count.ShouldBe(2);
        s.Idr[SmmuRegister.IDR1].ShouldBe(40042512u);
        s.Writes.ShouldBe([
            new RegisterWrite(SmmuRegister.STRTAB_BASE, 0x40000000, 64),
            new RegisterWrite(SmmuRegister.STRTAB_BASE_CFG, 5),
            new RegisterWrite(0x20u, 1),
            new RegisterWrite(SmmuRegister.EVENTQ_BASE, 0x40f00006, 64),
        ]);
        s.Writes[2].Register.ShouldBeNull();
        s.Writes[3].Name.ShouldBe("EVENTQ_BASE");
        s.Memory[1].Address.ShouldBe(0x41000000UL);
        s.Accesses.ShouldBe([
            new Access(16, null, 0x8080604567, AccessKind.Write),
            new Access(16, 3, 0x8080604567, AccessKind.Read),
            new Access(uint.MaxValue, null, ulong.MaxValue, AccessKind.Read),
        ]);
    }

    [Fact]
    public void Stream_and_string_give_the_same_scenario()
    {
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(Base));
        ScenarioReader.Parse(stream).ShouldBe(ScenarioReader.Parse(Base));
    }

    [Fact]
    public void Description_and_idr_are_optional()
    {
        var s = ScenarioReader.Parse(Edit(n =>
        {
            n.AsObject().Remove("description");
            n["smmu"]!.AsObject().Remove("idr");
        }));

        s.Description.ShouldBeNull();
        s.Idr.ShouldBeEmpty();
    }

    // The malformed cases the format must reject, one per test, each with the path it must name.

    [Fact]
    public void Bad_hex() =>
        Rejects(n => n["memory"]![1]!["qwords"]![0] = "0xZZ",
            "$.memory[1].qwords[0]", "'0xZZ' is not a hex or decimal number");

    [Fact]
    public void Unknown_register() =>
        Rejects(n => n["smmu"]!["writes"]![1]!["reg"] = "STRTAB_BASE_CFG2",
            "$.smmu.writes[1].reg", "'STRTAB_BASE_CFG2' is not an SMMUv3 register name");

    [Fact]
    public void Misaligned_offset() =>
        Rejects(n => n["smmu"]!["writes"]![2]!["reg"] = "0x22",
            "$.smmu.writes[2].reg", "offset 0x22 is not 4-byte aligned");

    [Fact]
    public void Offset_outside_the_register_frame() =>
        Rejects(n => n["smmu"]!["writes"]![2]!["reg"] = "0x20000",
            "$.smmu.writes[2].reg", "offset 0x20000 is outside the 0x20000-byte register frame");

    [Fact]
    public void Misaligned_64_bit_write() =>
        Rejects(n =>
            {
                var write = n["smmu"]!["writes"]![2]!;
                write["reg"] = "0x84"; // valid as a 32-bit write (the upper half of STRTAB_BASE)
                write["width"] = 64;
            },
            "$.smmu.writes[2].width", "a 64-bit write at offset 0x84 is not 8-byte aligned");

    [Fact]
    public void Memory_beyond_52_bits() =>
        Rejects(n => n["memory"]![0]!["address"] = "0x10000000000000",
            "$.memory[0].address", "0x10000000000000 is beyond the 52-bit physical address space");

    [Fact]
    public void Memory_block_ending_beyond_52_bits() =>
        Rejects(n => n["memory"]![0]!["address"] = "0xffffffffffff8",
            "$.memory[0].address", "a block of 2 qwords at 0xffffffffffff8 ends beyond the 52-bit physical address space");

    [Fact]
    public void Misaligned_memory_block() =>
        Rejects(n => n["memory"]![1]!["address"] = "0x41000004",
            "$.memory[1].address", "0x41000004 is not 8-byte aligned");

    [Fact]
    public void Missing_access_field() =>
        Rejects(n => n["accesses"]![1]!.AsObject().Remove("iova"),
            "$.accesses[1].iova", "required member is missing");

    [Fact]
    public void Missing_writes() =>
        Rejects(n => n["smmu"]!.AsObject().Remove("writes"),
            "$.smmu.writes", "required member is missing");

    [Fact]
    public void Missing_qwords() =>
        Rejects(n => n["memory"]![0]!.AsObject().Remove("qwords"),
            "$.memory[0].qwords", "required member is missing");

    [Fact]
    public void Missing_format() =>
        Rejects(n => n.AsObject().Remove("format"),
            "$.format", "required member is missing (\"nestedsmmu-scenario/1\")");

    [Fact]
    public void Wrong_format_string() =>
        Rejects(n => n["format"] = "nestedsmmu-result/1",
            "$.format", "expected \"nestedsmmu-scenario/1\", found 'nestedsmmu-result/1'");

    [Fact]
    public void Value_too_wide_for_a_32_bit_write() =>
        Rejects(n => n["smmu"]!["writes"]![1]!["value"] = "0x100000000",
            "$.smmu.writes[1].value", "'0x100000000' does not fit in the write's 32 bits");

    [Fact]
    public void Value_too_wide_hints_at_width_64_for_a_64_bit_register() =>
        Rejects(n =>
            {
                var write = n["smmu"]!["writes"]![0]!;
                write.AsObject().Remove("width");
                write["value"] = "0x4000000000";
            },
            "$.smmu.writes[0].value",
            "'0x4000000000' does not fit in the write's 32 bits; STRTAB_BASE is a 64-bit register: add \"width\": 64");

    [Fact]
    public void Bad_access_kind() =>
        Rejects(n => n["accesses"]![0]!["access"] = "execute",
            "$.accesses[0].access", "'execute' is not \"read\" or \"write\"");

    [Fact]
    public void Fractional_number() =>
        Rejects(n => n["accesses"]![0]!["sid"] = 1.5,
            "$.accesses[0].sid", "1.5 is not an integer (write integers without a fraction or exponent)");

    [Fact]
    public void Exponent_number() =>
        Rejects(n => n["accesses"]![0]!["sid"] = JsonNode.Parse("1e3"),
            "$.accesses[0].sid", "1e3 is not an integer");

    [Fact]
    public void Negative_number() =>
        Rejects(n => n["accesses"]![0]!["sid"] = -1,
            "$.accesses[0].sid", "-1 is negative");

    [Fact]
    public void Json_number_of_2_to_the_53() =>
        Rejects(n => n["accesses"]![0]!["iova"] = 9007199254740992,
            "$.accesses[0].iova", "9007199254740992 is not below 2^53; write larger numbers as hex strings");

    [Fact]
    public void Json_number_just_below_2_to_the_53_is_accepted()
    {
        var s = ScenarioReader.Parse(Edit(n => n["accesses"]![0]!["iova"] = 9007199254740991));
        s.Accesses[0].Iova.ShouldBe(9007199254740991UL);
    }

    [Fact]
    public void Hex_string_overflowing_64_bits() =>
        Rejects(n => n["accesses"]![0]!["iova"] = "0x10000000000000000",
            "$.accesses[0].iova", "'0x10000000000000000' does not fit in 64 bits");

    [Fact]
    public void Decimal_string_overflowing_64_bits() =>
        Rejects(n => n["memory"]![0]!["qwords"]![1] = "18446744073709551616",
            "$.memory[0].qwords[1]", "'18446744073709551616' does not fit in 64 bits");

    [Fact]
    public void Sid_too_wide() =>
        Rejects(n => n["accesses"]![2]!["sid"] = "0x100000000",
            "$.accesses[2].sid", "'0x100000000' does not fit in 32 bits");

    [Fact]
    public void Ssid_too_wide() =>
        Rejects(n => n["accesses"]![1]!["ssid"] = "0x100000",
            "$.accesses[1].ssid", "'0x100000' does not fit in 20 bits");

    [Fact]
    public void Width_other_than_32_or_64() =>
        Rejects(n => n["smmu"]!["writes"]![0]!["width"] = 16,
            "$.smmu.writes[0].width", "16 is not 32 or 64");

    [Fact]
    public void Register_given_as_a_number() =>
        Rejects(n => n["smmu"]!["writes"]![2]!["reg"] = 32,
            "$.smmu.writes[2].reg", "expected a string, found a number");

    [Fact]
    public void Number_of_the_wrong_kind() =>
        Rejects(n => n["accesses"]![0]!["iova"] = true,
            "$.accesses[0].iova", "expected a number (a JSON number, or a hex or decimal string), found a boolean");

    [Fact]
    public void Unknown_member() =>
        Rejects(n => n["accesses"]![0]!["sidd"] = 1,
            "$.accesses[0].sidd", "unknown member; expected sid, iova, access, ssid");

    [Fact]
    public void Unknown_member_with_an_odd_name_is_quoted() =>
        Rejects(n => n["memory"]![0]!["the qwords"] = 1,
            "$.memory[0]['the qwords']", "unknown member; expected address, qwords");

    [Fact]
    public void Unknown_top_level_member() =>
        Rejects(n => n["tags"] = new JsonArray(),
            "$.tags", "unknown member; expected format, smmu, memory, accesses, description");

    [Fact]
    public void Description_that_is_not_text() =>
        Rejects(n => n["description"] = 7,
            "$.description", "expected a string, found a number");

    [Fact]
    public void Idr_key_that_is_not_an_id_register() =>
        Rejects(n => n["smmu"]!["idr"]!["CR0"] = "0x1",
            "$.smmu.idr.CR0", "CR0 is not an ID register (IDR0-IDR5, IIDR, AIDR)");

    [Fact]
    public void Idr_key_that_is_not_a_register() =>
        Rejects(n => n["smmu"]!["idr"]!["IDR9"] = "0x1",
            "$.smmu.idr.IDR9", "'IDR9' is not an SMMUv3 register name; expected an ID register");

    [Fact]
    public void Idr_key_that_is_a_number_is_not_a_register_name() =>
        Rejects(n => n["smmu"]!["idr"]!["4"] = "0x1",
            "$.smmu.idr['4']", "'4' is not an SMMUv3 register name; expected an ID register");

    [Fact]
    public void Register_list_in_one_name_is_not_a_register() =>
        Rejects(n => n["smmu"]!["writes"]![1]!["reg"] = "CR0,CR1",
            "$.smmu.writes[1].reg", "'CR0,CR1' is not an SMMUv3 register name");

    [Fact]
    public void Idr_value_too_wide() =>
        Rejects(n => n["smmu"]!["idr"]!["IDR0"] = "0x100000000",
            "$.smmu.idr.IDR0", "'0x100000000' does not fit in 32 bits");

    [Fact]
    public void Idr_register_given_twice_under_two_spellings() =>
        Rejects(n => n["smmu"]!["idr"]!["SMMU_IDR0"] = "0x1",
            "$.smmu.idr.SMMU_IDR0", "IDR0 is already given as 'IDR0'");

    [Fact]
    public void Duplicate_member()
    {
        string json = Base.Replace("\"access\": \"write\"", "\"access\": \"write\", \"sid\": 17");
        var e = Should.Throw<ScenarioFormatException>(() => ScenarioReader.Parse(json));
        e.Message.ShouldBe("$.accesses[0].sid: member appears more than once");
    }

    [Fact]
    public void Invalid_json_names_line_and_byte()
    {
        var e = Should.Throw<ScenarioFormatException>(() => ScenarioReader.Parse("{\n \"format\": \"nestedsmmu-scenario/1\",\n}"));
        e.Message.ShouldStartWith("$: not valid JSON (line 3, byte 1): ");
    }

    /// <summary>
    /// Found by fuzz/run.sh scenario (tests/vectors/fuzz-crashes/scenario): a byte that is not UTF-8
    /// inside a string made the reader throw InvalidOperationException when it read the string.
    /// </summary>
    [Fact]
    public void Invalid_utf8_is_one_format_error_with_line_and_byte()
    {
        byte[] bytes = [.. "{\n \"format\": \"nestedsmmu-scenario/1\",\n \"description\": \"s"u8, 0x80, .. "\"\n}"u8];
        var e = Should.Throw<ScenarioFormatException>(() => ScenarioReader.Parse(new MemoryStream(bytes)));
        e.Message.ShouldBe("$: not valid UTF-8 (line 3, byte 19: 0x80)");
        Should.Throw<ScenarioFormatException>(() => ScenarioResultReader.Parse(new MemoryStream(bytes))).Message.ShouldStartWith("$: not valid UTF-8");
    }

    [Fact]
    public void Root_that_is_not_an_object()
    {
        var e = Should.Throw<ScenarioFormatException>(() => ScenarioReader.Parse("[]"));
        e.Message.ShouldBe("$: expected an object, found an array");
    }

    [Fact]
    public void File_errors_name_the_file()
    {
        string path = Path.Combine(Path.GetTempPath(), $"nestedsmmu-reader-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, Edit(n => n["format"] = "v2"));
        try
        {
            var e = Should.Throw<ScenarioFormatException>(() => ScenarioReader.ReadFile(path));
            e.FileName.ShouldBe(path);
            e.Message.ShouldBe($"{path}: $.format: expected \"nestedsmmu-scenario/1\", found 'v2'");
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static string Edit(Action<JsonNode> edit)
    {
        var node = JsonNode.Parse(Base)!;
        edit(node);
        return node.ToJsonString();
    }

    /// <summary>The edit makes the reader fail with exactly "<paramref name="path"/>: <paramref name="detail"/>".</summary>
    private static void Rejects(Action<JsonNode> edit, string path, string detail)
    {
        var e = Should.Throw<ScenarioFormatException>(() => ScenarioReader.Parse(Edit(edit)));
        e.Path.ShouldBe(path);
        e.Message.ShouldStartWith($"{path}: {detail}");
    }
}
