using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Tests.Config;

/// <summary>
/// Malformed or inconsistent machine JSON: each gives one QemuConfigException whose message names
/// the JSON path of the bad member (or the option whose text it contradicts), never another exception.
/// </summary>
public sealed class BadMachineJsonTests
{
    [Theory]
    // Found by fuzz/run.sh machine-json (tests/vectors/fuzz-crashes/machine-json): a record
    // without its "kind" discriminator threw NotSupportedException.
    [InlineData("{ \"devices\": [ { \"primaryBus\": \"pcie.0\" } ] }", "$.devices[0]")]
    [InlineData("{ \"objects\": [ { \"id\": \"ifd0\" } ] }", "$.objects[0]")]
    [InlineData("{ \"devices\": [ { \"text\": \"e1000\", \"kind\": \"e1000\" } ] }", "$.devices[0]")]
    // Already one error with the path.
    [InlineData("{ \"devices\": null }", "$.devices")]
    [InlineData("{ \"nope\": 1 }", "nope")]
    [InlineData("{ \"devices\": [ { \"kind\": \"nope\" } ] }", "$.devices[0]")]
    [InlineData("{ \"machine\": 5 }", "$.machine")]
    [InlineData("[", "$")]
    // Found by MachineJsonMutationTests: System.Text.Json's own message came first, the path buried in its tail.
    [InlineData("{ \"machine\": { \"type\": true } }", "$.machine.type")]
    public void Each_bad_document_gives_one_error_naming_the_path(string json, string path)
    {
        var e = Should.Throw<QemuConfigException>(() => MachineSpecJson.Read(json));
        e.Message.ShouldStartWith("machine JSON: ");
        e.Message.ShouldContain(path);
        if (path.StartsWith('$')) e.Message.ShouldStartWith($"machine JSON: {path}");
    }
}
