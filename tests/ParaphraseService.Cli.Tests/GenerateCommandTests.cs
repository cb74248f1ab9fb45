using System.Text.Json;

namespace ParaphraseService.Cli.Tests;

public class GenerateCommandTests
{
    [Fact]
    public async Task RandomDemoModelPrintsPromptIdsGeneratedIdsAndTextAsJson()
    {
        var run = await CliRunner.RunAsync("generate", "--model", "demo-random", "--prompt", "Hello world!", "--json", "--max-new-tokens", "5", "--seed", "9");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("not meaningful", run.StandardError);
        var json = JsonDocument.Parse(run.StandardOutput).RootElement;
        Assert.Equal([15496, 995, 0], json.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()));
        var generated = json.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.InRange(generated.Length, 1, 5);
        Assert.All(generated, id => Assert.InRange(id, 0, 50256));
        Assert.True(json.GetProperty("demo").GetBoolean());
        Assert.Equal(JsonValueKind.String, json.GetProperty("text").ValueKind);

        var again = await CliRunner.RunAsync("generate", "--model", "demo-random", "--prompt", "Hello world!", "--json", "--max-new-tokens", "5", "--seed", "9");
        Assert.Equal(run.StandardOutput, again.StandardOutput); // same seed, same output, across processes
    }

    [Theory]
    [InlineData("does not exist", "generate", "--model", "/no/such/folder", "--prompt", "x")]
    [InlineData("not a folder", "generate", "--model", "not a model", "--prompt", "x")]
    [InlineData("not in the Hugging Face cache", "generate", "--model", "EleutherAI/gpt-j-6b", "--prompt", "x")]
    [InlineData("temperature", "generate", "--prompt", "x", "--temperature", "0")]
    [InlineData("--greedy cannot be combined", "generate", "--prompt", "x", "--greedy", "--top-k", "5")]
    [InlineData("context of 512 tokens", "generate", "--prompt", "x", "--max-new-tokens", "5000")]
    [InlineData("context of 2048 tokens", "generate", "--model", "demo-random", "--prompt", "x", "--max-new-tokens", "5000")]
    [InlineData("Unknown dtype", "generate", "--prompt", "x", "--dtype", "int4")]
    [InlineData("Unknown KV cache dtype 'fp8'", "generate", "--prompt", "x", "--kv-cache", "fp8")]
    public async Task FailuresExitNonZeroWithOneLineReason(string reason, params string[] args)
    {
        var run = await CliRunner.RunAsync(args);
        Assert.NotEqual(0, run.ExitCode);
        var errorLine = Assert.Single(run.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error:"));
        Assert.Contains(reason, errorLine, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("   at ", run.StandardError); // no stack trace
    }
}
