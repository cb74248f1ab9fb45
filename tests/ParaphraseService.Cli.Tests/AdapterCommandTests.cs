using System.Text.Json;
using ParaphraseService.Model.Tests;

namespace ParaphraseService.Cli.Tests;

public sealed class AdapterCommandTests : IDisposable
{
    private static readonly string Base = Fixtures.Get("gptj-tiny", "safetensors");
    private static readonly string Adapter = Fixtures.Get("peft", "q-v");
    private readonly string _temp = Directory.CreateTempSubdirectory("adapter-cli-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public async Task GenerateWithAnAdapterEqualsGenerateOnTheMergedModel()
    {
        var merged = Path.Combine(_temp, "merged");
        var merge = await CliRunner.RunAsync("merge", "--model", Base, "--adapter", Adapter, "--out", merged);
        Assert.True(merge.ExitCode == 0, merge.StandardError);

        var withAdapter = await GeneratedIds("--model", Base, "--adapter", Adapter);
        Assert.Equal(withAdapter, await GeneratedIds("--model", merged));
        Assert.NotEqual(withAdapter, await GeneratedIds("--model", Base));
    }

    [Fact]
    public async Task AnAdapterThatDoesNotFitIsOneErrorLine()
    {
        var run = await CliRunner.RunAsync("generate", "--model", "demo", "--adapter", Adapter, "--prompt", "x");
        Assert.NotEqual(0, run.ExitCode);
        var line = Assert.Single(run.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error:"));
        Assert.Contains("q_proj", line);
    }

    private static async Task<int[]> GeneratedIds(params string[] model)
    {
        var run = await CliRunner.RunAsync(["generate", .. model, "--prompt", "!#", "--greedy", "--max-new-tokens", "6", "--json"]);
        Assert.True(run.ExitCode == 0, run.StandardError);
        return JsonDocument.Parse(run.StandardOutput).RootElement.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
    }
}
