using System.Text.Json;
using NestedSmmu.Scenarios;

namespace NestedSmmu.Scenarios.Tests;

/// <summary>Result documents: the exact layout, the reader's checks, and the comparison helper.</summary>
public class ScenarioResultTests
{
    private static readonly AccessResult.Fault Translation =
        new("F_TRANSLATION", 1, [0x0000001000000010, 0x0000020000000000, 0x0000000048000040, 0]);

    [Fact]
    public void Writes_the_vector_layout()
    {
        var result = new ScenarioResult(
            [new AccessResult.Pa(0x4ecba567), Translation, new AccessResult.Fault("C_BAD_STE", 2, []), AccessResult.Abort.Instance],
            [new("tags", JsonDocument.Parse("""["a", "b's", "c", "d"]""").RootElement)]);

        ScenarioResultWriter.ToJson(result).ShouldBe("""
            {
             "format": "nestedsmmu-result/1",
             "results": [
              {
               "pa": "0x4ecba567"
              },
              {
               "fault": "F_TRANSLATION",
               "stage": 1,
               "event": [
                "0x0000001000000010",
                "0x0000020000000000",
                "0x0000000048000040",
                "0x0000000000000000"
               ]
              },
              {
               "fault": "C_BAD_STE",
               "stage": 2,
               "event": []
              },
              {
               "fault": "ABORT"
              }
             ],
             "tags": [
              "a",
              "b's",
              "c",
              "d"
             ]
            }
            """);
    }

    [Fact]
    public void Reads_back_what_it_writes()
    {
        var result = new ScenarioResult([new AccessResult.Pa(ulong.MaxValue), Translation, AccessResult.Abort.Instance]);
        ScenarioResultReader.Parse(ScenarioResultWriter.ToJson(result)).ShouldBe(result);
    }

    [Fact]
    public void Extra_members_are_kept_in_order_and_written_after_results()
    {
        var r = ScenarioResultReader.Parse("""
            { "note": {"by": "hand"}, "format": "nestedsmmu-result/1", "tags": ["x"], "results": [ { "pa": 4096 } ] }
            """);

        r.ExtraMembers.Select(kv => kv.Key).ShouldBe(["note", "tags"]);
        string json = ScenarioResultWriter.ToJson(r);
        json.IndexOf("\"results\"", StringComparison.Ordinal).ShouldBeLessThan(json.IndexOf("\"note\"", StringComparison.Ordinal));
        ScenarioResultReader.Parse(json).ShouldBe(r);
    }

    [Fact]
    public void Fault_without_event_member_has_an_empty_event()
    {
        var r = ScenarioResultReader.Parse("""{ "format": "nestedsmmu-result/1", "results": [ { "fault": "F_PERMISSION", "stage": "2" } ] }""");
        r.Results[0].ShouldBe(new AccessResult.Fault("F_PERMISSION", 2, []));
    }

    [Theory]
    [InlineData("""{ "format": "nestedsmmu-scenario/1", "results": [] }""",
        "$.format: expected \"nestedsmmu-result/1\", found 'nestedsmmu-scenario/1'")]
    [InlineData("""{ "results": [] }""", "$.format: required member is missing")]
    [InlineData("""{ "format": "nestedsmmu-result/1" }""", "$.results: required member is missing")]
    [InlineData("""{ "format": "nestedsmmu-result/1", "results": [ {} ] }""", "$.results[0]: expected a \"pa\" or a \"fault\" member")]
    [InlineData("""{ "format": "nestedsmmu-result/1", "results": [ { "pa": "0xZZ" } ] }""", "$.results[0].pa: '0xZZ' is not a hex or decimal number")]
    [InlineData("""{ "format": "nestedsmmu-result/1", "results": [ { "pa": "0x1", "fault": "F_TRANSLATION" } ] }""", "$.results[0].fault: unknown member; expected pa")]
    [InlineData("""{ "format": "nestedsmmu-result/1", "results": [ { "fault": "F_TRANSLATION", "stage": 3, "event": [] } ] }""", "$.results[0].stage: 3 is not 1 or 2")]
    [InlineData("""{ "format": "nestedsmmu-result/1", "results": [ { "fault": "F_TRANSLATION", "event": [] } ] }""", "$.results[0].stage: required member is missing")]
    [InlineData("""{ "format": "nestedsmmu-result/1", "results": [ { "fault": "F_TRANSLATION", "stage": 1, "event": ["0x1", "0x2", "0x3"] } ] }""",
        "$.results[0].event: expected 4 words (or none when the event queue is off), found 3")]
    [InlineData("""{ "format": "nestedsmmu-result/1", "results": [ { "fault": "F_TRANSLATION", "stage": 1, "event": ["0x1", "0x2", "0x3", 1.5] } ] }""",
        "$.results[0].event[3]: 1.5 is not an integer")]
    [InlineData("""{ "format": "nestedsmmu-result/1", "results": [ { "fault": "ABORT", "stage": 1 } ] }""", "$.results[0].stage: unknown member; expected fault")]
    [InlineData("""{ "format": "nestedsmmu-result/1", "results": [ { "fault": "" , "stage": 1 } ] }""", "$.results[0].fault: the event name is empty")]
    [InlineData("""{ "format": "nestedsmmu-result/1", "results": [ { "fault": 7 } ] }""", "$.results[0].fault: expected a string, found a number")]
    [InlineData("""{ "format": "nestedsmmu-result/1", "results": [], "results": [] }""", "$.results: member appears more than once")]
    [InlineData("""{ "format": "nestedsmmu-result/1", "results": [], "tags": [], "tags": [] }""", "$.tags: member appears more than once")]
    public void Rejects_malformed_results(string json, string message)
    {
        var e = Should.Throw<ScenarioFormatException>(() => ScenarioResultReader.Parse(json));
        e.Message.ShouldStartWith(message);
    }

    [Fact]
    public void Equal_results_have_no_difference()
    {
        var a = new ScenarioResult([new AccessResult.Pa(1), Translation]);
        var b = new ScenarioResult([new AccessResult.Pa(1), new AccessResult.Fault("F_TRANSLATION", 1, [.. Translation.Event])]);
        ScenarioResult.FindFirstDifference(a, b).ShouldBeNull();
        a.ShouldBe(b);
    }

    [Fact]
    public void Difference_in_kind_names_the_entry_and_its_tag()
    {
        var expected = ScenarioResultReader.Parse("""
            { "format": "nestedsmmu-result/1",
              "results": [ { "pa": "0x10" }, { "fault": "F_TRANSLATION", "stage": 1, "event": [] } ],
              "tags": ["first", "second"] }
            """);
        var actual = new ScenarioResult([new AccessResult.Pa(0x10), new AccessResult.Pa(0x4ecba567)]);

        ScenarioResult.FindFirstDifference(expected, actual)
            .ShouldBe("results[1] (tag second): expected fault F_TRANSLATION (stage 1), found pa 0x4ecba567");
    }

    [Theory]
    [InlineData(0x4ecba568UL, null, 1, 0UL, "results[0]: expected pa 0x4ecba567, found pa 0x4ecba568")]
    [InlineData(null, "F_PERMISSION", 1, 0x0000001000000010UL, "results[1].fault: expected F_TRANSLATION, found F_PERMISSION")]
    [InlineData(null, "F_TRANSLATION", 2, 0x0000001000000010UL, "results[1].stage: expected 1, found 2")]
    [InlineData(null, "F_TRANSLATION", 1, 0x0000001000000011UL, "results[1].event[0]: expected 0x0000001000000010, found 0x0000001000000011")]
    public void Difference_names_the_first_member_that_differs(ulong? pa, string? fault, int stage, ulong word0, string message)
    {
        var expected = new ScenarioResult([new AccessResult.Pa(0x4ecba567), Translation]);
        AccessResult[] entries = pa is ulong p
            ? [new AccessResult.Pa(p), Translation]
            : [new AccessResult.Pa(0x4ecba567), new AccessResult.Fault(fault!, stage, [word0, .. Translation.Event.Skip(1)])];

        ScenarioResult.FindFirstDifference(expected, new ScenarioResult(entries)).ShouldBe(message);
    }

    [Fact]
    public void Difference_in_event_length_and_in_count()
    {
        var withEvent = new ScenarioResult([Translation]);
        var without = new ScenarioResult([new AccessResult.Fault("F_TRANSLATION", 1, [])]);
        ScenarioResult.FindFirstDifference(withEvent, without).ShouldBe("results[0].event: expected 4 words, found no words");

        var longer = new ScenarioResult([Translation, AccessResult.Abort.Instance]);
        ScenarioResult.FindFirstDifference(longer, withEvent).ShouldBe("results: expected 2 entries, found 1");
        ScenarioResult.FindFirstDifference(withEvent, longer).ShouldBe("results: expected 1 entry, found 2");
    }

    [Fact]
    public void Extra_members_count_only_when_asked()
    {
        var tagged = ScenarioResultReader.Parse("""{ "format": "nestedsmmu-result/1", "results": [ { "fault": "ABORT" } ], "tags": ["t"] }""");
        var plain = new ScenarioResult([AccessResult.Abort.Instance]);

        ScenarioResult.FindFirstDifference(tagged, plain).ShouldBeNull();
        ScenarioResult.FindFirstDifference(tagged, plain, compareExtraMembers: true).ShouldBe("tags: expected [\"t\"], found nothing");
        ScenarioResult.FindFirstDifference(plain, tagged, compareExtraMembers: true).ShouldBe("tags: expected nothing, found [\"t\"]");
        tagged.ShouldNotBe(plain);
    }

    [Fact]
    public void Model_rejects_what_the_format_cannot_hold()
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new AccessResult.Fault("F_TRANSLATION", 0, []));
        Should.Throw<ArgumentException>(() => new AccessResult.Fault("F_TRANSLATION", 1, [1UL, 2UL]));
        Should.Throw<ArgumentException>(() => new AccessResult.Fault("ABORT", 1, []));
        Should.Throw<ArgumentException>(() => new ScenarioResult([], [new("results", default)]));
    }
}
